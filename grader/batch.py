"""Grading a class: every submission of a roster, in parallel, into the gradebook.

The parent process decides what needs grading (a problem whose cached part is
missing from the gradebook), hands each submission to a pool of worker
processes (the parent's share of the work, sampling and comparing, is CPU-bound
NumPy, hence processes), and alone writes the gradebook, one transaction per
submission, as results arrive. Each grading process keeps a zygote
(``grader.zygote``) from which every submission's sandbox forks its workers, each
in fresh namespaces, instead of starting Python and NumPy for every submission;
where the host cannot do that, sandboxes start fresh worker processes as usual.

The problem set is loaded once, in the parent, and reaches the pool workers by
fork, never once per submission. A submission that cannot be read, or whose
grading fails for any reason, is recorded or reported and the batch goes on.
Ctrl-C (or SIGTERM) stops the workers, keeps every saved result and raises
``BatchInterrupted``; running the same command again resumes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util
import os
import signal
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from grader.gradebook import (Gradebook, PartKey, StudentRecord, content_hash, grader_version, options_key,
                              problem_keys, set_hash)
from grader.report_parts import assemble, split_by_problem
from grader.roster import Entry, Roster
from grader.sandbox import launching_with
from grader.selection import selected_questions
from grader.spec import ProblemSet
from grader.unreadable import unreadable_report
from grader.zygote import ZygoteLauncher, start_launcher

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class BatchOptions:
    """What every submission of the batch is graded with (``seed`` is the gradebook's)."""

    seed: int
    only: str | None = None
    trials: int | None = None
    plots: bool = True  # plot data for the HTML reports (one more sandbox load per submission)
    regrade: bool = False  # ignore cached results (after changing the grader without a version bump)


@dataclass(frozen=True)
class Failure:
    student: str
    path: Path
    message: str


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: the records of every student it saw, and who was graded now."""

    records: tuple[StudentRecord, ...]
    graded: tuple[str, ...]  # students graded in this run (the others came from the gradebook)
    failures: tuple[Failure, ...]  # grading failed (a bug of ours or a crash); retried on the next run
    skipped: tuple[str, ...]  # roster problems: duplicates, empty folders
    elapsed: float
    jobs: int


class BatchInterrupted(Exception):
    """Ctrl-C or SIGTERM: the results saved so far are kept; ``partial`` says what was done."""

    def __init__(self, partial: BatchResult, remaining: int) -> None:
        super().__init__(f"interrupted with {remaining} submission(s) left")
        self.partial = partial
        self.remaining = remaining


@dataclass(frozen=True)
class _Task:
    entry: Entry
    content_hash: str
    problems: tuple[str, ...]  # the problems to grade (the others are cached)
    cached: Mapping[PartKey, Mapping[str, Any]]


def run_batch(roster: Roster, problem_set: ProblemSet, gradebook: Gradebook, options: BatchOptions,
              jobs: int, progress: Progress | None = None) -> BatchResult:
    """Grade every submission of ``roster`` that the gradebook lacks, ``jobs`` at a time."""
    start = time.monotonic()
    plan = _BatchKeys(problem_set, options)
    done: dict[str, StudentRecord] = {}
    graded: list[str] = []
    failures: list[Failure] = []
    tasks: list[_Task] = []
    for entry in roster.entries:
        outcome = plan.prepare(entry, gradebook)
        if isinstance(outcome, _Task):
            tasks.append(outcome)
        elif isinstance(outcome, Failure):
            failures.append(outcome)
        else:
            done[entry.student] = _save_if_changed(gradebook, outcome)
    total = len(roster.entries)
    report = progress or (lambda d, t: None)
    report(len(done) + len(failures), total)

    def finish() -> BatchResult:
        records = sorted(done.values(), key=lambda r: r.student)
        return BatchResult(tuple(records), tuple(sorted(graded)), tuple(failures), roster.problems,
                           time.monotonic() - start, jobs)

    try:
        for task, doc, error in _run(tasks, problem_set, options, jobs):
            if doc is None:
                failures.append(Failure(task.entry.student, task.entry.path, error))
            else:
                record, new_parts = plan.record(task, doc)
                gradebook.save(record, new_parts)
                done[task.entry.student] = record
                graded.append(task.entry.student)
            report(len(done) + len(failures), total)
    except KeyboardInterrupt:
        raise BatchInterrupted(finish(), total - len(done) - len(failures)) from None
    return finish()


def _save_if_changed(gradebook: Gradebook, record: StudentRecord) -> StudentRecord:
    """Every part was cached: the record is rebuilt from them, saved only if it differs from the stored one."""
    stored = gradebook.student(record.problem_set, record.student)
    if stored is None or not stored.same_grade(record):
        gradebook.save(record, {})
    return record


class _BatchKeys:
    """The keys of one batch: which parts each submission needs, and how a record is built from them."""

    def __init__(self, problem_set: ProblemSet, options: BatchOptions) -> None:
        self.problem_set = problem_set
        self.options = options
        self.keys = problem_keys(problem_set)  # problem name -> hash, in the set's order
        self.set_hash = set_hash(self.keys)
        self.version = grader_version()
        self.options_key = options_key(options.only, options.trials)

    def part_key(self, digest: str, problem: str) -> PartKey:
        return PartKey(digest, self.keys[problem], self.version, self.options.seed, self.options_key)

    def prepare(self, entry: Entry, gradebook: Gradebook) -> _Task | StudentRecord | Failure:
        try:
            digest = content_hash(entry.path)
        except OSError as exc:
            return Failure(entry.student, entry.path, f"cannot read {entry.path}: {exc.strerror or exc}")
        wanted = [self.part_key(digest, p) for p in self.keys]
        cached = {} if self.options.regrade else gradebook.parts(wanted)
        missing = tuple(p for p, k in zip(self.keys, wanted) if k not in cached)
        task = _Task(entry, digest, missing, cached)
        return task if missing else self.record(task, None)[0]

    def record(self, task: _Task, doc: Mapping[str, Any] | None
               ) -> tuple[StudentRecord, dict[PartKey, Mapping[str, Any]]]:
        """The student's record from the cached parts and ``doc`` (the grade of ``task.problems``)."""
        new = {} if doc is None else {self.part_key(task.content_hash, p): part
                                      for p, part in split_by_problem(doc, task.problems).items()}
        parts = {**task.cached, **new}
        ordered = [parts[self.part_key(task.content_hash, p)] for p in self.keys]
        report = assemble(ordered, str(task.entry.path))
        record = StudentRecord(self.problem_set.name, task.entry.student, str(task.entry.path), task.content_hash,
                               self.set_hash, self.version, self.options.seed, self.options_key, report)
        return record, new


# --- running the tasks ---------------------------------------------------------------

def _run(tasks: Sequence[_Task], problem_set: ProblemSet, options: BatchOptions, jobs: int
         ) -> Iterator[tuple[_Task, dict[str, Any] | None, str]]:
    """(task, report or None, error) per task, as they finish."""
    if jobs <= 1 or len(tasks) <= 1:  # in this process: no pool to start, and easy to debug
        launcher = start_launcher()
        grader = _Grader(problem_set, options, launcher)
        try:
            for task in tasks:
                yield task, *_grade_safely(grader, task)
        finally:
            if launcher is not None:
                launcher.close()
        return
    executor = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_PoolWorker.start, initargs=(problem_set, options))
    pending: dict[Future, _Task] = {}
    queue = list(reversed(tasks))
    try:
        while queue or pending:
            # a short queue per worker: an interrupted batch has little work in flight to throw away
            while queue and len(pending) < 2 * jobs:
                task = queue.pop()
                pending[executor.submit(_PoolWorker.grade, task)] = task
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                task = pending.pop(future)
                try:
                    yield task, *future.result()
                except Exception as exc:  # the worker died (killed, out of memory): this one only
                    yield task, None, f"the grading process failed: {type(exc).__name__}: {exc}"
    except BaseException:
        _stop(executor)
        raise
    executor.shutdown(wait=True)


