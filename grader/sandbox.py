"""Run a submission in a separate, limited process and hand back plain float64 arrays.

The parent never imports, execs or unpickles anything of the student's: it starts
``grader/worker.py`` in a fresh process (new session, scrubbed environment, empty
scratch directory, rlimits), talks to it over two pipes (framing: see the
worker's docstring) and validates every byte that comes back. A hang, crash or
exit during a call costs that call only: the next call starts a fresh worker and
loads the submission again, skipping the statements that killed earlier workers.
The worker runs under the strongest isolation the host offers (``grader.isolation``:
bubblewrap or unshare namespaces) and, where one can be made, in a pids cgroup
(``grader.process_cgroup``); ``layers`` names what was active and what was missing.

This module holds the public results and the ``Sandbox`` that ties the parts
together: starting and watching worker processes is ``grader.sandbox_process``,
the wire format and its validation is ``grader.sandbox_protocol``, and following
a request's answers as they stream back is ``grader.sandbox_stream``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Protocol, Sequence

import numpy as np

from grader.isolation import Isolation, select
from grader.prestart import Booted, start_worker
from grader.process_cgroup import PidsCgroup

# Limits, worker_command, worker_environment, rlimit_plan and SandboxError are public here too
from grader.sandbox_process import (Limits, SandboxError, Worker, describe_exit, kill_workers, release, remove_tree,
                                    rlimit_plan, size, worker_command, worker_environment)
from grader.sandbox_protocol import (LOADED, LOADING, MAX_TEXT, Answer, Malformed, clean, fields, line_number, request,
                                     split_payload, where)
# Batch is public here too: what run() takes
from grader.sandbox_stream import FLUSH_AFTER, HEADER_CAP, SLACK, Batch, Progress, Stream

STATUSES = ("ok", "error", "timeout", "crashed", "missing", "forbidden")
STARTUP_TIMEOUT = 30.0  # python + numpy on a cold disk; no student code runs before the first event


@dataclass(frozen=True)
class LoadIssue:
    """A top-level statement that failed while loading. ``kind``: exception, exit, syntax, crashed,
    timeout, protocol or forbidden; ``message`` is for a student and does not repeat the line."""

    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class LoadReport:
    """What loading found: the top-level callables, the failed statements, the skipped lines."""

    functions: tuple[str, ...]
    issues: tuple[LoadIssue, ...]
    skipped: tuple[int, ...]  # statements that killed or hung a worker, not run in later workers
    layers: tuple[str, ...]  # the isolation that was active
    stdout: str = ""  # what the submission printed while loading (bounded)


@dataclass(frozen=True)
class CallResult:
    """One call's outcome; ``status`` is one of ``STATUSES`` and ``message`` is for a student."""

    status: str
    outputs: tuple[np.ndarray, ...]  # plain float64 arrays, only when status == "ok"
    notes: tuple[str, ...]  # conversions made, e.g. "output 0 is a float32 array, converted to float64"
    mutated: tuple[str, ...]  # arguments the function changed in place
    message: str
    elapsed: float
    stdout: str


# --- how workers are started ---------------------------------------------------------

class WorkerLauncher(Protocol):
    """Another way to start a sandbox's workers than a fresh process: ``grader.zygote`` forks them."""

    @property
    def layers(self) -> tuple[str, ...]:
        """What the last worker launched this way adds to the isolation layers (empty if it launched none)."""

    def launch(self, isolation: Isolation, limits: Limits, plan: Sequence[tuple[int, int, int, str]],
               cgroup: PidsCgroup | None) -> Worker | None:
        """A started worker, not loaded yet, in ``cgroup``; or None: the sandbox then starts a fresh process."""

    def take_booted(self, isolation: Isolation | None, limits: Limits) -> Booted | None:
        """A first worker for a new sandbox, booted ahead with its cgroup and scratch; or None: it starts its own."""


# the launcher of sandboxes made without one, e.g. by grade_planned for a batch pool process (grader.batch)
LAUNCHER: ContextVar[WorkerLauncher | None] = ContextVar("grader_sandbox_launcher", default=None)


@contextlib.contextmanager
def launching_with(launcher: WorkerLauncher) -> Iterator[None]:
    """Sandboxes made in this block without a launcher of their own start their workers with ``launcher``."""
    token = LAUNCHER.set(launcher)
    try:
        yield
    finally:
        LAUNCHER.reset(token)


# --- the sandbox -------------------------------------------------------------------

