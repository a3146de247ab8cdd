"""Hangs while the file loads; the functions around the loop are still graded."""


def attack(x):
    return 2 * x


while True:
    pass


def innocent(x):
    return 2 * x
