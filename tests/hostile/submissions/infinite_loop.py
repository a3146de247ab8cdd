"""Spins forever in a call."""


def attack(x):
    while True:
        pass


def innocent(x):
    return 2 * x