def _stop(executor: ProcessPoolExecutor) -> None:
    """Cancel what has not started and stop the workers, whose sandboxes close on the way out."""
    # ProcessPoolExecutor has no public way to stop running work; _processes is stable since 3.8
    processes = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():  # stuck past its SIGTERM: it must not outlive the batch
            process.kill()
            process.join(timeout=10)


def _grade_safely(grader: "_Grader", task: _Task) -> tuple[dict[str, Any] | None, str]:
    """The report of ``task``, or None and why: nothing a submission does may stop the batch."""
    from grader.submission import SubmissionError

    try:
        return grader.grade(task), ""
    except SubmissionError as exc:  # unreadable: recorded as a zero, with the reason
        return unreadable_report(grader.problem_set, task.entry.path, grader.options, str(exc)), ""
    except Exception as exc:
        if os.environ.get("GRADE_DEBUG"):
            traceback.print_exc()
        return None, f"internal error ({type(exc).__name__}: {exc}); rerun with GRADE_DEBUG=1 to see it"


class _Grader:
    """Grades tasks in one process, with the trials, reference values and plot curves drawn once.

    ``launcher``: where every sandbox of this process gets its workers (None: fresh processes).
    """

    def __init__(self, problem_set: ProblemSet, options: BatchOptions, launcher: ZygoteLauncher | None = None
                 ) -> None:
        self.problem_set, self.options, self.launcher = problem_set, options, launcher
        self._plan: Any = None
        self._curves: Any = None

    def grade(self, task: _Task) -> dict[str, Any]:
        from grader.cli import bundled_problems
        from grader.curves import plots, plots_in
        from grader.grading import grade_planned
        from grader.report import to_json

        plan = self.plan()
        plan = replace(plan, questions=tuple(d for d in plan.questions if d.cq.problem.name in task.problems))
        curves = [c for c in self.curves() if c[0].name in task.problems]
        found: dict[str, list] = {}

        def draw_plots(sandbox: Any, load: Any) -> None:
            found["plots"] = plots_in(sandbox, load.functions, curves)

        with launching_with(self.launcher) if self.launcher is not None else contextlib.nullcontext():
            result = grade_planned(task.entry.path, plan, then=draw_plots if self.options.plots and curves else None)
        doc = to_json(result, bundled_problems())
        if self.options.plots:  # a file that does not compile started no sandbox: plots() says so per question
            doc["plots"] = found["plots"] if "plots" in found else plots(task.entry.path, [
                (c[0], c[1]) for c in curves]) if curves else []
        return doc

    def plan(self) -> Any:
        if self._plan is None:
            from grader.plan import make_plan
            self._plan = make_plan(self.problem_set, self.options.seed, self.options.only, self.options.trials)
        return self._plan

    def curves(self) -> list:
        if self._curves is None:
            from grader.curves import plot_questions
            self._curves = plot_questions(selected_questions(self.problem_set, self.options.only))
        return self._curves


