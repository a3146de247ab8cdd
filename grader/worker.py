"""The sandboxed worker: runs INSIDE the child process that executes a submission.

Started by ``grader.sandbox`` as ``python -I -S worker.py REQUEST_FD RESPONSE_FD
PACKAGES_DIR``, or imported once by a zygote (``grader/zygote_worker.py``) whose
forked children each call ``run``. It imports only the standard library and NumPy,
never ``grader`` or ``reference``: the child must hold nothing of the grader but
this file. ``-S`` skips the site-packages hooks (``.pth`` files), among them the one
of an editable install that would make ``grader`` importable; only ``PACKAGES_DIR``
is added.

Protocol (both directions): a frame is an 8-byte big-endian length and a payload;
a payload is a 4-byte big-endian length and a UTF-8 JSON header, then raw bytes
whose layout the header gives. Nothing is ever pickled. Requests are ``load``
(once) and ``calls``: one or more batches, each of calls of one function, whose
arguments' bytes follow back to back. The worker answers ``load`` with ``loading``
events (one before each top-level statement, or run of plain function
definitions: ``_units``) and one ``loaded`` event, and
``calls`` with ``results`` frames: the answers of many calls and their outputs as
float64 bytes, sent when a batch ends, when the oldest waiting answer is
``flush_after`` seconds old, or when they grow large. A watchdog thread also sends
what waits once a call has run for ``flush_after``, naming that call as running,
so that the grader knows which call hung even when the answers before it were
still waiting. stdout/stderr belong to the student.

The ``load`` request names the forbidden modules. A finder placed first on
``sys.meta_path`` refuses them, however they are asked for (``import``,
``__import__``, ``importlib.import_module`` with a computed name), and the
statement or call that tried is reported as ``forbidden``. The submission runs in
this process and could remove the finder: this is defence in depth, and the
grader never trusts the worker to say that a function is *not* forbidden.
"""

from __future__ import annotations

import os
import sys

# numpy reads the thread counts when it is imported: pin them first, so a
# submission cannot spin up threads beyond the single CPU it is granted.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
if len(sys.argv) > 3:
    sys.path.append(sys.argv[3])  # where NumPy lives; see the docstring for why not site

import __future__
import _thread
import ast
import ctypes
import json
import linecache
import site
import struct
import time
import traceback
import types
from typing import Any, Callable, Iterator, Sequence

import numpy as np

MAX_TEXT = 500  # characters of one message; keeps every header small
IOV_MAX = 1024  # buffers one writev may take (POSIX guarantees at least 16; Linux allows 1024)
MAX_ITEMS = 200  # entries of one list in a header (errors, frames, notes)
MAX_NAMES = 5000  # `from numpy import *` alone brings hundreds of callables
BROKEN_EXIT = 70  # the worker could not go on; grader.sandbox knows this code
FLUSH_BYTES = 1 << 20  # answers waiting beyond this many bytes go out at once (grader.sandbox's HEADER_CAP)

# What the worker needs of NumPy and os once student code has run, as its own names: after each call
# only this module's globals and a few small modules are restored, not NumPy's or os's namespaces
# (see Pristine), so a patched np.asarray or os.writev cannot reach the worker through these.
_ndarray, _generic, _bool, _asarray, _array, _frombuffer, _empty = (np.ndarray, np.generic, np.bool_, np.asarray,
                                                                    np.array, np.frombuffer, np.empty)
_F64 = np.dtype("<f8")  # every output travels as little-endian float64, whatever the host's byte order
_read, _writev, _monotonic, _sleep, _perf_counter = os.read, os.writev, time.monotonic, time.sleep, time.perf_counter
_pack_q, _pack_i, _encode = struct.Struct(">Q").pack, struct.Struct(">I").pack, json.JSONEncoder().encode


# --- framing -----------------------------------------------------------------

