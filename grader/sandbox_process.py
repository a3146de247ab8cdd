"""How a sandbox worker is started, and one running worker process with its pipes.

This is the operating-system half of the sandbox: the argv, environment and
rlimits a worker starts with; a running worker's process group, its two protocol
pipes and its captured stdout+stderr; and what a worker's exit means for a
student. It knows nothing of what the messages on the pipes say (that is
``grader.sandbox_protocol``); ``grader.sandbox`` ties the two together. Kept apart
so that everything that can leak a process or a file descriptor sits in one place.
"""

from __future__ import annotations

import collections
import fcntl
import importlib.util
import math
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from reference.errors import ToolkitError

if TYPE_CHECKING:
    from grader.process_cgroup import PidsCgroup

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
WORKER = Path(__file__).with_name("worker.py")


def _packages_dir() -> Path:
    # found without importing NumPy, so that a worker can start (grader.prestart) while this process imports it
    spec = importlib.util.find_spec("numpy")
    if spec is None or spec.origin is None:
        raise ImportError("the grader needs NumPy, which is not installed")
    return Path(spec.origin).resolve().parent.parent


PACKAGES = _packages_dir()  # the one directory the worker adds to sys.path
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
TICK = 0.05  # how often a wait looks at whether the worker died (grandchildren may keep pipes open)
BROKEN_EXIT = 70  # grader/worker.py exits with this when the submission broke its pipes or modules
PIPE_SIZE = MiB  # a grade's answers fit, so the worker runs on while the grader is busy drawing
PENDING_CAP = 64 * MiB  # answers taken ahead of their reading; past it the worker waits for the grader


class SandboxError(ToolkitError):
    """The sandbox itself failed (the worker could not start) or was misused; never a student's doing."""


def size(n: int) -> str:
    """``n`` bytes for a student: "2 GiB" when it is a whole number of a unit, else "n bytes"."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} bytes"


@dataclass(frozen=True)
class Limits:
    """What one worker may use. ``cpu_seconds`` is for the worker's whole life, across calls."""

    load_timeout: float = 10.0  # wall clock for loading the submission, all statements together
    memory: int = 2 * GiB  # address space
    cpu_seconds: int = 120
    file_size: int = 16 * MiB
    open_files: int = 64
    max_output: int = 1 * MiB  # captured stdout+stderr per load or call; the rest is discarded
    max_output_elements: int = 25_000_000  # float64 elements returned by one call (200 MB)
    max_restarts: int = 20
    processes: int = 64  # processes and threads of one sandbox, where a pids cgroup can enforce it
    scratch_size: int = 64 * MiB  # the scratch tmpfs, where the isolation gives the worker one

    def __post_init__(self) -> None:
        for name in ("memory", "cpu_seconds", "file_size", "open_files", "max_output", "max_output_elements",
                     "processes", "scratch_size"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise SandboxError(f"Limits.{name}={value!r}: expected a positive whole number")
        if not (isinstance(self.load_timeout, (int, float)) and 0 < self.load_timeout < math.inf):
            raise SandboxError(f"Limits.load_timeout={self.load_timeout!r}: expected a positive number of seconds")
        if type(self.max_restarts) is not int or self.max_restarts < 0:
            raise SandboxError(f"Limits.max_restarts={self.max_restarts!r}: expected a whole number >= 0")


# --- how a worker is started ---------------------------------------------------

def worker_command(request_fd: int, response_fd: int) -> list[str]:
    """The argv of a bare worker; ``grader.isolation`` wraps it in bubblewrap or unshare where it can."""
    # -S keeps site's .pth hooks (an editable install of this grader) away from the student
    return [sys.executable, "-I", "-S", str(WORKER), str(request_fd), str(response_fd), str(PACKAGES)]


def worker_environment(home: Path) -> dict[str, str]:
    """The whole environment of a worker: nothing of the grader's leaks through."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "TMPDIR": str(home),
            "PYTHONDONTWRITEBYTECODE": "1", **{var: "1" for var in THREAD_VARS}}


def rlimit_plan(limits: Limits) -> tuple[tuple[int, int, int, str], ...]:
    """(resource, soft, hard, label) for every limit this host lets us set."""
    wanted: list[tuple[int, int, Callable[[int], str]]] = [
        (resource.RLIMIT_AS, limits.memory, lambda v: f"rlimit: address space {size(v)}"),
        (resource.RLIMIT_CPU, limits.cpu_seconds, lambda v: f"rlimit: cpu {v} s"),
        (resource.RLIMIT_FSIZE, limits.file_size, lambda v: f"rlimit: file size {size(v)}"),
        (resource.RLIMIT_NOFILE, limits.open_files, lambda v: f"rlimit: open files {v}"),
        (resource.RLIMIT_CORE, 0, lambda v: "rlimit: no core dumps")]
    plan = []
    for res, value, label in wanted:
        try:
            _, hard = resource.getrlimit(res)
        except (ValueError, OSError):
            continue
        unlimited = hard == resource.RLIM_INFINITY
        # an unprivileged process cannot raise a hard limit: where the host is stricter, keep its value
        value = value if unlimited else min(value, hard)
        # SIGXCPU at the soft CPU limit can be caught; the hard limit one second later cannot
        top = value + 1 if res == resource.RLIMIT_CPU and (unlimited or hard > value) else value
        plan.append((res, value, top, label(value)))
    return tuple(plan)


def apply_rlimits(plan: Sequence[tuple[int, int, int, str]],
                  first: Callable[[], None] | None = None) -> Callable[[], None]:
    """The ``preexec_fn`` that calls ``first`` (e.g. joining a cgroup), then sets every limit of ``plan``."""
    def preexec() -> None:  # runs in the child between fork and exec: no allocation-heavy work here
        if first is not None:
            first()
        for res, soft, hard, _ in plan:
            try:
                resource.setrlimit(res, (soft, hard))
            except (ValueError, OSError):
                pass  # the plan only holds values at or below the hard limit; this is not expected
    return preexec


# --- one worker process and its pipes --------------------------------------------

class _Capture:
    """The first ``limit`` bytes of the worker's stdout+stderr; the rest is only counted."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.dropped = limit, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        room = max(0, self.limit - len(self.kept))
        self.kept += chunk[:room]
        self.dropped += max(0, len(chunk) - room)

    def take(self) -> str:
        text = self.kept.decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes were discarded]"
        self.kept, self.dropped = bytearray(), 0
        return text


