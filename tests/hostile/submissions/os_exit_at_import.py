"""Calls os._exit while loading: the worker dies, the statement is skipped."""
import os


def attack(x):
    return 2 * x


os._exit(5)


def innocent(x):
    return 2 * x
