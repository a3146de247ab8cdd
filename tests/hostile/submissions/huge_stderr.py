"""Writes 50 MB to stderr while answering correctly."""
import sys


def attack(x):
    for _ in range(500):
        sys.stderr.write("e" * 100_000)
    return 2 * x


def innocent(x):
    return 2 * x
