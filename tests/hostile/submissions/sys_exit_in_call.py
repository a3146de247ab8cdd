"""Calls sys.exit in a call."""
import sys


def attack(x):
    sys.exit(2)


def innocent(x):
    return 2 * x
