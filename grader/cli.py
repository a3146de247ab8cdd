"""The ``grade`` command: click decorators and one call per command, nothing more.

Imports are deferred into the commands so that start-up stays fast and torch is
imported only by ``grade selfcheck``.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import click

if TYPE_CHECKING:
    from grader.gradebook import Gradebook
    from grader.spec import ProblemSet

EXIT_PROBLEMS = 1  # validation problems found, or the self-check disagreed
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # as a shell reports Ctrl-C
FORMATS = ("text", "json", "gradescope", "prairielearn", "junit", "html")
SINGLE_FORMATS = ("gradescope", "prairielearn", "html")  # one submission per file
GRADESCOPE_VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
DEFAULT_GRADEBOOK = Path("gradebook.sqlite")  # in the working directory, unless --gradebook says otherwise
GRADEBOOK_ENV = "GRADE_GRADEBOOK"


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
    grade batch DIR_OR_GLOB...   grade a class in parallel into the gradebook
    grade export                 the gradebook as CSV (one row per student)
    grade reports DIR            HTML reports from the gradebook: one per student, and the class
    grade gradescope-bundle      build the Gradescope autograder zip
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
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text or json; gradescope, prairielearn (results.json), junit (XML) or html (one file).")
@click.option("--visibility", type=click.Choice(GRADESCOPE_VISIBILITIES), default="visible", show_default=True,
              help="Gradescope: when students see the tests.")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report to this file.")
def submission(submissions: tuple[Path, ...], problems: Path | None, only: str | None, seed: int | None,
               trials: int | None, trial: int | None, fmt: str, visibility: str, output: Path | None) -> None:
    """Grade submissions (.py or .ipynb) on randomized trials, each in an isolated worker."""
    from grader import prestart

    prestart.begin()  # first: the first worker boots while the rest of the grader imports and draws the trials
    from grader.grading import grade_planned
    from grader.plan import make_plan
    from grader.submission import SubmissionError

    problem_set = _load_set(problems or bundled_problems())
    seed = random_seed() if seed is None else seed
    plan = make_plan(problem_set, seed, only, trials, trial, lazy=True)  # drawn as the first file is graded
    results, unreadable = [], []
    for sub in submissions:
        try:
            results.append(grade_planned(sub, plan))
        except SubmissionError as exc:
            unreadable.append(str(exc))
    if not results:
        raise ToolkitFailure("nothing could be graded: " + "; ".join(unreadable))
    for problem in unreadable:  # the others were graded; say which were not
        click.echo(f"Error: {problem}", err=True)
    if not any(r.outputs for r in results):
        raise ToolkitFailure(f"no question matches --only {only!r}")
    if fmt in SINGLE_FORMATS and len(results) > 1:
        raise ToolkitFailure(f"--format {fmt} takes one submission; for a class, use: grade batch")
    _emit(_render(results, problem_set, only, fmt, visibility), output)


def _render(results: list, problem_set: "ProblemSet", only: str | None, fmt: str, visibility: str) -> str:
    """The report of graded ``results`` in ``fmt``; every format but text is built from the JSON document."""
    import json

    from grader.report import render_text, to_json

    if fmt == "text":
        return "\n\n".join(render_text(r, bundled_problems()) for r in results)
    docs = [to_json(r, bundled_problems()) for r in results]
    if fmt == "json":
        return json.dumps(docs[0] if len(docs) == 1 else docs, indent=2)
    if fmt == "junit":
        from grader.formats.junit import to_junit
        return to_junit(docs)
    if fmt == "gradescope":
        from grader.formats.gradescope import to_gradescope
        return json.dumps(to_gradescope(docs[0], visibility), indent=2)
    if fmt == "prairielearn":
        from grader.formats.prairielearn import to_prairielearn
        return json.dumps(to_prairielearn(docs[0]), indent=2)
    from grader.curves import plots
    from grader.html_report import render_html
    from grader.selection import selected_questions

    docs[0]["plots"] = plots(results[0].submission, selected_questions(problem_set, only))
    return render_html(docs[0])


@main.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--problems", "problems", type=click.Path(path_type=Path), default=None,
              help="Problem set folder or spec file (default: the bundled problems/hw1).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Submissions graded at once (default: the cores).")
@click.option("--gradebook", type=click.Path(path_type=Path, dir_okay=False), envvar=GRADEBOOK_ENV,
              default=DEFAULT_GRADEBOOK, show_default=True, help="The SQLite gradebook (env: GRADE_GRADEBOOK).")
@click.option("--seed", type=click.IntRange(min=0),
              help="Seed of the batch (default: the gradebook's, chosen at random on its first batch).")
@click.option("--only", metavar="PATTERN", help="Grade only questions whose function or id matches (glob).")
@click.option("--trials", type=click.IntRange(min=1), help="Random trials per question (default: the spec's).")
@click.option("--regrade", is_flag=True, help="Grade everything again, ignoring the gradebook's cached results.")
@click.option("--reports", type=click.Path(path_type=Path, file_okay=False),
              help="Then write HTML reports to this folder (as grade reports does).")
def batch(targets: tuple[str, ...], problems: Path | None, jobs: int | None, gradebook: Path, seed: int | None,
          only: str | None, trials: int | None, regrade: bool, reports: Path | None) -> None:
    """Grade a class: every .py/.ipynb in folders, files or quoted globs, in parallel, into the gradebook.

    \b
    Students are named after their files (subs/alice.py -> alice) or, for files
    that share a name or a folder per student, their folders (subs/alice/hw1.ipynb
    -> alice). Only what changed since the last run is graded.
    """
    from grader.batch import BatchInterrupted, BatchOptions, run_batch
    from grader.batch_report import render_summary
    from grader.gradebook import Gradebook
    from grader.progress import ProgressBar
    from grader.roster import find_submissions

    problem_path = problems or bundled_problems()
    problem_set = _load_set(problem_path)
    roster = find_submissions(targets)
    if not roster.entries:
        raise ToolkitFailure("no submissions found: " + "; ".join(roster.problems or [", ".join(targets)]))
    stderr = sys.stderr
    bar = ProgressBar(stderr, stderr.isatty())
    stopped: BatchInterrupted | None = None
    with Gradebook(gradebook) as book:
        options = BatchOptions(book.batch_seed(seed, random_seed()), only, trials, regrade=regrade)
        try:
            with _terminate_as_interrupt():
                result = run_batch(roster, problem_set, book, options, jobs or _cores(), bar)
        except BatchInterrupted as exc:
            stopped = exc
        bar.close()
        if stopped is None and reports is not None:
            _write_reports(book, problem_set.name, reports)
    if stopped is not None:
        resume = _resume_command(targets, problems, gradebook, only, trials)
        click.echo(render_summary(stopped.partial, str(gradebook), resume))
        _exit_now(EXIT_INTERRUPTED)
    click.echo(render_summary(result, str(gradebook)))
    if result.failures or result.skipped:
        sys.exit(EXIT_PROBLEMS)


@main.command()
@click.option("--gradebook", type=click.Path(path_type=Path, dir_okay=False), envvar=GRADEBOOK_ENV,
              default=DEFAULT_GRADEBOOK, show_default=True, help="The SQLite gradebook (env: GRADE_GRADEBOOK).")
@click.option("--problem-set", "set_name", help="Which problem set, when the gradebook holds several.")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the CSV to this file.")
def export(gradebook: Path, set_name: str | None, output: Path | None) -> None:
    """The gradebook as CSV: one row per student, one column per question (points), and the total."""
    from grader.formats.gradebook_csv import to_csv

    with _open_gradebook(gradebook) as book:
        name = _set_name(book, set_name)
        _emit(to_csv([(r.student, r.report) for r in book.students(name)]).rstrip("\n"), output)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--gradebook", type=click.Path(path_type=Path, dir_okay=False), envvar=GRADEBOOK_ENV,
              default=DEFAULT_GRADEBOOK, show_default=True, help="The SQLite gradebook (env: GRADE_GRADEBOOK).")
@click.option("--problem-set", "set_name", help="Which problem set, when the gradebook holds several.")
def reports(folder: Path, gradebook: Path, set_name: str | None) -> None:
    """Write HTML reports from the gradebook: FOLDER/<student>.html each, and FOLDER/index.html for the class."""
    with _open_gradebook(gradebook) as book:
        _write_reports(book, _set_name(book, set_name), folder)


@main.command("gradescope-bundle")
@click.option("--problems", "problems", type=click.Path(path_type=Path), default=None,
              help="Problem set folder (default: the bundled problems/hw1).")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), default=Path("autograder.zip"),
              show_default=True, help="Where to write the zip.")
@click.option("--seed", type=click.IntRange(min=0),
              help="Seed every submission is graded with (default: chosen now, at random, and kept in the zip).")
@click.option("--visibility", type=click.Choice(GRADESCOPE_VISIBILITIES), default="visible", show_default=True,
              help="When students see the tests.")
def gradescope_bundle(problems: Path | None, output: Path, seed: int | None, visibility: str) -> None:
    """Build the zip to upload as a Gradescope programming assignment's autograder."""
    from grader.formats.gradescope_bundle import build_bundle

    problem_path = problems or bundled_problems()
    _load_set(problem_path)  # a set that does not load must not reach the students
    seed = random_seed() if seed is None else seed
    try:
        contents = build_bundle(problem_path, output, seed, visibility)
    except OSError as exc:
        raise ToolkitFailure(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output} ({len(contents)} files; seed {seed}, tests {visibility}); upload it in the "
               "assignment's Configure Autograder page")


