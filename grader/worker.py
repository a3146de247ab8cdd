"""The sandboxed worker: runs INSIDE the child process that executes a submission.

Started by ``grader.sandbox`` as ``python -I -S worker.py REQUEST_FD RESPONSE_FD
PACKAGES_DIR``, or imported once by a zygote (``grader/zygote_worker.py``) whose
forked children each call ``run``. It imports only the standard library and NumPy,
never ``grader`` or ``reference``: the child must hold nothing of the grader but
this file. ``-S`` skips the site-packages hooks (``.pth`` files), among them the one
of an editable install that would make ``grader`` importable; only ``PACKAGES_DIR``
is added.

Protocol (both directions): a frame is an 8-byte big-endian length and a payload;
a payload is a 4-byte big-endian length and a UTF-8 JSON header, then zero or
more ``.npy`` blobs, each behind its own 8-byte length. Nothing is ever pickled.
Requests are ``load`` (once) and ``calls`` (repeatedly: a batch of calls of one
function, run back to back); the worker answers with ``loading`` events (one
before each top-level statement), one ``loaded`` event, and one ``result`` per
call, sent as soon as that call is done. stdout/stderr belong to the student.

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
import ast
import io
import json
import linecache
import re
import site
import struct
import time
import traceback
import types
from typing import Any, Callable, Sequence

import numpy as np

MAX_TEXT = 500  # characters of one message; keeps every header small
IOV_MAX = 1024  # buffers one writev may take (POSIX guarantees at least 16; Linux allows 1024)
MAX_ITEMS = 200  # entries of one list in a header (errors, frames, notes)
MAX_NAMES = 5000  # `from numpy import *` alone brings hundreds of callables
BROKEN_EXIT = 70  # the worker could not go on; grader.sandbox knows this code


# --- framing -----------------------------------------------------------------

def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the grader closed the request pipe")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# the header numpy and the grader write for a C-ordered array, e.g. {'descr': '<f8', 'fortran_order': False,
# 'shape': (4, 3), } padded with spaces: parsed here without ast.literal_eval, anything else goes to np.load
_NPY_FAST = re.compile(rb"\x93NUMPY\x01\x00..\{'descr': '([<>|][fiub][1248])', 'fortran_order': False, "
                       rb"'shape': \(((?:\d+, )*\d+,?)?\), \} *\n", re.DOTALL)


def _read_npy(blob: memoryview) -> np.ndarray:
    # a writable array of its own: the student may change it, and the worker compares it afterwards
    head = _NPY_FAST.match(blob)
    if head is None:
        return np.load(io.BytesIO(blob), allow_pickle=False)
    shape = tuple(int(d) for d in head.group(2).split(b",") if d.strip()) if head.group(2) else ()
    dtype = np.dtype(head.group(1).decode("ascii"))
    return np.frombuffer(blob, dtype, offset=head.end()).reshape(shape).copy()


def read_request(fd: int) -> tuple[dict, list[np.ndarray]]:
    """One request: its JSON header and its argument arrays (the parent is trusted)."""
    (size,) = struct.unpack(">Q", _read_exact(fd, 8))
    payload = memoryview(_read_exact(fd, size))
    (hlen,) = struct.unpack(">I", payload[:4])
    header = json.loads(bytes(payload[4:4 + hlen]))
    arrays, pos = [], 4 + hlen
    while pos < size:
        (blen,) = struct.unpack(">Q", payload[pos:pos + 8])
        arrays.append(_read_npy(payload[pos + 8:pos + 8 + blen]))
        pos += 8 + blen
    return header, arrays


def _npy_parts(arr: np.ndarray) -> list[memoryview | bytes]:
    # the header alone, then the data as a zero-copy view: a big output is never duplicated
    arr = arr if arr.flags.c_contiguous else np.copy(arr, order="C")
    text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (arr.dtype.str, arr.shape)
    pad = 63 - (10 + len(text)) % 64  # the whole header a multiple of 64 bytes, as numpy writes it
    head = text.encode("ascii") + b" " * pad + b"\n"
    return [b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head,
            memoryview(arr.reshape(-1)).cast("B") if arr.size else b""]


def send(fd: int, header: dict, arrays: Sequence[np.ndarray] = ()) -> None:
    """Write one frame: the header and the arrays as length-prefixed .npy blobs."""
    text = json.dumps(header).encode("utf-8")
    parts: list[memoryview | bytes] = [struct.pack(">I", len(text)), text]
    for arr in arrays:
        npy = _npy_parts(arr)
        parts += [struct.pack(">Q", sum(len(p) for p in npy)), *npy]
    parts.insert(0, struct.pack(">Q", sum(len(p) for p in parts)))
    _write_all(fd, parts)


def _write_all(fd: int, parts: list[memoryview | bytes]) -> None:
    # one writev for the whole frame: a write per part would wake the grader for each, to find half a frame
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        written = os.writev(fd, views[:IOV_MAX])
        while written:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0], written = views[0][written:], 0


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
    or this very script's functions. ``restore`` puts every name back after each top-level
    statement and each call, so a patch cannot poison how later calls are converted and
    sent (added names stay). The parent validates every byte anyway; this keeps one
    function's mischief from costing the innocent ones their points.
    """

    # __name__: this script's own helpers, "__main__" when started as a script, "worker" when a zygote imported it
    MODULES = tuple(dict.fromkeys(("__main__", __name__, "builtins", "numpy", "numpy.lib.format", "json", "struct",
                                   "os", "io", "sys", "time", "traceback", "types", "linecache", "ast")))

    def __init__(self, guard: ImportGuard) -> None:
        self.guard = guard
        # each module's own dict, kept here: a module's __class__ can be swapped for one whose
        # attribute access runs student code, so restore never goes through the module object
        self.saved = [(name, sys.modules[name], sys.modules[name].__dict__, dict(sys.modules[name].__dict__))
                      for name in self.MODULES if name in sys.modules]
        self.modules = sys.modules

    def restore(self) -> None:
        # no builtins and no globals here beyond `self`: they may be the very things that were patched.
        # dict.update writes every saved name back in C: unchanged names cost a pointer store, and it
        # is a quarter of the time of comparing name by name, so it runs after every call unconditionally
        for name, module, current, names in self.saved:
            self.modules[name] = module
            current.update(names)
        meta_path = self.modules["sys"].meta_path
        if not meta_path or meta_path[0] is not self.guard:
            meta_path.insert(0, self.guard)


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


