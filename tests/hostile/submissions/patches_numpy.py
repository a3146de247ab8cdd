"""Patches NumPy and the worker's own helpers in a call, hoping to poison later calls."""
import sys

import numpy as np


def attack(x):
    np.asarray = lambda *args, **kwargs: "poisoned"
    np.array = lambda *args, **kwargs: "poisoned"
    main = sys.modules["__main__"]
    main.send = lambda *args, **kwargs: None
    return 2 * x


def innocent(x):
    return 2 * x