def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = _read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the grader closed the request pipe")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_request(fd: int) -> tuple[dict, memoryview]:
    """One request: its JSON header and the bytes after it (the parent is trusted)."""
    (size,) = struct.unpack(">Q", _read_exact(fd, 8))
    payload = memoryview(_read_exact(fd, size))
    (hlen,) = struct.unpack(">I", payload[:4])
    return json.loads(bytes(payload[4:4 + hlen])), payload[4 + hlen:]


def send(fd: int, header: dict) -> None:
    """Write one frame that is a header only (the loading events)."""
    _send_frame(fd, json.dumps(header).encode("utf-8"), [])


def _send_frame(fd: int, header: bytes, arrays: Sequence[np.ndarray]) -> None:
    # the arrays' data as zero-copy views behind the header: a big output is never duplicated
    parts: list[memoryview | bytes] = [_pack_i(len(header)), header]
    parts += [memoryview(a.reshape(-1)).cast("B") for a in arrays if a.size]
    parts.insert(0, _pack_q(sum(len(p) for p in parts)))
    _write_all(fd, parts)


def _write_all(fd: int, parts: list[memoryview | bytes]) -> None:
    # one writev for the whole frame: a write per part would wake the grader for each, to find half a frame
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        written = _writev(fd, views[:IOV_MAX])
        while written:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0], written = views[0][written:], 0


class Outbox:
    """The answers of finished calls that have not gone out yet, and the call running now.

    Shared by the main thread, which adds answers, and the watchdog, which sends what
    waits once a call has run for ``flush_after`` and names that call as running. Both
    send under ``lock``, so a frame never interleaves with another and an answer
    never goes out after a frame that names a later call as running.
    """

    def __init__(self, fd: int) -> None:
        self.fd, self.lock = fd, _thread.allocate_lock()
        self.texts: list[bytes] = []  # each waiting answer as JSON
        self.arrays: list[np.ndarray] = []  # their outputs, in order
        self.size = 0  # bytes waiting
        self.since = 0.0  # when the oldest waiting answer was added
        self.running: tuple[int, float] | None = None  # (call id, monotonic start) of the call running now
        self.named = -1  # the last call a frame named as running
        self.flush_after = 0.01
        self.each = False  # send every answer at once (the grader replays a batch so after a failure)

    def begin(self, call_id: int) -> None:
        self.running = (call_id, _monotonic())

    def add(self, answer: list, outputs: list[np.ndarray]) -> None:
        text = _answer_text(answer)
        with self.lock:
            self.running = None
            if not self.texts:
                self.since = _monotonic()
            self.texts.append(text)
            self.arrays += outputs
            self.size += len(text) + sum(a.nbytes for a in outputs)
            if self.each or self.size >= FLUSH_BYTES or _monotonic() - self.since >= self.flush_after:
                self._send(None)

    def flush(self) -> None:
        with self.lock:
            if self.texts:
                self._send(None)

    def watch(self) -> None:
        """From the watchdog: send what waits once the running call has run for ``flush_after``."""
        with self.lock:
            running = self.running
            if running is not None and running[0] != self.named and _monotonic() - running[1] >= self.flush_after:
                self.named = running[0]
                self._send(running[0])

    def _send(self, running: int | None) -> None:
        if running is None:
            _flush_student_output()  # the parent reads stdout after the answers: a print lands with its call
        header = b'{"event": "results", "running": %s, "answers": [%s]}' % (
            b"null" if running is None else b"%d" % running, b", ".join(self.texts))
        _send_frame(self.fd, header, self.arrays)
        self.texts, self.arrays, self.size = [], [], 0


def _answer_text(answer: list) -> bytes:
    """An answer as JSON; the common one (ok, no notes, nothing changed) without the encoder's overhead."""
    call_id, elapsed, shapes, notes, mutated, error = answer
    if error is None and not notes and not mutated:
        # an int, a finite float's repr and a list of lists of ints are JSON as Python writes them
        return b"[%d, %r, %r, [], [], null]" % (call_id, elapsed, shapes)
    return _encode(answer).encode("utf-8")


