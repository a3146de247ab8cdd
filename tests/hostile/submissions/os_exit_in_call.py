"""Calls os._exit in a call: the worker dies."""
import os


def attack(x):
    os._exit(9)


def innocent(x):
    return 2 * x