@dataclass(frozen=True)
class _Loaded:
    functions: tuple[str, ...]
    errors: tuple[dict, ...]
    stdout: str


class Sandbox:
    """One submission in a worker process: ``load()`` once, then ``call()`` or ``call_many()`` as often as needed.

    No student behaviour makes ``load`` or ``call`` raise; a worker that hangs or dies is
    replaced on the next call, at most ``limits.max_restarts`` times. Use it as a context
    manager (or call ``close``) so that nothing it started outlives it.
    """

    def __init__(self, source: str, filename: str, limits: Limits = Limits(),
                 locate: Callable[[int], str] = line_number, forbidden: Sequence[str] = (),
                 isolation: Isolation | None = None, launcher: WorkerLauncher | None = None,
                 booted: Booted | None = None) -> None:
        """``locate`` names a line of ``source`` in messages (a notebook's code is numbered by cell).

        ``forbidden``: top-level modules the worker refuses to import (status ``forbidden``).
        ``isolation``: None for the strongest the host offers, or ``$GRADE_ISOLATION``'s choice.
        ``launcher``: how workers start (None: ``LAUNCHER``'s, else each in a fresh process); unless
        ``booted`` is given, the first may have been booted while the previous sandbox ran (``take_booted``).
        ``booted``: a worker started before the submission was known (``grader.prestart``), adopted
        as this sandbox's first worker; it must have been started with ``limits``.
        """
        if booted is not None and (booted.limits != limits or (isolation or booted.isolation) != booted.isolation):
            raise SandboxError("a pre-started worker can only be adopted with the limits and isolation it has")
        self._launcher = launcher if launcher is not None else LAUNCHER.get()
        if booted is None and self._launcher is not None:
            booted = self._launcher.take_booted(isolation, limits)
        self._source, self._filename, self._limits, self._locate = source, filename, limits, locate
        self._forbidden = sorted(set(forbidden))
        self._isolation = booted.isolation if booted else isolation or select()
        self._plan = rlimit_plan(limits)
        self._cgroup = booted.cgroup if booted else PidsCgroup.create(limits.processes)
        self._scratch = booted.scratch if booted else Path(tempfile.mkdtemp(prefix="grader-sandbox-"))
        self._live: list[Worker] = [booted.worker] if booted else []  # the running worker, if any
        # also on garbage collection and at interpreter exit, should a caller forget close()
        self._release = weakref.finalize(self, release, self._live, self._scratch, self._cgroup)
        self._starts = 1 if booted else 0
        self._idle: Worker | None = booted.worker if booted else None  # started and not loaded yet
        self._skipped: dict[int, LoadIssue] = {}  # line -> why, in the order they were found
        self._report: LoadReport | None = None
        self._load_sent: tuple[Worker, str | None, float] | None = None  # preload: (worker, send failure, deadline)
        self._stream: Stream | None = None  # the latest run's calls in flight
        self._calls = 0

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def layers(self) -> tuple[str, ...]:
        """The isolation layers every worker of this sandbox runs under, then those missing ("missing: ...")."""
        if self._cgroup is not None:
            count = (f"cgroup: at most {self._limits.processes} processes and threads, all killed with the worker",)
        else:
            root = "; root ignores RLIMIT_NPROC" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
            count = (f"missing: process count limit (no writable pids cgroup{root})",)
        labels = self._isolation.labels(self._limits.scratch_size, self._cgroup is not None)
        given = [label for label in (*labels, *count) if not label.startswith("missing: ")]
        return ("separate process", "isolated interpreter (python -I -S)", "scrubbed environment",
                "scratch working directory", *(label for *_, label in self._plan), "BLAS threads pinned to 1",
                *given, *(self._launcher.layers if self._launcher is not None else ()),
                *(label for label in (*labels, *count) if label.startswith("missing: ")))

    @property
    def isolation(self) -> str:
        """The isolation mode of this sandbox's workers: bwrap, unshare or process."""
        return self._isolation.mode

    @property
    def process_group(self) -> int | None:
        """The process group of the running worker, if one is running."""
        return self._worker.pgid if self._worker else None

    @property
    def scratch(self) -> Path:
        """The directory holding every worker's working directory; ``close`` removes it."""
        return self._scratch

    def close(self) -> None:
        """Kill the worker's whole process group and remove the scratch directory; the sandbox is done."""
        self._release()

    def start(self) -> None:
        """Start the first worker process without waiting for it, so that it boots (the isolation, Python,
        NumPy) while the caller does something else; ``load`` then uses it. No student code runs yet."""
        self._check_open()
        if self._report is None and self._idle is None and self._worker is None:
            self._idle = self._spawn()

    def preload(self) -> None:
        """Send the submission to the worker already started (``start``, or adopted) without waiting for it, so
        that it loads while the caller does something else; ``load`` then waits for what loading found."""
        self._check_open()
        if self._report is None and self._idle is not None and self._load_sent is None:
            self._load_sent = (self._idle, *self._send_load(self._idle))

    def load(self) -> LoadReport:
        """Load the submission (once) and report what it defines and which statements failed."""
        if self._report is None:
            self._check_open()
            loaded = self._start()
            if isinstance(loaded, str):
                loaded, gave_up = _Loaded((), (), ""), [LoadIssue(0, "crashed", loaded)]
            else:
                gave_up = []
            issues = sorted([*self._skipped.values(), *(_load_issue(e, self._locate) for e in loaded.errors), *gave_up],
                            key=lambda i: i.line)
            self._report = LoadReport(loaded.functions, tuple(issues), tuple(sorted(self._skipped)), self.layers,
                                      loaded.stdout)
        return self._report

    def call(self, function: str, args: Sequence[tuple[str, np.ndarray | int | float]], n_outputs: int | None,
             timeout: float) -> CallResult:
        """Call ``function`` on ``args`` (name, value) in the worker, with ``timeout`` s of wall clock.

        ``n_outputs`` None means the whole return value is one output; a number means a
        tuple or list of exactly that many. The student receives fresh copies of the values.
        """
        return self.call_many(function, [args], n_outputs, timeout)[0]

    def call_many(self, function: str, calls: Sequence[Sequence[tuple[str, np.ndarray | int | float]]],
                  n_outputs: int | None, timeout: float, groups: Sequence[int] | None = None,
                  stop_on: Collection[str] = ()) -> list[CallResult]:
        """Call ``function`` on each of ``calls`` (each an ``args`` of ``call``): one ``Batch``, see ``run``."""
        (results,) = self.run([Batch.of(function, calls, n_outputs, timeout, groups, stop_on)])
        return results

    def run(self, batches: Iterable[Batch]) -> Iterator[list[CallResult]]:
        """Send every batch, then give each batch's results in order, each as soon as its calls are answered.

        Each batch goes to the worker as soon as ``batches`` yields it (a list or tuple goes in
        one request), before this returns: the worker runs the first batches while the caller
        still makes the later ones, and while it checks the answers of earlier ones. The
        worker runs them back to back, answering many calls per message, and never waits for
        this process. For each batch the results are those of a loop over ``call``: each call
        has ``timeout`` s (the worker's own measure, and this process gives up ``SLACK`` s
        later) and its own outputs, notes and mutations. A batch's list ends at the first call
        that times out or crashes (the worker is replaced, as after ``call``, and the later
        batches go to the new one) and at the first whose status is in the batch's
        ``stop_on``; a call that is not ok skips the rest of its group, and skipped calls have
        no result. So a list may be shorter than the batch. What the calls answered in one
        message printed goes with the first of them. One run at a time: starting another, or
        stopping the iteration early, stops the worker if it is still answering.
        """
        self._check_open()
        self._abandon()
        if isinstance(batches, (list, tuple)):
            todo = [self._progress(b) for b in batches]
            if any(p.next is not None for p in todo):
                self._send_calls([p for p in todo if p.next is not None])
            return self._results(todo)
        todo = []
        for batch in batches:
            todo.append(self._progress(batch))
            stream = self._stream
            if todo[-1].next is not None and (stream is None or stream.live):
                self._send_calls([todo[-1]], stream)
                if self._worker is not None:
                    self._worker.pump()  # its answers so far: the worker need not wait for room to send more
        return self._results(todo)

    # -- internals --

    def _progress(self, batch: Batch) -> Progress:
        p = Progress(batch)
        if batch.function not in self.load().functions:
            while p.next is not None:  # as many answers as a loop over call would get
                p.settle(_failed("missing", f"there is no function named {batch.function!r} in {self._filename}"))
        return p

    def _results(self, todo: list[Progress]) -> Iterator[list[CallResult]]:
        try:
            for p in todo:
                while p.next is not None:
                    stream = self._stream
                    if stream is None or not stream.live:
                        stream = self._send_calls([q for q in todo if q.next is not None])
                    if stream is not None:
                        stream.step()
                yield p.results
        finally:
            self._abandon()

    def _abandon(self) -> None:
        """Stop the worker if it is still answering calls nobody will read (a run stopped early)."""
        stream, self._stream = self._stream, None
        if stream is not None and stream.live and not stream.finished:
            stream.live = False
            self._stop()

    def _send_calls(self, todo: list[Progress], stream: Stream | None = None) -> Stream | None:
        """Send every batch of ``todo`` from its next call on, in one request: to the live ``stream``'s worker
        (it then follows them too), else to a new stream's. None when no worker could start."""
        if stream is None:
            if self._worker is None:
                started = self._start()
                if isinstance(started, str):
                    todo[0].settle(_failed("crashed", started))
                    return None
            assert self._worker is not None
            stream = Stream(self._worker, [], time.monotonic(), self._limits.max_output_elements, self._answer,
                            self._failure, self._stop)
        elif stream.finished:  # the worker is idle: the new calls' time starts now
            stream.mark = time.monotonic()
        self._stream = stream
        parts = []
        for p in todo:
            # call k answers with id p.base + k: a stale or forged answer cannot pass for another
            first, p.base = p.next, self._calls + 1 - (p.next or 0)
            self._calls += len(p.batch.calls) - (first or 0)
            parts.append(p.batch.header(p.base + (first or 0), first or 0, p.each))
        stream.todo.extend(todo)
        header = '{"cmd": "calls", "flush_after": %r, "max_elements": %d, "batches": [%s]}' % (
            FLUSH_AFTER, self._limits.max_output_elements, ", ".join(parts))
        frame = request(header.encode("utf-8"), [p.batch.calls.blob_from(p.next or 0) for p in todo])
        if len(stream.todo) > len(todo):
            stream.worker.queue(frame)  # behind calls in flight: a worker that is gone shows in their answers
            return stream
        try:
            failure = stream.worker.send(frame, stream.mark + todo[0].batch.timeout + SLACK)
        except BaseException:
            self._stop()  # an interrupt mid-request leaves the pipes out of step
            raise
        if failure is not None:
            stream.fail(todo[0], failure, known=True)
        return stream

    def _answer(self, answer: Answer, timeout: float, stdout: str) -> CallResult:
        if answer.elapsed > timeout:
            return _failed("timeout", f"did not return within {timeout:g} s", answer.elapsed, stdout)
        if answer.outputs is not None:
            return CallResult("ok", answer.outputs, answer.notes, answer.mutated, "", answer.elapsed, stdout)
        err = answer.error
        assert err is not None  # read_answer: an answer without outputs has an error
        status = err["kind"] if err["kind"] in ("missing", "forbidden") else "error"
        return CallResult(status, (), answer.notes, answer.mutated, self._error_message(err), answer.elapsed, stdout)

    def _failure(self, worker: Worker, failure: str, timeout: float, elapsed: float) -> CallResult:
        """The result of the call during which the worker hung, died or sent garbage; the worker is stopped."""
        if failure == "timeout":
            self._stop()
            return _failed("timeout", f"did not return within {timeout:g} s", elapsed, worker.output.take())
        if failure == "died":
            code = self._isolation.exit_code(worker.finish(grace=1.0))
            self._stop()
            stdout = worker.output.take()
            what, hint = describe_exit(code, worker.cpu_used, self._limits, stdout)
            return _failed("crashed", " ".join(filter(None, [what, "during the call", hint])), elapsed, stdout)
        self._stop()  # whatever comes next on this pipe cannot be trusted to line up
        return _failed("error", "the worker sent malformed data", elapsed, worker.output.take())

    def _error_message(self, err: dict) -> str:
        text = clean(err["message"])
        if err["kind"] in ("output", "missing", "syntax"):
            return text
        if err["kind"] == "forbidden":
            return _forbidden_message(text)
        if err["kind"] == "exit":
            return f"{text} during the call"
        message = f"{clean(err['type'])}: {text}{where(err['frames'], self._locate)}"
        if err["kind"] == "memory":
            return f"ran out of memory (limit {size(self._limits.memory)}): {message}"
        return message

    def _start(self) -> _Loaded | str:
        """Start a worker and load the submission into it, skipping statements that kill or hang it.

        What loading found, or a message for the student once the restarts have run out.
        """
        while self._idle is not None or self._starts <= self._limits.max_restarts:
            worker = self._idle or self._spawn()
            self._idle = None
            outcome = self._load_into(worker)
            if isinstance(outcome, _Loaded):
                return outcome
            self._skipped[outcome.line] = outcome
        self._stop()
        return (f"the submission kept killing its worker; the grader gave up after {self._limits.max_restarts} "
                "restarts and did not run it again")

    def _spawn(self) -> Worker:
        """A new worker process in a fresh working directory, not yet loaded; it replaces any other."""
        self._stop()
        for old in self._scratch.iterdir():  # what earlier workers wrote is of no use to this one
            remove_tree(old)
        workdir = self._scratch / f"run-{self._starts}"
        workdir.mkdir()
        self._starts += 1
        worker = None
        if self._launcher is not None:
            worker = self._launcher.launch(self._isolation, self._limits, self._plan, self._cgroup)
        if worker is None:
            worker = start_worker(self._isolation, self._limits, self._cgroup, workdir)
        self._live.append(worker)
        return worker

    def _send_load(self, worker: Worker) -> tuple[str | None, float]:
        """Send the load request: (None or why it could not be sent, the deadline of the worker's first event)."""
        frame = request({"cmd": "load", "source": self._source, "filename": self._filename,
                         "skip_lines": sorted(self._skipped), "forbidden": self._forbidden})
        deadline = time.monotonic() + STARTUP_TIMEOUT
        return worker.send(frame, deadline), deadline

    def _load_into(self, worker: Worker) -> _Loaded | LoadIssue:
        sent, self._load_sent = self._load_sent, None
        reply, deadline = sent[1:] if sent is not None and sent[0] is worker else self._send_load(worker)
        line: int | None = None
        while True:
            reply = reply or worker.receive(deadline, HEADER_CAP)
            try:
                if isinstance(reply, str):
                    raise Malformed(reply)
                header = split_payload(reply)[0]
                if type(header) is dict and header.get("event") == "loading":
                    if line is None:  # the student's code starts now, and the load timeout with it
                        deadline = time.monotonic() + self._limits.load_timeout
                    line, reply = fields(header, LOADING)["line"], None
                    continue
                loaded = fields(header, LOADED)
                return _Loaded(tuple(loaded["functions"]), tuple(loaded["errors"]), worker.output.take())
            except Malformed as exc:
                return self._fatal_statement(worker, line, str(exc) or "malformed")

    def _fatal_statement(self, worker: Worker, line: int | None, failure: str) -> LoadIssue:
        """Why statement ``line`` cannot be run; the worker is gone afterwards."""
        code = self._isolation.exit_code(worker.finish(grace=1.0 if failure == "died" else 0.0))
        if line is None:  # no student code had run yet: the sandbox itself is broken
            raise SandboxError(f"the sandbox worker failed before running any student code ({failure}, exit code "
                               f"{code}): {worker.output.take()[-MAX_TEXT:]}")
        if failure == "timeout":
            return LoadIssue(line, "timeout", "this statement was still running when loading hit the "
                             f"{self._limits.load_timeout:g} s limit; it was skipped")
        if failure == "died":
            what, hint = describe_exit(code, worker.cpu_used, self._limits, worker.output.take())
            return LoadIssue(line, "crashed", " ".join(filter(None, [what, hint, "while this statement ran; "
                                                                      "it was skipped"])))
        return LoadIssue(line, "protocol", "this statement wrote onto the grader's pipe; it was skipped")

    @property
    def _worker(self) -> Worker | None:
        return self._live[0] if self._live else None

    def _stop(self) -> None:
        self._idle = None
        kill_workers(self._live, self._cgroup)

    def _check_open(self) -> None:
        if not self._release.alive:
            raise SandboxError("this sandbox was closed; start a new one")


def _failed(status: str, message: str, elapsed: float = 0.0, stdout: str = "") -> CallResult:
    return CallResult(status, (), (), (), message, elapsed, stdout)


def _forbidden_message(module: str) -> str:
    return f"imports '{module}', which this problem set forbids: derive the result by hand with NumPy"


def _load_issue(error: dict, locate: Callable[[int], str]) -> LoadIssue:
    text = clean(error["message"])
    if error["kind"] == "forbidden":
        return LoadIssue(error["line"], "forbidden", f"{_forbidden_message(text)} (the import was refused)")
    if error["kind"] == "exit":
        return LoadIssue(error["line"], "exit", f"{text} while loading; the statements after it still ran")
    if error["kind"] == "syntax":
        return LoadIssue(error["line"], "syntax", f"SyntaxError: {text}")
    return LoadIssue(error["line"], "exception", f"{clean(error['type'])}: {text}{where(error['frames'], locate)}; "
                     "the statements after it still ran")