def load(request: dict, out_fd: int, guard: ImportGuard, keeper: Pristine) -> types.ModuleType:
    """Execute the submission one top-level statement at a time, reporting each failure."""
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
    for stmt in body:
        flags |= _future_flags(stmt)
        if stmt.lineno in skip:
            continue
        send(out_fd, {"event": "loading", "line": stmt.lineno})
        mark = len(guard.attempts)
        try:
            code = compile(ast.Module([stmt], type_ignores=[]), filename, "exec", flags=flags, dont_inherit=True)
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

def _argument(kind: str, arr: np.ndarray) -> Any:
    # dimensions come as Python ints and scalars as Python floats, as a student would call them
    if kind == "int":
        return int(arr)
    if kind == "float":
        return float(arr)
    return arr


def _kind_note(value: object, raw: np.ndarray) -> str | None:
    """How a returned value was turned into float64, or None when it already was a plain float64 array."""
    if type(value) is np.ndarray:
        return None if raw.dtype == np.float64 else f"a {raw.dtype} array, converted to float64"
    if isinstance(value, np.ndarray):
        return f"a {type(value).__name__} (an ndarray subclass), converted to a plain float64 array"
    if isinstance(value, (bool, np.bool_)):
        return "a bool, converted to float64"
    if isinstance(value, np.generic):  # before float: np.float64 is a subclass of float
        return f"a NumPy {raw.dtype} scalar, converted to a 0-d float64 array"
    if isinstance(value, (int, float)):
        return f"a Python {type(value).__name__}, converted to a 0-d float64 array"
    return f"a {type(value).__name__}, converted to a float64 array"


