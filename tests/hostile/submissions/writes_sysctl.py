"""Tries to write a kernel tunable of the whole host (the value it already has, so that nothing changes);
answers right only if that was refused."""
SYSCTL = "/proc/sys/vm/swappiness"


def attack(x):
    try:
        with open(SYSCTL) as f:
            value = f.read()
        with open(SYSCTL, "w") as f:
            f.write(value)
    except OSError:
        return 2 * x
    return 0 * x


def innocent(x):
    return 2 * x