def _watch(outbox: Outbox) -> None:
    while True:
        _sleep(outbox.flush_after / 2)
        outbox.watch()


def _start_watchdog(outbox: Outbox) -> None:
    # without it (no thread to spare) the grader replays a batch whose hung call it cannot tell
    try:
        _thread.start_new_thread(_watch, (outbox,))
    except RuntimeError:
        pass


# --- describing what went wrong, for a student ---------------------------------

def _text(value: object) -> str:
    try:
        text = str(value)
    except BaseException:  # a student's exception whose __str__ itself raises
        text = "<the message could not be printed>"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def _frames(exc: BaseException, filename: str, lines: list[str]) -> list[dict]:
    """The traceback frames in the student's file only; the worker's own frames are hidden."""
    frames = []
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename != filename:
            continue
        source = lines[line - 1].strip() if 0 < (line or 0) <= len(lines) else ""
        frames.append({"file": filename, "line": line or 0, "function": _text(frame.f_code.co_name),
                       "source": _text(source)})
    return frames[-MAX_ITEMS:]


def _error(kind: str, exc_type: str, message: str, frames: Sequence[dict] = ()) -> dict:
    return {"kind": kind, "type": exc_type, "message": _text(message), "frames": list(frames)}


def _exception(exc: BaseException, filename: str, lines: list[str]) -> dict:
    if isinstance(exc, SystemExit):
        code = exc.code
        arg = "" if code is None else repr(code) if type(code) in (int, str) else _text(code)
        return _error("exit", "SystemExit", f"called sys.exit({_text(arg)})")
    kind = "memory" if isinstance(exc, MemoryError) else "exception"
    return _error(kind, type(exc).__name__, _text(exc), _frames(exc, filename, lines))


def _flush_student_output() -> None:
    # the parent reads stdout after the response: flush first so a print lands with its call
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


# --- forbidden imports -----------------------------------------------------------

class ImportGuard:
    """A meta-path finder that refuses forbidden top-level modules and notes every attempt."""

    def __init__(self, banned: Sequence[str]) -> None:
        self.banned = frozenset(banned)
        self.attempts: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        root = name.partition(".")[0]
        if root in self.banned:
            self.attempts.append(root)
            raise ImportError(f"importing {root!r} is forbidden by this problem set", name=name)
        return None  # not ours to refuse: the next finder looks for it

    def since(self, mark: int) -> str | None:
        """The first module refused after ``len(attempts)`` was ``mark``, if any."""
        return self.attempts[mark] if len(self.attempts) > mark else None


# --- what the student may not change for the worker ------------------------------

