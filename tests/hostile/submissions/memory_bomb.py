"""Allocates until memory runs out (np.empty: the address-space limit binds without touching pages)."""
import numpy as np


def attack(x):
    hoard = []
    while True:
        hoard.append(np.empty(1 << 24))


def innocent(x):
    return 2 * x
