"""The worker's messages, validated strictly: the grader's side of ``grader/worker.py``'s framing.

Every byte a worker sends may have been written by student code, so nothing here
trusts it: a header is JSON checked against a field spec (exactly these keys, each
passing its check), an array is a .npy float64 blob whose header is checked before
its data is touched, and anything else raises ``Malformed``. Nothing is unpickled.
Requests going the other way are encoded here too, so that the whole wire format
the grader speaks lives in one module, apart from the processes that carry it.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import struct
from typing import Callable, Mapping, Sequence

import numpy as np

from grader.sandbox_process import KiB, SandboxError

MAX_TEXT = 2000  # characters of any one text from the worker shown to a student


class Malformed(Exception):
    """A response that does not follow the protocol (garbage on the pipe, wrong types, bad arrays)."""


def clean(text: str) -> str:
    """A worker's text made safe to show: undecodable characters escaped, at most ``MAX_TEXT`` long."""
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


def fields(value: object, spec: Mapping[str, Callable[[object], bool]]) -> dict:
    """``value`` if it is a dict with exactly ``spec``'s keys, each passing its check."""
    if type(value) is not dict or set(value) != set(spec) or not all(ok(value[k]) for k, ok in spec.items()):
        raise Malformed
    return value


_FRAME = {"file": _is_str, "line": _is_line, "function": _is_str, "source": _is_str}
_ERROR = {"kind": lambda v: v in ("exception", "exit", "memory", "output", "missing", "syntax", "forbidden"),
          "type": _is_str, "message": _is_str, "frames": _list_of(lambda f: bool(fields(f, _FRAME)))}
_LOAD_ERROR = {"line": _is_line, **_ERROR}
# the worker's three events, as field specs for ``fields``
LOADING = {"event": lambda v: v == "loading", "line": _is_line}
LOADED = {"event": lambda v: v == "loaded", "functions": _list_of(_is_str, 10_000),
           "errors": _list_of(lambda e: bool(fields(e, _LOAD_ERROR)))}
RESULT = {"event": lambda v: v == "result", "id": _is_line, "ok": lambda v: type(v) is bool, "outputs": _is_line,
           "notes": _list_of(_is_str), "mutated": _list_of(_is_str),
           "error": lambda v: v is None or bool(fields(v, _ERROR)), "elapsed": _is_seconds}


_DIM = rb"(?:0|[1-9][0-9]{0,17})"  # no leading zeros, as Python's own literals; small enough to parse safely
# the one header a worker writes for a float64 array, e.g. {'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }
# padded with spaces: read without ast.literal_eval; anything else goes through numpy's own (stricter, slower) parser
_FLOAT64_HEADER = re.compile(rb"\{'descr': '" + re.escape(np.dtype(np.float64).str.encode("ascii")) +
                             rb"', 'fortran_order': False, 'shape': (\(\)|\(" + _DIM + rb",\)|\((?:" + _DIM +
                             rb", )+" + _DIM + rb",?\)), \} *\n")


def _read_npy(blob: memoryview) -> np.ndarray:
    """A float64 array from .npy bytes; the header is checked before any data is touched."""
    shape = _float64_shape(blob)
    data = blob[10 + struct.unpack("<H", blob[8:10])[0]:]
    if len(data) != 8 * math.prod(shape):
        raise Malformed
    return np.frombuffer(data, dtype=np.float64).reshape(shape).copy()


def _float64_shape(blob: memoryview) -> tuple[int, ...]:
    """The shape in a version 1.0 .npy header of a C-ordered float64 array; anything else is ``Malformed``."""
    if len(blob) < 10 or blob[:8] != b"\x93NUMPY\x01\x00":
        raise Malformed
    end = 10 + struct.unpack("<H", blob[8:10])[0]
    if len(blob) < end:
        raise Malformed
    return _header_shape(bytes(blob[10:end]))


@functools.lru_cache(maxsize=1024)  # bounded: the bytes come from the worker, which may send endless variety
def _header_shape(header: bytes) -> tuple[int, ...]:
    fast = _FLOAT64_HEADER.fullmatch(header)
    if fast is not None:
        return tuple(int(d) for d in fast.group(1)[1:-1].split(b",") if d.strip())
    try:
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(io.BytesIO(struct.pack("<H", len(header))
                                                                               + header), max_header_size=64 * KiB)
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes is the same verdict
        raise Malformed from exc
    if fortran or dtype != np.dtype(np.float64) or not all(type(d) is int and d >= 0 for d in shape):
        raise Malformed
    return shape


def parse_payload(payload: bytes) -> tuple[object, list[np.ndarray]]:
    """A frame's payload as (JSON header, float64 arrays); the header's fields are not checked yet."""
    view = memoryview(payload)
    if len(view) < 4:
        raise Malformed
    (hlen,) = struct.unpack(">I", view[:4])
    if 4 + hlen > len(view):
        raise Malformed
    try:
        header = json.loads(bytes(view[4:4 + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Malformed from exc
    arrays, pos = [], 4 + hlen
    while pos < len(view):
        if pos + 8 > len(view):
            raise Malformed
        (blen,) = struct.unpack(">Q", view[pos:pos + 8])
        if pos + 8 + blen > len(view):
            raise Malformed
        arrays.append(_read_npy(view[pos + 8:pos + 8 + blen]))
        pos += 8 + blen
    return header, arrays


def request(header: dict, arrays: Sequence[np.ndarray] = ()) -> bytes:
    """One whole request frame: length prefix, JSON header, then each array as a length-prefixed .npy."""
    parts = [json.dumps(header).encode("utf-8")]
    parts.insert(0, struct.pack(">I", len(parts[0])))
    for arr in arrays:
        npy = npy_bytes(arr)
        parts += [struct.pack(">Q", len(npy)), npy]
    payload = b"".join(parts)
    return struct.pack(">Q", len(payload)) + payload


def npy_bytes(arr: np.ndarray) -> bytes:
    """``arr`` as the bytes ``np.save`` would write (format 1.0), without its per-call overhead."""
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    head = _npy_head(arr.dtype, fortran, tuple(int(d) for d in arr.shape))
    return head + arr.tobytes("F" if fortran else "C")


@functools.lru_cache(maxsize=4096)
def _npy_head(dtype: np.dtype, fortran: bool, shape: tuple[int, ...]) -> bytes:
    # a grade sends a few thousand arrays of a few dozen shapes: each header is built once
    text = f"{{'descr': {np.lib.format.dtype_to_descr(dtype)!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    pad = 63 - (10 + len(text)) % 64  # header and prefix a multiple of 64 bytes, as numpy aligns them
    head = text.encode("ascii") + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head


def encode_args(args: Sequence[tuple[str, np.ndarray | int | float]]) -> tuple[list[str], list[str], list[np.ndarray]]:
    """(names, kinds, arrays) of a call's (name, value) arguments; a value that cannot be sent is a SandboxError."""
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


def line_number(line: int) -> str:
    """The plain way to name a line; a notebook names cells instead (Submission.locate)."""
    return f"line {line}"


def where(frames: Sequence[dict], locate: Callable[[int], str] = line_number) -> str:
    """Where an error showed up, as ' (file, line N, in function: source)'; empty without frames."""
    if not frames:
        return ""
    f = frames[-1]  # the innermost frame in the student's file is where the error showed up
    source = f": {clean(f['source'])}" if f["source"] else ""
    return f" ({clean(f['file'])}, {locate(f['line'])}, in {clean(f['function'])}{source})"
