"""Prints 50 MB while answering correctly."""


def attack(x):
    for _ in range(500):
        print("x" * 100_000)
    return 2 * x


def innocent(x):
    return 2 * x
