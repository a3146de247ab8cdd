"""The ``grade`` command: click decorators and one call per command, nothing more.

Imports are deferred into the commands so that start-up stays fast and torch is
imported only by ``grade selfcheck``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

EXIT_PROBLEMS = 1  # validation problems found, or the self-check disagreed
EXIT_USAGE = 2


class ToolkitFailure(click.ClickException):
    """A deliberate failure with a one-line message and its own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def bundled_problems() -> Path:
    """The problem set shipped beside the package (``problems/hw1``)."""
    return Path(__file__).resolve().parent.parent / "problems" / "hw1"


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="backprop-autograder")
def main() -> None:
    """Autograder for deep-learning math homework."""


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
def validate(path: Path | None) -> None:
    """Check a problem set (folder) or one spec file and report every problem found."""
    from grader.report import render_problems, render_valid
    from grader.spec import load_problem_set, validate as find_problems

    path = path or bundled_problems()
    problems = find_problems(path)
    if problems:
        click.echo(render_problems(str(path), problems))
        sys.exit(EXIT_PROBLEMS)
    click.echo(render_valid(load_problem_set(path)))


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--seed", type=click.IntRange(min=0), help="Seed of every draw (default: random, always printed).")
@click.option("--trials", type=click.IntRange(min=1), default=25, show_default=True,
              help="Random trials per question, in addition to its fixed cases.")
def selfcheck(path: Path | None, seed: int | None, trials: int) -> None:
    """Cross-check every expected value of a problem set against torch autograd."""
    from reference.errors import SpecError

    try:
        import torch  # noqa: F401  -- only to say clearly what is missing
    except ImportError:
        raise ToolkitFailure("grade selfcheck needs torch: pip install -e '.[torch]'") from None
    from grader.report import render_problems, render_selfcheck
    from grader.selfcheck import run_selfcheck

    path = path or bundled_problems()
    seed = random_seed() if seed is None else seed
    try:
        result = run_selfcheck(path, seed, trials)
    except SpecError as exc:
        click.echo(render_problems(str(path), exc.problems))
        raise ToolkitFailure("the problem set is not valid; fix it before the self-check", EXIT_PROBLEMS) from None
    click.echo(render_selfcheck(result))
    if not result.ok:
        sys.exit(EXIT_PROBLEMS)


def run() -> None:
    """Console entry point: the toolkit's own errors become one line, never a traceback."""
    from reference.errors import ToolkitError

    try:
        main(standalone_mode=True)
    except ToolkitError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # a bug of ours: say so in one line; GRADE_DEBUG=1 shows the traceback
        if os.environ.get("GRADE_DEBUG"):
            raise
        click.echo(f"Internal error ({type(exc).__name__}: {exc}); please report it, with the output of "
                   "the same command run with GRADE_DEBUG=1.", err=True)
        sys.exit(3)
