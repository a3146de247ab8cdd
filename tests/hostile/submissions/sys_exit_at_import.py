"""Calls sys.exit while loading."""
import sys


def attack(x):
    return 2 * x


sys.exit(3)


def innocent(x):
    return 2 * x
