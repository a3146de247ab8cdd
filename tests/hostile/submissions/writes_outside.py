"""Tries to write outside its scratch directory; answers right only if that failed."""

TARGET = "@TARGET@"


def attack(x):
    try:
        with open(TARGET, "w") as f:
            f.write("escaped")
    except OSError:
        return 2 * x
    return 0 * x


def innocent(x):
    return 2 * x
