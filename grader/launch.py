"""The ``grade`` console command's entry point: grading a file boots its worker before anything else imports.

A worker takes about as long to boot (the isolation probe, bubblewrap, Python, NumPy)
as this process takes to import click, the grader and NumPy, and a grade waits for
whichever is last. So when the command grades files, the worker starts booting
(``grader.prestart``) before click is even imported; every other command starts the
CLI at once.

The garbage collector is tuned for a short-lived command that makes many small
objects and little cyclic garbage: at the default thresholds it spent about 20 ms
of a grade's half second collecting, and the interpreter's teardown another 40-100
ms collecting what the grade left behind, all of it freed at exit anyway.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

GRADED_SUFFIXES = (".py", ".ipynb")
# a young-generation collection per 100 000 net allocations of containers instead of 700 (one grade makes about
# 55 000, few of them cycles), so the garbage that waits for a collection stays at a few MB; a batch's pool
# processes inherit it
GC_THRESHOLDS = (100_000, 50, 100)
# the grader's arrays are a few dozen numbers: a BLAS thread pool only spins, after each product, on the core that a
# worker or a batch's other pool process needs (set before NumPy is imported; a user's own setting wins)
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def grades_a_file(args: list[str]) -> bool:
    """Whether ``grade ARGS`` grades one or more files: its first word is ``submission`` or names one."""
    first = next((a for a in args if not a.startswith("-")), None)
    return first == "submission" or (first is not None and first.endswith(GRADED_SUFFIXES) and Path(first).is_file())


def run() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    for var in BLAS_THREADS:
        os.environ.setdefault(var, "1")
    if grades_a_file(sys.argv[1:]):
        from grader import prestart

        prestart.begin()  # the CLI's own begin() finds it booting and does not start another
    from grader.cli import run as cli

    try:
        cli()
    finally:
        # everything left is freed with the process: the teardown's collections need not look at it
        # (atexit handlers and finalizers still run)
        gc.freeze()