@main.command("gradescope-run", hidden=True)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), envvar="AUTOGRADER_ROOT",
              default=Path("/autograder"), show_default=True)
def gradescope_run(root: Path) -> None:
    """What the bundle's run_autograder calls: grade ROOT/submission into ROOT/results/results.json."""
    from grader.formats.gradescope_bundle import run_autograder

    click.echo(run_autograder(root))


def _write_reports(book: "Gradebook", set_name: str, folder: Path) -> None:
    from grader.report_folder import write_reports

    try:
        written = write_reports(book.students(set_name), folder)
    except OSError as exc:
        raise ToolkitFailure(f"cannot write the reports to {folder}: {exc.strerror or exc}") from None
    click.echo(f"HTML reports written to {folder}/ ({len(written) - 1} student(s); the class: "
               f"{folder / 'index.html'})", err=True)


def _open_gradebook(path: Path) -> "Gradebook":
    from grader.gradebook import Gradebook

    if not path.is_file():
        raise ToolkitFailure(f"no gradebook at {path}; grade a class first: grade batch SUBMISSIONS "
                             f"--gradebook {path}")
    return Gradebook(path)


def _set_name(book: "Gradebook", wanted: str | None) -> str:
    names = book.problem_sets()
    if wanted is not None:
        if wanted not in names:
            raise ToolkitFailure(f"the gradebook has no problem set {wanted!r}; it has: {', '.join(names) or 'none'}")
        return wanted
    if len(names) != 1:
        raise ToolkitFailure("the gradebook is empty" if not names else
                             f"the gradebook holds several problem sets ({', '.join(names)}): add --problem-set NAME")
    return names[0]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _resume_command(targets: tuple[str, ...], problems: Path | None, gradebook: Path, only: str | None,
                    trials: int | None) -> str:
    import shlex

    parts = ["grade", "batch", *targets, "--gradebook", str(gradebook)]
    parts += ["--problems", str(problems)] if problems else []
    parts += ["--only", only] if only else []
    parts += ["--trials", str(trials)] if trials else []
    return shlex.join(parts)


def _exit_now(code: int) -> None:
    """Exit without the interpreter's exit handlers, once everything is saved and said.

    An interrupted batch has stopped its pool already; the executor's manager thread can
    wait forever at exit for a pool process killed in the middle of a message (a limit of
    concurrent.futures), which would keep a stopped batch from ever ending.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) is handled like Ctrl-C: saved results stay, workers stop."""
    import signal

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    from grader.spec import load_problem_set
    from reference.errors import SpecError

    try:
        return load_problem_set(path, trust_cache=True)
    except SpecError as exc:
        from grader.selfcheck_report import render_problems

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
