"""The ``grade`` console command's entry point: grading a file boots its worker before anything else imports.

A worker takes about as long to boot (the isolation probe, bubblewrap, Python, NumPy)
as this process takes to import click, the grader and NumPy, and a grade waits for
whichever is last. So when the command grades files, the worker starts booting
(``grader.prestart``) before click is even imported; every other command starts the
CLI at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

GRADED_SUFFIXES = (".py", ".ipynb")


def grades_a_file(args: list[str]) -> bool:
    """Whether ``grade ARGS`` grades one or more files: its first word is ``submission`` or names one."""
    first = next((a for a in args if not a.startswith("-")), None)
    return first == "submission" or (first is not None and first.endswith(GRADED_SUFFIXES) and Path(first).is_file())


def run() -> None:
    if grades_a_file(sys.argv[1:]):
        from grader import prestart

        prestart.begin()  # the CLI's own begin() finds it booting and does not start another
    from grader.cli import run as cli

    cli()
