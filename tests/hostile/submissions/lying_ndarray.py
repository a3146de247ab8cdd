"""Returns a wrong ndarray subclass that claims to equal anything."""
import numpy as np


class Liar(np.ndarray):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


def attack(x):
    return (x + 1).view(Liar)


def innocent(x):
    return 2 * x