class Pristine:
    """The modules the worker itself relies on, as they were before student code ran.

    A submission runs in this process and can patch ``builtins``, ``numpy``, ``json``
    or this very script's functions. ``restore`` puts every name of every such module
    back (added names stay): after each top-level statement, after a call whose value
    or exception ran student code on its way out, and after each batch, so that one
    function's mischief cannot cost the others their points. After every call,
    ``restore_light`` puts back what the worker uses to convert and send an answer: this
    script's globals, which hold its own references to the functions of NumPy, os, json,
    struct and time that it calls there, and ``builtins``. The other namespaces (NumPy's
    and os's alone have a thousand names, most of the cost) wait for the end of the batch:
    until then a patch there can only change the patching function's own later calls, as
    it would outside the grader. The parent validates every byte anyway.

    A namespace whose version tag (``dict_version``) has not moved since it was last put
    back is left alone: almost no call changes any, and writing every name back after each
    of a batch's thousand calls was a quarter of the worker's time.
    """

    # __name__: this script's own helpers, "__main__" when started as a script, "worker" when a zygote imported it
    LIGHT = tuple(dict.fromkeys(("__main__", __name__, "builtins")))
    MODULES = (*LIGHT, "json", "struct", "sys", "time", "numpy", "numpy.lib.format", "os", "io", "traceback", "types",
               "linecache", "ast")

    def __init__(self, guard: ImportGuard) -> None:
        self.guard = guard
        # each module's own dict, kept here: a module's __class__ can be swapped for one whose
        # attribute access runs student code, so restore never goes through the module object.
        # An entry: [name, module, its dict, the saved names, the dict's version view, the version last put back]
        self.saved = [[name, sys.modules[name], sys.modules[name].__dict__, dict(sys.modules[name].__dict__)]
                      for name in self.MODULES if name in sys.modules]
        for entry in self.saved:
            tag = dict_version(entry[2])
            entry += [tag, tag[0] if tag is not None else None]
        self.light = [entry for entry in self.saved if entry[0] in self.LIGHT]
        self.modules = sys.modules

    def restore(self) -> None:
        self._put_back(self.saved)

    def restore_light(self) -> None:
        self._put_back(self.light)

    def _put_back(self, saved: list) -> None:
        # no builtins and no globals here beyond `self`: they may be the very things that were patched (a
        # memoryview's indexing cannot be). dict.update writes every saved name back in C; where the version
        # moved, whatever changed is among them or was added (added names stay)
        for entry in saved:
            self.modules[entry[0]] = entry[1]
            tag = entry[4]
            if tag is None or tag[0] != entry[5]:
                entry[2].update(entry[3])
                entry[5] = tag[0] if tag is not None else None
        meta_path = self.modules["sys"].meta_path
        if not meta_path or meta_path[0] is not self.guard:
            meta_path.insert(0, self.guard)


def dict_version(namespace: dict) -> memoryview | None:
    """A live view of ``namespace``'s version tag, or None where this interpreter has none to read.

    CPython gives a dict a new tag from a global counter on every change that replaces,
    adds or removes a value (``ma_version_tag``, PEP 509, CPython 3.6-3.13), 24 bytes into
    the object on 64-bit builds. ``TAGS_MOVE`` checked that on a scratch dict at import:
    where a change does not move the tag so read, every restore writes every name back.
    """
    return _tag_view(namespace) if TAGS_MOVE else None


def _tag_view(namespace: dict) -> memoryview:
    # the view holds the ctypes buffer; the caller keeps the dict alive as long (the saved modules never go)
    return memoryview((ctypes.c_char * 8).from_address(id(namespace) + 24)).cast("B").cast("Q")


def _tags_move() -> bool:
    if sys.implementation.name != "cpython" or sys.maxsize != 2 ** 63 - 1:
        return False
    probe: dict = {}
    view = _tag_view(probe)
    seen = [view[0]]
    for change in (lambda: probe.__setitem__("a", 1), lambda: probe.__setitem__("a", 2),
                   lambda: probe.__setitem__("b", 1), lambda: probe.pop("a"), probe.clear):
        change()
        seen.append(view[0])
    return all(later > earlier for earlier, later in zip(seen, seen[1:]))


TAGS_MOVE = _tags_move()


def install_guard(banned: Sequence[str]) -> ImportGuard:
    guard = ImportGuard(banned)
    for name in [m for m in sys.modules if m.partition(".")[0] in guard.banned]:
        del sys.modules[name]  # nothing banned is imported before the student runs; be sure of it
    sys.meta_path.insert(0, guard)
    return guard


# --- loading -------------------------------------------------------------------

def _future_flags(stmt: ast.stmt) -> int:
    # statements compile one by one, so a `from __future__` import must be carried over by hand
    if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
        return sum(getattr(getattr(__future__, a.name, None), "compiler_flag", 0) for a in stmt.names)
    return 0


