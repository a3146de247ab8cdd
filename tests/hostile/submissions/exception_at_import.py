"""Raises while loading."""


def attack(x):
    return 2 * x


raise RuntimeError("boom at import")


def innocent(x):
    return 2 * x
