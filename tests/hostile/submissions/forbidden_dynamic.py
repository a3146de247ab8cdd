"""Imports torch under a computed name, where the static check cannot see it."""
import importlib


def attack(x):
    torch = importlib.import_module("to" + "rch")
    return torch.tensor(x).mul(2).numpy()


def innocent(x):
    return 2 * x