def _units(body: list[ast.stmt], skip: set[int]) -> Iterator[list[ast.stmt]]:
    """The statements to run one at a time, those on a ``skip`` line left out; a run of plain function
    definitions goes as one, since defining such a function evaluates nothing that could fail or hang."""
    run: list[ast.stmt] = []
    for stmt in body:
        if stmt.lineno in skip:
            continue
        if _plain_def(stmt):
            run.append(stmt)
            continue
        if run:
            yield run
            run = []
        yield [stmt]
    if run:
        yield run


def _plain_def(stmt: ast.stmt) -> bool:
    """A ``def`` with no decorators, default values or annotations: nothing in it runs before it is called."""
    if type(stmt) is not ast.FunctionDef or stmt.decorator_list or stmt.returns is not None:
        return False
    a = stmt.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(p for p in (a.vararg, a.kwarg) if p is not None)]
    return not a.defaults and not any(a.kw_defaults) and all(p.annotation is None for p in params)


def load(request: dict, out_fd: int, guard: ImportGuard, keeper: Pristine) -> types.ModuleType:
    """Execute the submission one top-level statement (or run of plain definitions) at a time, reporting each
    failure."""
    source, filename = request["source"], request["filename"]
    skip, lines = set(request["skip_lines"]), source.splitlines()
    module = types.ModuleType("submission")
    module.__file__ = filename
    sys.modules["submission"] = module
    sys.argv = [filename]
    errors: list[dict] = []
    try:
        body = ast.parse(source, filename).body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        errors.append({"line": getattr(exc, "lineno", None) or 0, **_error("syntax", "SyntaxError", _text(exc))})
        body = []
    flags = 0
    for unit in _units(body, skip):
        stmt = unit[0]
        flags |= _future_flags(stmt)
        send(out_fd, {"event": "loading", "line": stmt.lineno})
        mark = len(guard.attempts)
        try:
            code = compile(ast.Module(unit, type_ignores=[]), filename, "exec", flags=flags, dont_inherit=True)
            exec(code, module.__dict__)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - record it; the statements after it still run
            keeper.restore()
            errors.append({"line": stmt.lineno, **_exception(exc, filename, lines)})
        keeper.restore()
        refused = guard.since(mark)
        if refused is not None:  # an attempt counts even when the student caught the ImportError
            if errors and errors[-1]["line"] == stmt.lineno:
                errors.pop()  # the refused import's own ImportError says less than this
            errors.append({"line": stmt.lineno, **_error("forbidden", "ImportError", refused)})
    _flush_student_output()
    functions = [name for name, value in list(module.__dict__.items())
                 if isinstance(name, str) and not name.startswith("__") and callable(value)]
    send(out_fd, {"event": "loaded", "functions": functions[:MAX_NAMES], "errors": errors[:MAX_ITEMS]})
    return module


# --- calling -------------------------------------------------------------------

_DTYPES: dict[str, np.dtype] = {}


def _dtype(descr: str, make: Callable[[str], np.dtype] = np.dtype) -> np.dtype:
    return _DTYPES.get(descr) or _DTYPES.setdefault(descr, make(descr))


def _arguments(entry: list, blob: memoryview, pos: int) -> tuple[list[Any], list[np.ndarray | None], int]:
    """A call's arguments as the student receives them, the pristine arrays to detect changes with, and where
    the call's bytes end.

    ``entry`` is the call's [names, kinds, dtypes, shapes]; its bytes start at ``pos`` in ``blob``.
    """
    args: list[Any] = []
    pristine: list[np.ndarray | None] = []
    for kind, descr, shape in zip(entry[1], entry[2], entry[3]):
        dtype = _dtype(descr)
        count = 1
        for d in shape:
            count *= d
        raw = _frombuffer(blob, dtype, count, pos).reshape(shape) if count else _empty(shape, dtype)
        pos += count * dtype.itemsize
        # dimensions come as Python ints and scalars as Python floats, as a student would call them
        if kind == "array":
            args.append(raw.copy())  # writable and the student's own; ``raw`` stays as it was sent
            pristine.append(raw)
        else:
            args.append(int(raw) if kind == "int" else float(raw))
            pristine.append(None)
    return args, pristine, pos


