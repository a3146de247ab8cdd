"""Returns an object whose conversion to an array raises."""


class Slippery:
    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array for you")

    def __float__(self):
        raise RuntimeError("no float either")

    def __eq__(self, other):
        return True


def attack(x):
    return Slippery()


def innocent(x):
    return 2 * x