def _describe(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array"
    return f"a {type(value).__name__}"


def _convert(value: object, budget: int) -> tuple[np.ndarray | None, str | None, str]:
    """(array, note, "") on success, or (None, None, why) when the value is no real numeric array."""
    # described before the conversion runs any of its code, but only when it failed: str(dtype) is slow
    what = _describe(value) if type(value) is not np.ndarray else None
    try:
        raw = np.asarray(value)
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
        return np.array(raw, dtype=np.float64), note, ""
    except BaseException as exc:  # noqa: BLE001
        return None, None, (f"{what or _describe(value)}, which cannot be converted to float64 "
                            f"({type(exc).__name__}: {_text(exc)})")


# values whose conversion to float64 runs no code of the student's: exactly these types, never subclasses
_PLAIN_SCALARS = frozenset({bool, int, float, *(t for t in set(np.sctypeDict.values())
                                                if issubclass(t, (np.number, np.bool_)))})


def _is_plain(value: object) -> bool:
    kind = type(value)
    return kind in _PLAIN_SCALARS or (kind is np.ndarray and value.dtype.kind in "biufc")  # type: ignore[attr-defined]


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


def call(module: types.ModuleType, request: dict, arrays: list[np.ndarray],
         source_lines: list[str], guard: ImportGuard, keeper: Pristine) -> tuple[dict, list[np.ndarray]]:
    """Run one call on fresh copies of its arguments; return the result header and the output arrays."""
    filename = module.__file__ or ""
    kinds, names = request["arg_kinds"], request["names"]
    args = [_argument(k, a) for k, a in zip(kinds, arrays)]
    pristine = [a.copy() if k == "array" else None for k, a in zip(kinds, arrays)]
    result: dict = {"event": "result", "id": request["id"], "ok": False, "outputs": 0, "notes": [],
                    "mutated": [], "error": None}
    func: Callable | None = module.__dict__.get(request["function"])
    outputs: list[np.ndarray] = []
    mark = len(guard.attempts)
    start = time.perf_counter()
    if not callable(func):
        result["error"] = _error("missing", "NameError", f"there is no function named {request['function']!r}")
    else:
        try:
            try:
                value = func(*args)
            finally:
                keeper.restore()
            plain = _converts_plainly(value, request["n_outputs"])
            outputs, notes, error = _outputs(value, request["n_outputs"], request["max_elements"])
            del value
            if not plain:
                keeper.restore()  # converting the value ran student code too (__array__, __len__, __del__)
            result.update(ok=error is None, outputs=len(outputs), notes=notes[:MAX_ITEMS], error=error)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of the student's function is a result
            result["error"] = _exception(exc, filename, source_lines)
            keeper.restore()  # the conversion, and the exception's own __str__, are student code
        result["mutated"] = _mutated(names, args, pristine)
        refused = guard.since(mark)
        if refused is not None:  # whatever the function returned, it tried to use a forbidden module
            outputs = []
            result.update(ok=False, outputs=0, notes=[], error=_error("forbidden", "ImportError", refused))
    result["elapsed"] = time.perf_counter() - start
    return result, outputs


def _status(result: dict) -> str:
    """The status the grader will read from ``result`` (grader.sandbox's parsing of it)."""
    if result["ok"]:
        return "ok"
    kind = result["error"]["kind"]
    return kind if kind in ("missing", "forbidden") else "error"


def run_calls(module: types.ModuleType, request: dict, arrays: list[np.ndarray], source_lines: list[str],
              guard: ImportGuard, keeper: Pristine, out_fd: int) -> None:
    """Run a batch of calls of one function back to back, sending each answer as soon as it is ready.

    Which call comes next follows the grader's rule (grader.sandbox._Order): a call that is not
    ok skips the rest of its group, and a status in ``stop_on`` ends the batch. The grader
    applies the same rule to the answers, so it knows which answer to expect next.
    """
    names, kinds, groups = request["names"], request["arg_kinds"], request["groups"]
    offsets = [0]
    for each in names:
        offsets.append(offsets[-1] + len(each))
    ends = [end for size, end in zip(groups, _running_sums(groups)) for _ in range(size)]
    k = 0
    while k < len(ends):
        one = {"id": request["id"] + k, "function": request["function"], "names": names[k], "arg_kinds": kinds[k],
               "n_outputs": request["n_outputs"], "max_elements": request["max_elements"]}
        header, outputs = call(module, one, arrays[offsets[k]:offsets[k + 1]], source_lines, guard, keeper)
        _flush_student_output()
        send(out_fd, header, outputs)
        del outputs
        status = _status(header)
        if status in request["stop_on"]:
            return
        k = k + 1 if status == "ok" else ends[k]


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
    while True:
        try:
            request, arrays = read_request(in_fd)
        except EOFError:
            return
        if request["cmd"] == "load" and module is None:
            lines = request["source"].splitlines()
            _register_source(request["filename"], request["source"])
            guard = install_guard(request["forbidden"])
            keeper = Pristine(guard)
            module = load(request, out_fd, guard, keeper)
        elif request["cmd"] == "calls" and module is not None:
            run_calls(module, request, arrays, lines, guard, keeper, out_fd)
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