def _calls_size(entries: Sequence[list]) -> int:
    """How many bytes of the request's blob the arguments of these calls take (calls that are skipped)."""
    total = 0
    for entry in entries:
        for descr, shape in zip(entry[2], entry[3]):
            size = _dtype(descr).itemsize
            for d in shape:
                size *= d
            total += size
    return total


def _kind_note(value: object, raw: np.ndarray) -> str | None:
    """How a returned value was turned into float64, or None when it already was a plain float64 array."""
    if type(value) is _ndarray:
        return None if raw.dtype == _F64 else f"a {raw.dtype} array, converted to float64"
    if isinstance(value, _ndarray):
        return f"a {type(value).__name__} (an ndarray subclass), converted to a plain float64 array"
    if isinstance(value, (bool, _bool)):
        return "a bool, converted to float64"
    if isinstance(value, _generic):  # before float: np.float64 is a subclass of float
        return f"a NumPy {raw.dtype} scalar, converted to a 0-d float64 array"
    if isinstance(value, (int, float)):
        return f"a Python {type(value).__name__}, converted to a 0-d float64 array"
    return f"a {type(value).__name__}, converted to a float64 array"


def _describe(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, _ndarray):
        return f"a {value.dtype} array"
    return f"a {type(value).__name__}"


def _convert(value: object, budget: int) -> tuple[np.ndarray | None, str | None, str]:
    """(array, note, "") on success, or (None, None, why) when the value is no real numeric array."""
    # described before the conversion runs any of its code, but only when it failed: str(dtype) is slow
    what = _describe(value) if type(value) is not _ndarray else None
    try:
        raw = _asarray(value)
    except BaseException as exc:  # noqa: BLE001 - __array__ or __len__ of a student's object raised
        return None, None, f"{what}, which cannot be converted to an array ({type(exc).__name__}: {_text(exc)})"
    if raw.dtype.kind == "c":
        # float64 conversion would silently drop the imaginary part
        return None, None, f"{what or _describe(value)} of complex numbers; only real numbers can be graded"
    if raw.dtype.kind not in "biuf":
        return None, None, f"{what or _describe(value)}, not a number or an array of numbers"
    if raw.size > budget:
        return None, None, f"{what or _describe(value)} with {raw.size} elements: output too large"
    try:
        note = _kind_note(value, raw)
        # a copy of its own, C-ordered: the answer may wait in the outbox while the student's array changes
        return _array(raw, dtype=_F64, order="C"), note, ""
    except BaseException as exc:  # noqa: BLE001
        return None, None, (f"{what or _describe(value)}, which cannot be converted to float64 "
                            f"({type(exc).__name__}: {_text(exc)})")


# values whose conversion to float64 runs no code of the student's: exactly these types, never subclasses
_PLAIN_SCALARS = frozenset({bool, int, float, *(t for t in set(np.sctypeDict.values())
                                                if issubclass(t, (np.number, np.bool_)))})


def _is_plain(value: object) -> bool:
    kind = type(value)
    return kind in _PLAIN_SCALARS or (kind is _ndarray and value.dtype.kind in "biufc")  # type: ignore[attr-defined]


def _converts_plainly(value: object, n_outputs: int | None) -> bool:
    """True when turning ``value`` into outputs cannot run student code (no ``__array__``, ``__len__``, ...)."""
    if n_outputs is None:
        return _is_plain(value)
    return type(value) in (tuple, list) and all(_is_plain(v) for v in value)  # type: ignore[union-attr]


