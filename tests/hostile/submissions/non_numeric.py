"""Returns a dictionary instead of numbers."""


def attack(x):
    return {"answer": 2 * x}


def innocent(x):
    return 2 * x
