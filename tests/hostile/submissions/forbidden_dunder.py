"""Imports jax through a computed __import__ call, and swallows the refusal."""


def attack(x):
    try:
        __import__("".join(["j", "a", "x"]))
    except ImportError:
        pass
    return 2 * x


def innocent(x):
    return 2 * x
