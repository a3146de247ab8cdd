"""Returns an array far larger than the output limit."""
import numpy as np


def attack(x):
    return np.zeros(10**7)


def innocent(x):
    return 2 * x
