"""The ``grade`` command: click decorators and one call per command, nothing more.

Imports are deferred into the commands so that start-up stays fast and torch is
imported only by ``grade selfcheck``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from grader.spec import ProblemSet

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


class _DefaultToGrade(click.Group):
    """``grade FILE...`` means ``grade submission FILE...``: grading is the everyday command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((a for a in args if not a.startswith("-")), None)
        if first is not None and first not in self.commands and not {"-h", "--help", "--version"} & set(args):
            args = ["submission", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToGrade, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="backprop-autograder")
def main() -> None:
    """Autograder for deep-learning math homework.

    \b
    grade SUBMISSION...          grade .py files or notebooks (see: grade submission --help)
    grade validate [PATH]        check problem specs
    grade selfcheck [PATH]       cross-check the reference against torch autograd
    grade template [PATH]        write the blank submission students start from
    """


@main.command("submission")
@click.argument("submissions", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--problems", "problems", type=click.Path(path_type=Path), default=None,
              help="Problem set folder or spec file (default: the bundled problems/hw1).")
@click.option("--only", metavar="PATTERN", help="Grade only questions whose function or id matches (glob).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of every draw (default: random, always printed).")
@click.option("--trials", type=click.IntRange(min=1), help="Random trials per question (default: the spec's).")
@click.option("--trial", type=click.IntRange(min=0), help="Grade only this trial (to replay a failure).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report to this file.")
def submission(submissions: tuple[Path, ...], problems: Path | None, only: str | None, seed: int | None,
               trials: int | None, trial: int | None, fmt: str, output: Path | None) -> None:
    """Grade submissions (.py or .ipynb) on randomized trials, each in an isolated worker."""
    from grader.grading import grade
    from grader.report import render_json, render_text
    from grader.submission import SubmissionError

    problem_set = _load_set(problems or bundled_problems())
    seed = random_seed() if seed is None else seed
    results, unreadable = [], []
    for sub in submissions:
        try:
            results.append(grade(sub, problem_set, seed, only=only, trials=trials, trial=trial))
        except SubmissionError as exc:
            unreadable.append(str(exc))
    if not results:
        raise ToolkitFailure("nothing could be graded: " + "; ".join(unreadable))
    for problem in unreadable:  # the others were graded; say which were not
        click.echo(f"Error: {problem}", err=True)
    if not any(r.outputs for r in results):
        raise ToolkitFailure(f"no question matches --only {only!r}")
    text = render_json(results, bundled_problems()) if fmt == "json" else "\n\n".join(
        render_text(r, bundled_problems()) for r in results)
    _emit(text, output)


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the template to this file.")
def template(path: Path | None, output: Path | None) -> None:
    """Write the blank submission for a problem set: every function, its shapes, NotImplementedError."""
    from grader.template import render_template

    path = path or bundled_problems()
    problem_set = _load_set(path)
    shown = path if not path.is_absolute() else path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) \
        else path
    _emit(render_template(problem_set, f"grade template {shown}").rstrip("\n"), output)


def _load_set(path: Path) -> "ProblemSet":
    """The problem set at ``path``, or every mistake in it on stderr and a one-line failure."""
    from grader.selfcheck_report import render_problems
    from grader.spec import load_problem_set
    from reference.errors import SpecError

    try:
        return load_problem_set(path)
    except SpecError as exc:
        click.echo(render_problems(str(path), exc.problems), err=True)
        raise ToolkitFailure(f"the problem set {path} is not valid; run: grade validate {path}") from None


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ToolkitFailure(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"report written to {output}", err=True)


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
def validate(path: Path | None) -> None:
    """Check a problem set (folder) or one spec file and report every problem found."""
    from grader.selfcheck_report import render_problems, render_valid
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
    from grader.selfcheck_report import render_problems, render_selfcheck
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