class _PoolWorker:
    """The state of one pool process: the problem set it got by fork, and whether it is grading."""

    _current: "_PoolWorker | None" = None  # one per process; set by the pool initializer

    def __init__(self, problem_set: ProblemSet, options: BatchOptions) -> None:
        self.launcher = start_launcher()  # its zygote imports NumPy while the first plan is drawn
        self.grader, self.busy = _Grader(problem_set, options, self.launcher), False

    @staticmethod
    def start(problem_set: ProblemSet, options: BatchOptions) -> None:
        worker = _PoolWorker._current = _PoolWorker(problem_set, options)
        if worker.launcher is not None:
            # a pool process ends through multiprocessing's exit path, which runs these and not atexit
            multiprocessing.util.Finalize(worker.launcher, worker.launcher.close, exitpriority=0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
        signal.signal(signal.SIGTERM, _PoolWorker._on_term)

    @staticmethod
    def _on_term(*_: object) -> None:
        worker = _PoolWorker._current
        if worker is None or not worker.busy:
            _PoolWorker.exit(0)
        raise _Stopped  # unwinds grade(), whose sandbox kills its worker process group

    @staticmethod
    def exit(code: int) -> None:
        """End this pool process now, its zygote and the zygote's cgroup first."""
        worker = _PoolWorker._current
        if worker is not None and worker.launcher is not None:
            worker.launcher.close()
        os._exit(code)

    @staticmethod
    def grade(task: _Task) -> tuple[dict[str, Any] | None, str]:
        worker = _PoolWorker._current
        if worker is None:
            raise RuntimeError("the pool worker was not initialised")
        worker.busy = True
        try:
            return _grade_safely(worker.grader, task)
        except _Stopped:
            _PoolWorker.exit(1)  # the pool would otherwise take the next task
        finally:
            worker.busy = False


class _Stopped(BaseException):
    """Raised in a pool worker by SIGTERM: stop grading, clean up, exit."""
