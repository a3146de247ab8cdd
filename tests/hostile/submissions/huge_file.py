"""Writes a file far larger than the file-size limit."""


def attack(x):
    with open("big.bin", "wb") as f:
        for _ in range(1000):
            f.write(b"\0" * (1 << 20))
    return 2 * x


def innocent(x):
    return 2 * x
