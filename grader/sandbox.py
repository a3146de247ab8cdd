"""Run a submission in a separate, limited process and hand back plain float64 arrays.

The parent never imports, execs or unpickles anything of the student's: it starts
``grader/worker.py`` in a fresh process (new session, scrubbed environment, empty
scratch directory, rlimits), talks to it over two pipes (framing: see the
worker's docstring) and validates every byte that comes back. A hang, crash or
exit during a call costs that call only: the next call starts a fresh worker and
loads the submission again, skipping the statements that killed earlier workers.
Stronger isolation (namespaces) is meant to wrap the argv of ``worker_command``.
"""

from __future__ import annotations

import io
import json
import math
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from reference.errors import ToolkitError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
WORKER = Path(__file__).with_name("worker.py")
PACKAGES = Path(np.__file__).resolve().parent.parent  # the one directory the worker adds to sys.path
STATUSES = ("ok", "error", "timeout", "crashed", "missing")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
STARTUP_TIMEOUT = 30.0  # python + numpy on a cold disk; no student code runs before the first event
HEADER_CAP = 4 * MiB  # the worker caps every message and list, so a real header is far smaller
TICK = 0.05  # how often a wait looks at whether the worker died (grandchildren may keep pipes open)
MAX_TEXT = 2000
BROKEN_EXIT = 70  # grader/worker.py exits with this when the submission broke its pipes or modules


class SandboxError(ToolkitError):
    """The sandbox itself failed (the worker could not start) or was misused; never a student's doing."""


