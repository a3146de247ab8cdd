"""The grader's side of the wire: every answer a worker could forge is refused before an array is made."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from grader.sandbox_protocol import Malformed, encode_calls, read_answer, read_results

NAMES = frozenset({"x"})


def frame(header: object, values: np.ndarray | bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    data = values if isinstance(values, bytes) else values.astype("<f8").tobytes()
    return struct.pack(">I", len(text)) + text + data


def test_an_answer_takes_its_outputs_in_order_from_the_frames_values() -> None:
    running, answers, values = read_results(frame({"event": "results", "running": 8, "answers": [
        [6, 0.5, [[2], []], [], ["x"], None], [7, 0.1, [[1, 2]], ["a note"], [], None]]}, np.arange(5.0)))
    first, pos = read_answer(answers[0], 6, 2, NAMES, values, 0, 100)
    second, end = read_answer(answers[1], 7, None, NAMES, values, pos, 100)
    assert running == 8 and end == values.size == 5
    assert [o.tolist() for o in first.outputs] == [[0.0, 1.0], 2.0] and first.mutated == ("x",)
    assert second.outputs[0].tolist() == [[3.0, 4.0]] and second.notes == ("a note",)
    values[0] = -1  # the outputs are views into one writable copy of the frame
    assert first.outputs[0][0] == -1


def test_an_error_answer_carries_no_outputs() -> None:
    error = {"kind": "exception", "type": "ValueError", "message": "no", "frames": []}
    answer, pos = read_answer([3, 0.0, None, [], [], error], 3, None, NAMES, np.zeros(0), 0, 10)
    assert (answer.outputs, answer.error, pos) == (None, error, 0)


OK = [3, 0.0, [[2]], [], [], None]


@pytest.mark.parametrize("raw", [
    [4, 0.0, [[2]], [], [], None],  # another call's id: stale or forged
    [True, 0.0, [[2]], [], [], None],  # an id that only compares equal
    [3, -1.0, [[2]], [], [], None],  # a negative time
    [3, 0.0, [[2]], [], ["y"], None],  # changed an argument the call does not have
    [3, 0.0, [[2]], [1], [], None],  # a note that is no text
    [3, 0.0, [[2]], 0, [], None],  # notes that are no list, though as empty as one
    [3, 0.0, [[2]], [], {}, None],  # changed arguments that are no list
    [3, 0.0, [[2]], None, None, None],
    [3, 0.0, [2], [], [], None],  # a shape that is no list
    [3, 0.0, [[1] * 65], [], [], None],  # more dimensions than NumPy allows
    [3, 0.0, [[2], [2]], [], [], None],  # two outputs for a call that returns one
    [3, 0.0, [[3]], [], [], None],  # more values than the frame holds
    [3, 0.0, [[-1]], [], [], None],  # a negative dimension
    [3, 0.0, [[2.0]], [], [], None],  # a dimension that is no whole number
    [3, 0.0, None, [], [], None],  # neither outputs nor an error
    [3, 0.0, [[2]], [], [], {"kind": "exception", "type": "E", "message": "m", "frames": []}],  # both
    [3, 0.0, None, [], [], {"kind": "rootkit", "type": "E", "message": "m", "frames": []}],
    [3, 0.0, [[2]], [], []],  # a field short
    {"id": 3},
])
def test_forged_answers_are_malformed(raw: object) -> None:
    assert read_answer(OK, 3, None, NAMES, np.zeros(2), 0, 10)[1] == 2  # the honest answer passes
    with pytest.raises(Malformed):
        read_answer(raw, 3, None, NAMES, np.zeros(2), 0, 10)


def test_an_answer_beyond_the_element_limit_is_malformed() -> None:
    with pytest.raises(Malformed):
        read_answer([3, 0.0, [[6]], [], [], None], 3, None, NAMES, np.zeros(6), 0, 5)


@pytest.mark.parametrize("payload", [
    frame({"event": "results", "running": None, "answers": []}, b"\0" * 7),  # values that are not whole float64s
    frame({"event": "results", "running": "3", "answers": []}),
    frame({"event": "results", "answers": []}),
    frame({"event": "loaded", "running": None, "answers": []}),
    b"\0\0\0\xffnot json",
])
def test_malformed_frames_are_refused(payload: bytes) -> None:
    with pytest.raises(Malformed):
        read_results(payload)


def test_calls_are_encoded_back_to_back_with_each_calls_entry() -> None:
    calls = encode_calls([[("x", np.arange(3.0)), ("n", 2)], [("x", np.ones((2, 2), dtype=np.float32)), ("n", 1.5)]])
    assert [json.loads(e) for e in calls.entries] == [
        [["x", "n"], ["array", "int"], ["<f8", "<i8"], [[3], []]],
        [["x", "n"], ["array", "float"], ["<f4", "<f8"], [[2, 2], []]]]
    assert calls.offsets == (0, 32, 56) and len(calls.blob) == 56
    assert np.frombuffer(calls.blob_from(1)[:16], dtype="<f4").tolist() == [1.0] * 4
    assert json.loads(calls.json_from(1)) == [json.loads(calls.entries[1])]
