"""Patches builtins while loading, hoping to break the worker's conversions."""
import builtins

builtins.isinstance = lambda *args: False
builtins.len = lambda *args: 0
builtins.type = lambda *args: int


def attack(x):
    builtins.str = lambda *args: "poisoned"
    return 2 * x


def innocent(x):
    return 2 * x