def _size(n: int) -> str:
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

    def __post_init__(self) -> None:
        for name in ("memory", "cpu_seconds", "file_size", "open_files", "max_output", "max_output_elements"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise SandboxError(f"Limits.{name}={value!r}: expected a positive whole number")
        if not (isinstance(self.load_timeout, (int, float)) and 0 < self.load_timeout < math.inf):
            raise SandboxError(f"Limits.load_timeout={self.load_timeout!r}: expected a positive number of seconds")
        if type(self.max_restarts) is not int or self.max_restarts < 0:
            raise SandboxError(f"Limits.max_restarts={self.max_restarts!r}: expected a whole number >= 0")


@dataclass(frozen=True)
class LoadIssue:
    """A top-level statement that failed while loading. ``kind``: exception, exit, syntax, crashed,
    timeout or protocol; ``message`` is for a student and does not repeat the line."""

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


# --- how a worker is started ---------------------------------------------------

def worker_command(request_fd: int, response_fd: int) -> list[str]:
    """The argv of a worker; an isolation layer (bubblewrap, unshare) would wrap this list."""
    # -S keeps site's .pth hooks (an editable install of this grader) away from the student
    return [sys.executable, "-I", "-S", str(WORKER), str(request_fd), str(response_fd), str(PACKAGES)]


def worker_environment(home: Path) -> dict[str, str]:
    """The whole environment of a worker: nothing of the grader's leaks through."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "TMPDIR": str(home),
            "PYTHONDONTWRITEBYTECODE": "1", **{var: "1" for var in THREAD_VARS}}


def rlimit_plan(limits: Limits) -> tuple[tuple[int, int, int, str], ...]:
    """(resource, soft, hard, label) for every limit this host lets us set."""
    wanted: list[tuple[int, int, Callable[[int], str]]] = [
        (resource.RLIMIT_AS, limits.memory, lambda v: f"rlimit: address space {_size(v)}"),
        (resource.RLIMIT_CPU, limits.cpu_seconds, lambda v: f"rlimit: cpu {v} s"),
        (resource.RLIMIT_FSIZE, limits.file_size, lambda v: f"rlimit: file size {_size(v)}"),
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


def _apply_rlimits(plan: Sequence[tuple[int, int, int, str]]) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec: no allocation-heavy work here
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


class _Worker:
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
        for fd in (self.req, self.resp, self.out):
            os.set_blocking(fd, False)
        self.pgid = self.proc.pid  # start_new_session: the worker leads its own process group
        self.output = _Capture(max_output)
        self._pending = bytearray()
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

    def _wait_for(self, fd: int, event: int, deadline: float) -> str | None:
        """Wait until ``fd`` is ready (None), the deadline passes ("timeout") or the worker is gone ("died")."""
        poller = select.poll()
        poller.register(fd, event)
        if self._out_open:
            poller.register(self.out, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            for ready, _ in poller.poll(min(left, TICK) * 1000):
                if ready == fd:
                    return None
                self._drain_output()
                if not self._out_open:
                    poller.unregister(self.out)
            if self._reap(0) is not None:
                self._drain_output()
                return "died"

    def send(self, frame: bytes, deadline: float) -> str | None:
        """Write one request; None, or "timeout"/"died" (a worker that stops reading cannot block us)."""
        view = memoryview(frame)
        while view:
            failure = self._wait_for(self.req, select.POLLOUT, deadline)
            if failure:
                return failure
            try:
                view = view[os.write(self.req, view[:1 << 20]):]
            except BlockingIOError:
                continue
            except OSError:
                return "died"
        return None

    def receive(self, deadline: float, cap: int) -> bytes | str:
        """One frame's payload, or "timeout", "died" or "malformed" (a frame larger than ``cap``)."""
        while True:
            if len(self._pending) >= 8:
                (size,) = struct.unpack(">Q", self._pending[:8])
                if size > cap:
                    return "malformed"
                if len(self._pending) >= 8 + size:
                    payload = bytes(self._pending[8:8 + size])
                    del self._pending[:8 + size]
                    self._drain_output()  # the worker flushes stdout before it answers
                    return payload
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


# --- the worker's messages, validated strictly ------------------------------------

class _Malformed(Exception):
    """A response that does not follow the protocol (garbage on the pipe, wrong types, bad arrays)."""


def _clean(text: str) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def _is_line(v: object) -> bool:
    return type(v) is int and 0 <= v < 1 << 31  # type: ignore[operator]


def _is_str(v: object) -> bool:
    return type(v) is str


def _list_of(ok: Callable[[object], bool], most: int = 1000) -> Callable[[object], bool]:
    return lambda v: type(v) is list and len(v) <= most and all(ok(x) for x in v)


def _is_seconds(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf


def _fields(value: object, spec: Mapping[str, Callable[[object], bool]]) -> dict:
    """``value`` if it is a dict with exactly ``spec``'s keys, each passing its check."""
    if type(value) is not dict or set(value) != set(spec) or not all(ok(value[k]) for k, ok in spec.items()):
        raise _Malformed
    return value


_FRAME = {"file": _is_str, "line": _is_line, "function": _is_str, "source": _is_str}
_ERROR = {"kind": lambda v: v in ("exception", "exit", "memory", "output", "missing", "syntax"),
          "type": _is_str, "message": _is_str, "frames": _list_of(lambda f: bool(_fields(f, _FRAME)))}
_LOAD_ERROR = {"line": _is_line, **_ERROR}
_LOADING = {"event": lambda v: v == "loading", "line": _is_line}
_LOADED = {"event": lambda v: v == "loaded", "functions": _list_of(_is_str, 10_000),
           "errors": _list_of(lambda e: bool(_fields(e, _LOAD_ERROR)))}
_RESULT = {"event": lambda v: v == "result", "id": _is_line, "ok": lambda v: type(v) is bool, "outputs": _is_line,
           "notes": _list_of(_is_str), "mutated": _list_of(_is_str),
           "error": lambda v: v is None or bool(_fields(v, _ERROR)), "elapsed": _is_seconds}


def _read_npy(blob: memoryview) -> np.ndarray:
    """A float64 array from .npy bytes; the header is checked before any data is touched."""
    head = io.BytesIO(bytes(blob[:70 * KiB]))  # a version 1.0 header is at most 64 KiB
    try:
        if np.lib.format.read_magic(head) != (1, 0):
            raise _Malformed
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(head, max_header_size=64 * KiB)
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes is the same verdict
        raise _Malformed from exc
    if fortran or dtype != np.dtype(np.float64) or not all(type(d) is int and d >= 0 for d in shape):
        raise _Malformed
    data = blob[head.tell():]
    if len(data) != 8 * math.prod(shape):
        raise _Malformed
    return np.frombuffer(data, dtype=np.float64).reshape(shape).copy()


def _parse_payload(payload: bytes) -> tuple[object, list[np.ndarray]]:
    view = memoryview(payload)
    if len(view) < 4:
        raise _Malformed
    (hlen,) = struct.unpack(">I", view[:4])
    if 4 + hlen > len(view):
        raise _Malformed
    try:
        header = json.loads(bytes(view[4:4 + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Malformed from exc
    arrays, pos = [], 4 + hlen
    while pos < len(view):
        if pos + 8 > len(view):
            raise _Malformed
        (blen,) = struct.unpack(">Q", view[pos:pos + 8])
        if pos + 8 + blen > len(view):
            raise _Malformed
        arrays.append(_read_npy(view[pos + 8:pos + 8 + blen]))
        pos += 8 + blen
    return header, arrays


def _request(header: dict, arrays: Sequence[np.ndarray] = ()) -> bytes:
    parts = [json.dumps(header).encode("utf-8")]
    parts.insert(0, struct.pack(">I", len(parts[0])))
    for arr in arrays:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        parts += [struct.pack(">Q", buf.getbuffer().nbytes), buf.getvalue()]
    payload = b"".join(parts)
    return struct.pack(">Q", len(payload)) + payload


def _encode_args(args: Sequence[tuple[str, np.ndarray | int | float]]) -> tuple[list[str], list[str], list[np.ndarray]]:
    names, kinds, arrays = [], [], []
    for name, value in args:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating,
                                                                          np.ndarray)):
            raise SandboxError(f"argument {name!r}: expected an ndarray, int or float, got {type(value).__name__}")
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise SandboxError(f"argument {name!r}: a {value.dtype} array cannot be sent to the worker")
            kinds.append("array")
            arrays.append(value)
        else:
            is_int = isinstance(value, (int, np.integer))
            kinds.append("int" if is_int else "float")
            arrays.append(np.array(int(value) if is_int else float(value)))
        names.append(str(name))
    return names, kinds, arrays


def _where(frames: Sequence[dict]) -> str:
    if not frames:
        return ""
    f = frames[-1]  # the innermost frame in the student's file is where the error showed up
    source = f": {_clean(f['source'])}" if f["source"] else ""
    return f" ({_clean(f['file'])}, line {f['line']}, in {_clean(f['function'])}{source})"


def _describe_exit(code: int | None, cpu_used: float | None, limits: Limits, output: str) -> tuple[str, str]:
    """(what happened, a hint) for a worker that went away on its own."""
    if code == BROKEN_EXIT:
        return "the submission broke the sandbox worker", "(closed its pipes or replaced a module it uses?)"
    if code is not None and code >= 0:
        return f"the process exited with code {code}", "(sys.exit/os._exit?)"
    if any(sign in output for sign in ("MemoryError", "Cannot allocate memory", "out of memory")):
        return f"ran out of memory (limit {_size(limits.memory)})", ""  # e.g. an abort in a failed malloc
    if code is None:
        return "the process stopped answering (it closed or broke the grader's pipe)", ""
    sig = -code
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and (cpu_used or 0) >= limits.cpu_seconds - 0.5):
        return f"used more than {limits.cpu_seconds} s of CPU time (the limit for one worker)", ""
    if sig == signal.SIGXFSZ:
        return f"wrote a file larger than {_size(limits.file_size)}", ""
    if sig == signal.SIGSEGV:
        return "the process crashed (segmentation fault)", "(a C stack overflow?)"
    if sig == signal.SIGKILL:
        return "the process was killed (SIGKILL)", "(too much memory?)"
    return f"the process was killed by {signal.Signals(sig).name}", ""


# --- the sandbox -------------------------------------------------------------------

@dataclass(frozen=True)
class _Loaded:
    functions: tuple[str, ...]
    errors: tuple[dict, ...]
    stdout: str


class Sandbox:
    """One submission in a worker process: ``load()`` once, then ``call()`` as often as needed.

    No student behaviour makes ``load`` or ``call`` raise; a worker that hangs or dies is
    replaced on the next call, at most ``limits.max_restarts`` times. Use it as a context
    manager (or call ``close``) so that nothing it started outlives it.
    """

    def __init__(self, source: str, filename: str, limits: Limits = Limits()) -> None:
        self._source, self._filename, self._limits = source, filename, limits
        self._plan = rlimit_plan(limits)
        self._scratch = Path(tempfile.mkdtemp(prefix="grader-sandbox-"))
        self._live: list[_Worker] = []  # the running worker, if any; shared with the finalizer
        # also on garbage collection and at interpreter exit, should a caller forget close()
        self._release = weakref.finalize(self, _release, self._live, self._scratch)
        self._starts = 0
        self._skipped: dict[int, LoadIssue] = {}  # line -> why, in the order they were found
        self._report: LoadReport | None = None
        self._calls = 0

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def layers(self) -> tuple[str, ...]:
        """The isolation layers every worker of this sandbox runs under."""
        return ("separate process", "isolated interpreter (python -I -S)", "scrubbed environment",
                "scratch working directory", *(label for *_, label in self._plan))

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

    def load(self) -> LoadReport:
        """Load the submission (once) and report what it defines and which statements failed."""
        if self._report is None:
            self._check_open()
            loaded = self._start()
            if isinstance(loaded, str):
                loaded, gave_up = _Loaded((), (), ""), [LoadIssue(0, "crashed", loaded)]
            else:
                gave_up = []
            issues = sorted([*self._skipped.values(), *map(_load_issue, loaded.errors), *gave_up],
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
        if not (n_outputs is None or (type(n_outputs) is int and n_outputs >= 1)) or not timeout > 0:
            raise SandboxError(f"call({function!r}): n_outputs={n_outputs!r} and timeout={timeout!r} are not valid")
        names, kinds, arrays = _encode_args(args)
        self._check_open()
        if function not in self.load().functions:
            return _failed("missing", f"there is no function named {function!r} in {self._filename}")
        if self._worker is None:
            started = self._start()
            if isinstance(started, str):
                return _failed("crashed", started)
        worker = self._worker
        self._calls += 1  # echoed by the worker, so a stale or forged answer cannot pass for this one
        header = {"cmd": "call", "id": self._calls, "function": function, "names": names, "arg_kinds": kinds,
                  "n_outputs": n_outputs, "max_elements": self._limits.max_output_elements}
        cap = HEADER_CAP + 8 * self._limits.max_output_elements + 70 * KiB * (n_outputs or 1)
        start = time.monotonic()
        try:
            reply = worker.send(_request(header, arrays), start + timeout) or worker.receive(start + timeout, cap)
            return self._result(worker, reply, header, timeout, time.monotonic() - start)
        except BaseException:
            self._stop()  # an interrupt mid-exchange leaves the pipes out of step
            raise

    # -- internals --

    def _result(self, worker: _Worker, reply: bytes | str, call: dict, timeout: float, elapsed: float) -> CallResult:
        if reply == "timeout":
            self._stop()
            return _failed("timeout", f"did not return within {timeout:g} s", elapsed, worker.output.take())
        if reply == "died":
            code = worker.finish(grace=1.0)
            self._stop()
            stdout = worker.output.take()
            what, hint = _describe_exit(code, worker.cpu_used, self._limits, stdout)
            return _failed("crashed", " ".join(filter(None, [what, "during the call", hint])), elapsed, stdout)
        try:
            if isinstance(reply, str):
                raise _Malformed(reply)
            return self._parse_result(reply, call, worker.output.take())
        except _Malformed:
            self._stop()  # whatever comes next on this pipe cannot be trusted to line up
            return _failed("error", "the worker sent malformed data", elapsed, worker.output.take())

    def _parse_result(self, payload: bytes, call: dict, stdout: str) -> CallResult:
        raw, arrays = _parse_payload(payload)
        header = _fields(raw, _RESULT)
        expected = (call["n_outputs"] or 1) if header["ok"] else 0
        if (header["id"] != call["id"] or header["outputs"] != expected or len(arrays) != expected
                or header["ok"] == (header["error"] is not None) or not set(header["mutated"]) <= set(call["names"])):
            raise _Malformed("the result does not match the call")
        notes, mutated = tuple(map(_clean, header["notes"])), tuple(header["mutated"])
        if header["ok"]:
            return CallResult("ok", tuple(arrays), notes, mutated, "", float(header["elapsed"]), stdout)
        err = header["error"]
        status = "missing" if err["kind"] == "missing" else "error"
        return CallResult(status, (), notes, mutated, self._error_message(err), float(header["elapsed"]), stdout)

    def _error_message(self, err: dict) -> str:
        text = _clean(err["message"])
        if err["kind"] in ("output", "missing", "syntax"):
            return text
        if err["kind"] == "exit":
            return f"{text} during the call"
        message = f"{_clean(err['type'])}: {text}{_where(err['frames'])}"
        if err["kind"] == "memory":
            return f"ran out of memory (limit {_size(self._limits.memory)}): {message}"
        return message

    def _start(self) -> _Loaded | str:
        """Start a worker and load the submission into it, skipping statements that kill or hang it.

        What loading found, or a message for the student once the restarts have run out.
        """
        while self._starts <= self._limits.max_restarts:
            self._stop()
            for old in self._scratch.iterdir():  # what earlier workers wrote is of no use to this one
                _remove_tree(old)
            workdir = self._scratch / f"run-{self._starts}"
            workdir.mkdir()
            self._starts += 1
            worker = _Worker(worker_command, worker_environment(workdir), workdir, _apply_rlimits(self._plan),
                             self._limits.max_output)
            self._live.append(worker)
            outcome = self._load_into(worker)
            if isinstance(outcome, _Loaded):
                return outcome
            self._skipped[outcome.line] = outcome
        self._stop()
        return (f"the submission kept killing its worker; the grader gave up after {self._limits.max_restarts} "
                "restarts and did not run it again")

    def _load_into(self, worker: _Worker) -> _Loaded | LoadIssue:
        request = _request({"cmd": "load", "source": self._source, "filename": self._filename,
                            "skip_lines": sorted(self._skipped)})
        deadline, line = time.monotonic() + STARTUP_TIMEOUT, None
        reply = worker.send(request, deadline)
        while True:
            reply = reply or worker.receive(deadline, HEADER_CAP)
            try:
                if isinstance(reply, str):
                    raise _Malformed(reply)
                header = _parse_payload(reply)[0]
                if type(header) is dict and header.get("event") == "loading":
                    if line is None:  # the student's code starts now, and the load timeout with it
                        deadline = time.monotonic() + self._limits.load_timeout
                    line, reply = _fields(header, _LOADING)["line"], None
                    continue
                loaded = _fields(header, _LOADED)
                return _Loaded(tuple(loaded["functions"]), tuple(loaded["errors"]), worker.output.take())
            except _Malformed as exc:
                return self._fatal_statement(worker, line, str(exc) or "malformed")

    def _fatal_statement(self, worker: _Worker, line: int | None, failure: str) -> LoadIssue:
        """Why statement ``line`` cannot be run; the worker is gone afterwards."""
        code = worker.finish(grace=1.0 if failure == "died" else 0.0)
        if line is None:  # no student code had run yet: the sandbox itself is broken
            raise SandboxError(f"the sandbox worker failed before running any student code ({failure}, exit code "
                               f"{code}): {worker.output.take()[-MAX_TEXT:]}")
        if failure == "timeout":
            return LoadIssue(line, "timeout", "this statement was still running when loading hit the "
                             f"{self._limits.load_timeout:g} s limit; it was skipped")
        if failure == "died":
            what, hint = _describe_exit(code, worker.cpu_used, self._limits, worker.output.take())
            return LoadIssue(line, "crashed", " ".join(filter(None, [what, hint, "while this statement ran; "
                                                                      "it was skipped"])))
        return LoadIssue(line, "protocol", "this statement wrote onto the grader's pipe; it was skipped")

    @property
    def _worker(self) -> _Worker | None:
        return self._live[0] if self._live else None

    def _stop(self) -> None:
        while self._live:
            self._live.pop().kill()

    def _check_open(self) -> None:
        if not self._release.alive:
            raise SandboxError("this sandbox was closed; start a new one")


def _failed(status: str, message: str, elapsed: float = 0.0, stdout: str = "") -> CallResult:
    return CallResult(status, (), (), (), message, elapsed, stdout)


def _load_issue(error: dict) -> LoadIssue:
    text = _clean(error["message"])
    if error["kind"] == "exit":
        return LoadIssue(error["line"], "exit", f"{text} while loading; the statements after it still ran")
    if error["kind"] == "syntax":
        return LoadIssue(error["line"], "syntax", f"SyntaxError: {text}")
    return LoadIssue(error["line"], "exception", f"{_clean(error['type'])}: {text}{_where(error['frames'])}; "
                     "the statements after it still ran")


def _release(live: list[_Worker], scratch: Path) -> None:
    """Kill the running worker's process group and remove the scratch directory."""
    while live:
        live.pop().kill()
    _remove_tree(scratch)


def _remove_tree(path: Path) -> None:
    # a submission may leave read-only directories behind: make them writable first
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)