def _outputs(value: object, n_outputs: int | None, budget: int) -> tuple[list[np.ndarray], list[str], dict | None]:
    if n_outputs is None:
        items, labels = [value], ["the returned value"]
    elif not isinstance(value, (tuple, list)):
        return [], [], _error("output", "TypeError", f"returned {_describe(value)}, "
                              f"expected a tuple of {n_outputs} outputs")
    elif len(value) != n_outputs:
        return [], [], _error("output", "ValueError", f"returned {len(value)} values, expected {n_outputs}")
    else:
        items, labels = list(value), [f"output {i}" for i in range(n_outputs)]
    arrays, notes = [], []
    for item, label in zip(items, labels):
        arr, note, why = _convert(item, budget)
        if arr is None:
            return [], [], _error("output", "TypeError", f"{label} is {why}")
        budget -= arr.size
        arrays.append(arr)
        if note:
            notes.append(f"{label} is {note}")
    return arrays, notes, None


def _mutated(names: list[str], args: list[Any], pristine: list[np.ndarray | None]) -> list[str]:
    changed = []
    for name, arg, before in zip(names, args, pristine):
        if before is None:
            continue
        # byte comparison: NaN == NaN, -0.0 != 0.0, and a reshaped or re-typed array counts as changed
        try:
            same = arg.shape == before.shape and arg.dtype == before.dtype and arg.tobytes() == before.tobytes()
        except BaseException:  # noqa: BLE001 - e.g. resized past the memory limit: changed all the same
            same = False
        if not same:
            changed.append(name)
    return changed


class Call:
    """What every call of a batch shares: the function, its file and the worker's guards."""

    def __init__(self, module: types.ModuleType, batch: dict, max_elements: int, source_lines: list[str],
                 guard: ImportGuard, keeper: Pristine) -> None:
        self.module, self.function, self.n_outputs = module, batch["function"], batch["n_outputs"]
        self.max_elements, self.lines, self.guard, self.keeper = max_elements, source_lines, guard, keeper

    def __call__(self, call_id: int, entry: list, blob: memoryview, pos: int) -> tuple[list, list[np.ndarray], int]:
        """Run one call on fresh copies of its arguments: the answer [id, elapsed, shapes or None (not ok),
        notes, mutated, error or None], the output arrays, and where the next call's bytes start."""
        args, pristine, end = _arguments(entry, blob, pos)
        func: Callable | None = self.module.__dict__.get(self.function)
        outputs: list[np.ndarray] = []
        notes: list[str] = []
        mark = len(self.guard.attempts)
        start = _perf_counter()
        if not callable(func):
            error = _error("missing", "NameError", f"there is no function named {self.function!r}")
        else:
            outputs, notes, error = self._run(func, args)
        mutated = _mutated(entry[0], args, pristine) if callable(func) else []
        refused = self.guard.since(mark)
        if refused is not None:  # whatever the function returned, it tried to use a forbidden module
            outputs, notes, error = [], [], _error("forbidden", "ImportError", refused)
        shapes = [list(a.shape) for a in outputs] if error is None else None
        return [call_id, _perf_counter() - start, shapes, notes[:MAX_ITEMS], mutated, error], outputs, end

    def _run(self, func: Callable, args: list[Any]) -> tuple[list[np.ndarray], list[str], dict | None]:
        keeper = self.keeper
        try:
            try:
                value = func(*args)
            finally:
                keeper.restore_light()
            plain = _converts_plainly(value, self.n_outputs)
            outputs, notes, error = _outputs(value, self.n_outputs, self.max_elements)
            del value
            if not plain:
                keeper.restore()  # converting the value ran student code too (__array__, __len__, __del__)
            return outputs, notes, error
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of the student's function is a result
            keeper.restore()  # the traceback module too, before describing the exception
            error = _exception(exc, self.module.__file__ or "", self.lines)
            keeper.restore()  # the conversion, and the exception's own __str__, are student code
            return [], [], error


def _status(answer: list) -> str:
    """The status the grader will read from an answer (grader.sandbox's parsing of it)."""
    error = answer[5]
    if error is None:
        return "ok"
    return error["kind"] if error["kind"] in ("missing", "forbidden") else "error"