class Worker:
    """A running worker: its process group, the two protocol pipes and its captured output."""

    def __init__(self, argv_for: Callable[[int, int], list[str]], env: dict[str, str], cwd: Path,
                 preexec: Callable[[], None], max_output: int) -> None:
        req_r, self.req = os.pipe()
        self.resp, resp_w = os.pipe()
        self.out, out_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                argv_for(req_r, resp_w), stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w,
                pass_fds=(req_r, resp_w), cwd=cwd, env=env, start_new_session=True, preexec_fn=preexec)
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in (self.req, self.resp, self.out):
                os.close(fd)
            raise SandboxError(f"could not start the sandbox worker: {exc}") from exc
        finally:
            for fd in (req_r, resp_w, out_w):
                os.close(fd)
        self._attach(self.proc.pid, max_output)  # start_new_session: the worker leads its own process group

    def _attach(self, pgid: int, max_output: int) -> None:
        """The state of a worker whose pipes ``req``, ``resp`` and ``out`` are set (``grader.zygote`` forks some)."""
        for fd in (self.req, self.resp, self.out):
            os.set_blocking(fd, False)
        for fd in (self.req, self.resp):
            _widen(fd)
        self.pgid = pgid
        self.output = _Capture(max_output)
        self._pending = bytearray()  # what the worker sent that no receive has taken yet
        self._unsent: collections.deque[memoryview] = collections.deque()  # requests queued, not written yet
        self._out_open = True
        self.cpu_used: float | None = None  # seconds, known once the worker has been reaped

    def _drain_output(self) -> None:
        # bounded per wake-up, so a process printing without end cannot hold the grader here
        for _ in range(64):
            if not self._out_open:
                return
            try:
                chunk = os.read(self.out, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self._out_open = False
            self.output.add(chunk)

    def _write_some(self) -> bool:
        """Write what of the queued requests the pipe takes now; False when the worker closed it."""
        while self._unsent:
            view = self._unsent[0]
            try:
                written = os.write(self.req, view[:1 << 20])
            except BlockingIOError:
                return True
            except OSError:
                return False
            if written == len(view):
                self._unsent.popleft()
            else:
                self._unsent[0] = view[written:]
        return True

    def _wait_for(self, fd: int, event: int, deadline: float) -> str | None:
        """Wait until ``fd`` is ready (None), the deadline passes ("timeout") or the worker is gone ("died").

        Meanwhile queued requests are written as the worker makes room for them: it may be
        waiting for them to send the answers this process waits for.
        """
        poller = select.poll()
        poller.register(fd, event)
        if self._out_open:
            poller.register(self.out, select.POLLIN)
        writing = fd != self.req and bool(self._unsent)
        if writing:
            poller.register(self.req, select.POLLOUT)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            for ready, _ in poller.poll(min(left, TICK) * 1000):
                if ready == fd:
                    return None
                if writing and ready == self.req:
                    if not self._write_some():
                        return "died"
                    writing = bool(self._unsent)
                    if not writing:
                        poller.unregister(self.req)
                    continue
                self._drain_output()
                if not self._out_open:
                    poller.unregister(self.out)
            if self._reap(0) is not None:
                self._drain_output()
                return "died"

    def queue(self, frame: bytes) -> None:
        """Send one request without waiting: what the pipe does not take now, ``send`` and ``receive`` write
        later, in order, as the worker reads (a worker that is gone shows as such in the next ``receive``)."""
        self._unsent.append(memoryview(frame))
        self._write_some()

    def pump(self) -> None:
        """Take in what the worker has sent so far (up to ``PENDING_CAP``) without waiting, so that it need not
        wait for room to send more."""
        self._write_some()
        while len(self._pending) < PENDING_CAP:
            try:
                chunk = os.read(self.resp, 1 << 20)
            except BlockingIOError:
                return
            if not chunk:
                return  # gone: the next receive says so
            self._pending += chunk

    def send(self, frame: bytes, deadline: float) -> str | None:
        """Write one request, after any queued; None, or "timeout"/"died" (a worker that stops reading cannot
        block us)."""
        self._unsent.append(memoryview(frame))
        while True:
            # write first and wait only when the pipe is full: a poll per request costs more than the write
            if not self._write_some():
                return "died"
            if not self._unsent:
                return None
            failure = self._wait_for(self.req, select.POLLOUT, deadline)
            if failure:
                return failure

    def receive(self, deadline: float, cap: int) -> bytes | str:
        """One frame's payload, or "timeout", "died" or "malformed" (a frame larger than ``cap``)."""
        if self._unsent:
            self._write_some()  # requests queued behind the one answering now
        while True:
            if len(self._pending) >= 8:
                (length,) = struct.unpack(">Q", self._pending[:8])
                if length > cap:
                    return "malformed"
                if len(self._pending) >= 8 + length:
                    payload = bytes(self._pending[8:8 + length])
                    del self._pending[:8 + length]
                    self._drain_output()  # the worker flushes stdout before it answers
                    return payload
            # read first and wait only when nothing is there: a batch's answers are often there already
            failure = None
            try:
                chunk = os.read(self.resp, 1 << 20)
            except BlockingIOError:
                failure = self._wait_for(self.resp, select.POLLIN, deadline)
                try:
                    chunk = os.read(self.resp, 1 << 20)
                except BlockingIOError:
                    chunk = None
            if chunk == b"" or (chunk is None and failure):
                return failure or "died"
            self._pending += chunk or b""

    def _reap(self, timeout: float | None) -> int | None:
        """The exit code once the worker has exited (waiting up to ``timeout`` s, None: forever).

        Also notes the CPU time it used: a SIGKILL at the hard CPU limit looks like any other.
        """
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            code = self.proc.wait(timeout) if timeout != 0 else self.proc.poll()
        except subprocess.TimeoutExpired:
            return None
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if code is not None and self.cpu_used is None:
            self.cpu_used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return code

    def finish(self, grace: float) -> int | None:
        """Let a dying worker exit on its own for ``grace`` s, then kill its group; its exit code."""
        code = self._reap(grace)
        self.kill()
        return code

    def kill(self) -> None:
        """Kill the whole process group and release the pipes; safe to call twice."""
        if self.req < 0:
            return  # already killed: the group id may belong to someone else by now
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._reap(None)
        self._drain_output()  # a fatal error's last words (e.g. "Fatal Python error") are in the pipe
        self._out_open = False
        for fd in (self.req, self.resp, self.out):
            try:
                os.close(fd)
            except OSError:
                pass
        self.req = self.resp = self.out = -1


def _widen(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError):  # not Linux, or over the host's pipe limits: the default size works too
        pass


def describe_exit(code: int | None, cpu_used: float | None, limits: Limits, output: str) -> tuple[str, str]:
    """(what happened, a hint) for a worker that went away on its own."""
    if code == BROKEN_EXIT:
        return "the submission broke the sandbox worker", "(closed its pipes or replaced a module it uses?)"
    if code is not None and code >= 0:
        return f"the process exited with code {code}", "(sys.exit/os._exit?)"
    if any(sign in output for sign in ("MemoryError", "Cannot allocate memory", "out of memory")):
        return f"ran out of memory (limit {size(limits.memory)})", ""  # e.g. an abort in a failed malloc
    if code is None:
        return "the process stopped answering (it closed or broke the grader's pipe)", ""
    sig = -code
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and (cpu_used or 0) >= limits.cpu_seconds - 0.5):
        return f"used more than {limits.cpu_seconds} s of CPU time (the limit for one worker)", ""
    if sig == signal.SIGXFSZ:
        return f"wrote a file larger than {size(limits.file_size)}", ""
    if sig == signal.SIGSEGV:
        return "the process crashed (segmentation fault)", "(a C stack overflow?)"
    if sig == signal.SIGKILL:
        return "the process was killed (SIGKILL)", "(too much memory?)"
    return f"the process was killed by {signal.Signals(sig).name}", ""


# --- cleaning up after workers ----------------------------------------------------

def kill_workers(live: list[Worker], cgroup: PidsCgroup | None) -> None:
    """Kill the running worker's process group, then whatever else of it the cgroup still holds."""
    while live:
        live.pop().kill()
    if cgroup is not None:
        cgroup.kill_all()


def release(live: list[Worker], scratch: Path, cgroup: PidsCgroup | None) -> None:
    """Kill everything the workers started and remove the scratch directory and the cgroup."""
    kill_workers(live, cgroup)
    if cgroup is not None:
        cgroup.remove()
    remove_tree(scratch)


def remove_tree(path: Path) -> None:
    # a submission may leave read-only directories behind: make them writable first
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)
