"""Tries to read the grader's code, the problem specs and the reference; answers right only if it could not."""

PATHS = ["@REPO@/grader/compare.py", "@REPO@/tests/hostile/problems/hostile.yaml", "@REPO@/reference/ops.py"]


def attack(x):
    for path in PATHS:
        try:
            with open(path) as f:
                f.read(1)
            return 0 * x
        except OSError:
            pass
    return 2 * x


def innocent(x):
    return 2 * x
