"""Tries a forbidden import while loading, behind a computed name."""
import importlib

try:
    engine = importlib.import_module("auto" + "grad")
except ImportError:
    engine = None


def attack(x):
    return 2 * x


def innocent(x):
    return 2 * x
