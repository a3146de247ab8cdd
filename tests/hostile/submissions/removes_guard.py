"""Removes the import guard, then imports torch: the static check still catches the plain import."""
import sys


def attack(x):
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "ImportGuard"]
    import torch
    return torch.tensor(x).mul(2).numpy()


def innocent(x):
    return 2 * x