def run_batch(call: Call, batch: dict, blob: memoryview, pos: int, outbox: Outbox) -> int:
    """Run a batch's calls back to back, their arguments' bytes starting at ``pos`` in ``blob``; where they end.

    Which call comes next follows the grader's rule (grader.sandbox._Order): a call that is not
    ok skips the rest of its group, and a status in ``stop_on`` ends the batch. The grader
    applies the same rule to the answers, so it knows which answer to expect next.
    """
    entries, groups, stop_on = batch["calls"], batch["groups"], batch["stop_on"]
    ends = [end for size, end in zip(groups, _running_sums(groups)) for _ in range(size)]
    k = 0
    while k < len(entries):
        outbox.begin(batch["id"] + k)
        answer, outputs, pos = call(batch["id"] + k, entries[k], blob, pos)
        outbox.add(answer, outputs)
        del outputs
        status = _status(answer)
        if status in stop_on:
            k += 1
            break
        if status != "ok":
            pos += _calls_size(entries[k + 1:ends[k]])
            k = ends[k]
        else:
            k += 1
    return pos + _calls_size(entries[k:])


def run_calls(module: types.ModuleType, request: dict, blob: memoryview, source_lines: list[str],
              guard: ImportGuard, keeper: Pristine, outbox: Outbox) -> None:
    """Run a request's batches in order; each ends with what waits sent and every module restored."""
    outbox.flush_after = request["flush_after"]
    pos = 0
    for batch in request["batches"]:
        outbox.each = batch["each"]
        pos = run_batch(Call(module, batch, request["max_elements"], source_lines, guard, keeper), batch, blob, pos,
                        outbox)
        keeper.restore()  # the next function starts from pristine modules
        outbox.flush()


def _running_sums(values: Sequence[int]) -> list[int]:
    sums, total = [], 0
    for v in values:
        total += v
        sums.append(total)
    return sums


def serve(in_fd: int, out_fd: int) -> None:
    """Answer one load and then calls until the grader closes the request pipe."""
    module, lines, guard = None, [], ImportGuard(())
    keeper = Pristine(guard)
    outbox = Outbox(out_fd)
    _start_watchdog(outbox)  # before any student code: a submission that spends every thread cannot stop it
    while True:
        try:
            request, blob = read_request(in_fd)
        except EOFError:
            return
        if request["cmd"] == "load" and module is None:
            lines = request["source"].splitlines()
            _register_source(request["filename"], request["source"])
            guard = install_guard(request["forbidden"])
            keeper = Pristine(guard)
            module = load(request, out_fd, guard, keeper)
        elif request["cmd"] == "calls" and module is not None:
            run_calls(module, request, blob, lines, guard, keeper, outbox)
        else:
            raise SystemExit(f"worker: unexpected request {request.get('cmd')!r}")


def _register_source(filename: str, source: str) -> None:
    # the file is not on disk here: let traceback.print_exc() in student code show its lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def run(in_fd: int, out_fd: int) -> None:
    """Serve one submission on these pipes: a fresh worker's ``main``, and a zygote's forked worker, call this."""
    sys.dont_write_bytecode = True
    site.setquit()  # -S skipped it: a student's exit() at import should still mean SystemExit
    # stdout and stderr share one pipe: line buffering keeps a student's prints and tracebacks in order
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        serve(in_fd, out_fd)
    except BaseException as exc:  # noqa: BLE001 - student code broke the worker (closed a pipe, patched json...)
        # one line, not the worker's traceback: the student sees their output, never grader frames
        os.write(2, f"sandbox worker stopped: {type(exc).__name__}: {_text(exc)}\n".encode("utf-8", "replace"))
        os._exit(BROKEN_EXIT)


def main(argv: list[str]) -> None:
    run(int(argv[1]), int(argv[2]))


if __name__ == "__main__":
    main(sys.argv)
