"""The worker's messages, validated strictly: the grader's side of ``grader/worker.py``'s framing.

Every byte a worker sends may have been written by student code, so nothing here
trusts it: a header is JSON checked against a field spec (exactly these keys, each
passing its check), an answer's output shapes are checked against the call and
against the float64 bytes that follow the header before any array is made, and
anything else raises ``Malformed``. Nothing is unpickled. Requests going the other
way are encoded here too, so that the whole wire format the grader speaks lives in
one module, apart from the processes that carry it.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from grader.sandbox_process import SandboxError

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
RESULTS = {"event": lambda v: v == "results", "running": lambda v: v is None or _is_line(v),
           "answers": lambda v: type(v) is list}
MAX_DIMS = 64  # NumPy's own limit on an array's dimensions


class Answer(NamedTuple):
    """One call's answer as the worker sent it, checked: ``outputs`` is None when the call was not ok.

    A tuple, not a dataclass: a grade reads about a thousand of them, and it is made at once.
    """

    elapsed: float  # seconds, as the worker measured the call
    outputs: tuple[np.ndarray, ...] | None
    notes: tuple[str, ...]
    mutated: tuple[str, ...]
    error: dict | None  # fields as ``_ERROR``, when not ok


def split_payload(payload: bytes) -> tuple[object, memoryview]:
    """A frame's payload as (JSON header, the bytes after it); the header's fields are not checked yet."""
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
    return header, view[4 + hlen:]


def read_results(payload: bytes) -> tuple[int | None, list, np.ndarray]:
    """A ``results`` frame: the call named as running, the raw answers, and every output's values in one array."""
    header, data = split_payload(payload)
    results = fields(header, RESULTS)
    if len(data) % 8:
        raise Malformed
    # one copy for the whole frame: the outputs are views into it, aligned, writable and in native byte order
    values = np.frombuffer(data, dtype="<f8").astype(np.float64)
    return results["running"], results["answers"], values


def read_answer(raw: object, call_id: int, n_outputs: int | None, names: frozenset[str], values: np.ndarray,
                pos: int, max_elements: int) -> tuple[Answer, int]:
    """Answer ``raw`` to call ``call_id``, its outputs taken from ``values`` at ``pos``; and where the next start."""
    if type(raw) is not list or len(raw) != 6:
        raise Malformed
    got_id, elapsed, shapes, notes, mutated, error = raw
    if got_id != call_id or type(got_id) is not int or not _is_seconds(elapsed) or (shapes is None) == (error is None):
        raise Malformed
    # most answers have neither notes nor changed arguments: two empty lists are checked at once
    if (notes or mutated or type(notes) is not list or type(mutated) is not list) and (
            not _STRINGS(notes) or not _STRINGS(mutated) or not set(mutated) <= names):
        raise Malformed
    if error is not None:
        return Answer(float(elapsed), None, tuple(notes), tuple(mutated), fields(error, _ERROR)), pos
    if type(shapes) is not list or len(shapes) != (n_outputs or 1):
        raise Malformed
    outputs = []
    for shape in shapes:
        size = _size(shape)
        if size > max_elements or pos + size > len(values):
            raise Malformed
        outputs.append(values[pos:pos + size].reshape(shape))
        pos += size
        max_elements -= size
    return Answer(float(elapsed), tuple(outputs), tuple(notes), tuple(mutated), None), pos


def _size(shape: object) -> int:
    """The number of elements of an array of ``shape``, if it is one (a list of at most 64 sizes)."""
    if type(shape) is not list or len(shape) > MAX_DIMS:
        raise Malformed
    size = 1
    for d in shape:
        if type(d) is not int or not 0 <= d < 1 << 40:
            raise Malformed
        size *= d
    return size


_STRINGS = _list_of(_is_str)



# --- requests --------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedCalls:
    """Calls ready to send: each call's JSON entry [names, kinds, dtypes, shapes] and its arguments' bytes.

    The bytes of every call lie back to back in ``blob``; call ``k``'s start at ``offsets[k]``.
    Encoded once, the same calls can go to any number of workers (a batch sends them to each).
    """

    entries: tuple[str, ...]
    names: tuple[frozenset[str], ...]  # each call's argument names: an answer may say only these were changed
    offsets: tuple[int, ...]  # len(entries) + 1 of them
    blob: bytes

    def __len__(self) -> int:
        return len(self.entries)

    def json_from(self, first: int) -> str:
        """The JSON list of the entries of calls ``first``.. (the rest of a batch resent to a new worker)."""
        return "[" + ", ".join(self.entries[first:]) + "]"

    def blob_from(self, first: int) -> memoryview:
        return memoryview(self.blob)[self.offsets[first]:]


def encode_calls(calls: Sequence[Sequence[tuple[str, np.ndarray | int | float]]]) -> EncodedCalls:
    """Each call's (name, value) arguments encoded; a value that cannot be sent is a ``SandboxError``."""
    entries, names, offsets, chunks = [], [], [0], []
    for args in calls:
        entry: tuple[list[str], list[str], list[str], list[list[int]]] = ([], [], [], [])
        end = offsets[-1]
        for name, value in args:
            kind, arr = _argument(name, value)
            arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
            for column, item in zip(entry, (str(name), kind, arr.dtype.str, list(arr.shape))):
                column.append(item)  # type: ignore[arg-type]
            chunks.append(arr.tobytes())
            end += arr.nbytes
        entries.append(json.dumps(entry))
        names.append(frozenset(entry[0]))
        offsets.append(end)
    return EncodedCalls(tuple(entries), tuple(names), tuple(offsets), b"".join(chunks))


def _argument(name: str, value: object) -> tuple[str, np.ndarray]:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating, np.ndarray)):
        raise SandboxError(f"argument {name!r}: expected an ndarray, int or float, got {type(value).__name__}")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise SandboxError(f"argument {name!r}: a {value.dtype} array cannot be sent to the worker")
        return "array", value
    if isinstance(value, (int, np.integer)):
        return "int", np.array(int(value), dtype=np.int64)
    return "float", np.array(float(value), dtype=np.float64)


def request(header: dict | bytes, blob: Sequence[bytes | memoryview] = ()) -> bytes:
    """One whole request frame: length prefix, JSON header (a dict, or already encoded), then the raw bytes."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode("utf-8")
    payload = b"".join([struct.pack(">I", len(text)), text, *blob])
    return struct.pack(">Q", len(payload)) + payload


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
