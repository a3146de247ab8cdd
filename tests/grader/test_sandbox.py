"""The sandbox: student code runs in a limited worker process and only float64 arrays come back."""

from __future__ import annotations

import ast
import gc
import io
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from grader.sandbox import Batch, CallResult, Limits, LoadIssue, Sandbox, SandboxError, worker_environment

# a leaked pipe or process shows up as a ResourceWarning: make it fail the test that leaked it
pytestmark = pytest.mark.filterwarnings("error")

FAST = Limits(load_timeout=1.0)

GOOD = """
import numpy as np

def affine(W, x, b):
    return W @ x + b

def pair(a):
    return a * 2, a.sum()

def as_list():
    return [1, 2, 3]

def as_int():
    return 7

def as_float32(a):
    return a.astype(np.float32)

def as_zero_d():
    return np.array(2.5, dtype=np.float32)

def as_python_float():
    return 1.5

def as_bools(a):
    return a > 0

def three(a):
    return a, a, a

def not_a_tuple(a):
    return a

def as_str():
    return "0.5"

def as_none():
    return None

def as_complex(a):
    return a + 1j

class Weird:
    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array for you")
    def __float__(self):
        raise RuntimeError("no float either")

def as_weird():
    return Weird()

def second_weird(a):
    return a, Weird()

class Liar(np.ndarray):
    def __eq__(self, other):
        return True

def as_liar(a):
    return (a + 1).view(Liar)

def helper(a, b):
    return a / b

def divides(a):
    return helper(float(a[0]), 0)

def mutates(a, b, n):
    a[0] = 99.0
    b.shape = (b.size,)
    return a.sum() + n

def exits():
    import sys
    sys.exit(3)

def hard_exit():
    import os
    os._exit(4)

def spins():
    while True:
        pass

def grows():
    chunks = []
    while True:
        chunks.append(np.ones(10**7))

def huge():
    return np.zeros(2**34)

def chatty():
    for _ in range(200):
        print("x" * 100_000)
    return 1.0

def kind(n, s):
    return float(isinstance(n, int)) + 10 * float(isinstance(s, float))
"""


@pytest.fixture(scope="module")
def good() -> Iterator[Sandbox]:
    with Sandbox(GOOD, "student.py", Limits(memory=768 * 2**20, max_output=10_000)) as sandbox:
        yield sandbox


def call(sandbox: Sandbox, function: str, *args: np.ndarray | int | float, n: int | None = None,
         timeout: float = 5.0) -> CallResult:
    return sandbox.call(function, [(f"arg{i}", a) for i, a in enumerate(args)], n, timeout)


# --- values and conversions ----------------------------------------------------------

def test_load_lists_functions_and_layers(good: Sandbox) -> None:
    report = good.load()
    assert {"affine", "pair", "divides", "Weird"} <= set(report.functions)
    assert report.issues == () and report.skipped == ()
    assert report.layers[:4] == ("separate process", "isolated interpreter (python -I -S)", "scrubbed environment",
                                 "scratch working directory")
    assert "rlimit: address space 768 MiB" in report.layers


def test_good_function_returns_float64(good: Sandbox) -> None:
    W, x, b = np.arange(6.0).reshape(2, 3), np.array([1.0, -1.0, 2.0]), np.array([0.5, 0.25])
    r = good.call("affine", [("W", W), ("x", x), ("b", b)], None, 5.0)
    assert (r.status, r.message, r.notes, r.mutated) == ("ok", "", (), ())
    assert len(r.outputs) == 1 and type(r.outputs[0]) is np.ndarray and r.outputs[0].dtype == np.float64
    np.testing.assert_array_equal(r.outputs[0], W @ x + b)


def test_tuple_return_with_n_outputs(good: Sandbox) -> None:
    r = call(good, "pair", np.array([1.0, 2.0]), n=2)
    assert r.status == "ok"
    np.testing.assert_array_equal(r.outputs[0], [2.0, 4.0])
    assert r.outputs[1].shape == () and r.outputs[1] == 3.0
    assert r.notes == ("output 1 is a NumPy float64 scalar, converted to a 0-d float64 array",)


@pytest.mark.parametrize("function, args, value, note", [
    ("as_list", (), [1.0, 2.0, 3.0], "the returned value is a list, converted to a float64 array"),
    ("as_int", (), 7.0, "the returned value is a Python int, converted to a 0-d float64 array"),
    ("as_python_float", (), 1.5, "the returned value is a Python float, converted to a 0-d float64 array"),
    ("as_float32", (np.array([0.5, 1.5]),), [0.5, 1.5], "the returned value is a float32 array, converted to float64"),
    ("as_zero_d", (), 2.5, "the returned value is a float32 array, converted to float64"),
    ("as_bools", (np.array([-1.0, 2.0]),), [0.0, 1.0], "the returned value is a bool array, converted to float64"),
])
def test_conversions_are_noted(good: Sandbox, function: str, args: tuple, value: object, note: str) -> None:
    r = call(good, function, *args)
    assert (r.status, r.notes) == ("ok", (note,))
    assert r.outputs[0].dtype == np.float64 and r.outputs[0].shape == np.shape(value)
    np.testing.assert_array_equal(r.outputs[0], value)


def test_wrong_number_of_outputs(good: Sandbox) -> None:
    r = call(good, "three", np.ones(2), n=2)
    assert (r.status, r.message, r.outputs) == ("error", "returned 3 values, expected 2", ())
    r = call(good, "not_a_tuple", np.ones(2), n=2)
    assert (r.status, r.message) == ("error", "returned a float64 array, expected a tuple of 2 outputs")


@pytest.mark.parametrize("function, args, n, message", [
    ("as_str", (), None, "the returned value is a str, not a number or an array of numbers"),
    ("as_none", (), None, "the returned value is None, not a number or an array of numbers"),
    ("as_complex", (np.ones(2),), None, "the returned value is a complex128 array of complex numbers; "
                                        "only real numbers can be graded"),
    ("as_weird", (), None, "the returned value is a Weird, which cannot be converted to an array "
                           "(RuntimeError: no array for you)"),
    ("second_weird", (np.ones(2),), 2, "output 1 is a Weird, which cannot be converted to an array "
                                       "(RuntimeError: no array for you)"),
])
def test_unconvertible_output_is_an_error(good: Sandbox, function: str, args: tuple, n: int | None,
                                          message: str) -> None:
    r = call(good, function, *args, n=n)
    assert (r.status, r.message, r.outputs) == ("error", message, ())


def test_ndarray_subclass_comes_back_plain(good: Sandbox) -> None:
    r = call(good, "as_liar", np.array([1.0, 2.0]))
    assert r.status == "ok" and type(r.outputs[0]) is np.ndarray
    assert r.outputs[0].tolist() == [2.0, 3.0]
    assert r.notes == ("the returned value is a Liar (an ndarray subclass), converted to a plain float64 array",)


PATCHING = """
import json
import numpy as np

class Sneaky:
    def __array__(self, *args, **kwargs):
        np.mean = lambda *a, **k: 42.0  # numpy as the next function sees it
        json.dumps = lambda *a, **k: "garbage"  # and the worker's own way of answering
        return np.array([1.0, 2.0])

class SneakyTuple(tuple):
    def __len__(self):
        np.mean = lambda *a, **k: 43.0
        return tuple.__len__(self)

def sneaky():
    return Sneaky()

def sneaky_pair(a):
    return SneakyTuple((a, a))

def patches_then_returns_plain(a):
    np.mean = lambda *a, **k: 44.0
    return a

def mean(a):
    return np.mean(a)
"""


@pytest.mark.parametrize("function, args, n", [("sneaky", (), None), ("sneaky_pair", (np.ones(2),), 2),
                                               ("patches_then_returns_plain", (np.ones(2),), None)])
def test_a_patch_made_while_the_answer_is_converted_is_undone(function: str, args: tuple, n: int | None) -> None:
    # the worker skips its second restore for plain answers: the ones whose conversion runs no student code
    with Sandbox(PATCHING, "student.py", Limits(load_timeout=2.0)) as sandbox:
        assert call(sandbox, function, *args, n=n).status == "ok"  # json.dumps was back before the answer went
        r = call(sandbox, "mean", np.array([1.0, 3.0]))
        assert (r.status, float(r.outputs[0])) == ("ok", 2.0)


def test_ints_and_floats_arrive_as_python_numbers(good: Sandbox) -> None:
    r = good.call("kind", [("n", 3), ("s", 0.5)], None, 5.0)
    assert r.status == "ok" and float(r.outputs[0]) == 11.0


def test_exception_names_the_students_line_only(good: Sandbox) -> None:
    r = call(good, "divides", np.ones(2))
    line = GOOD.splitlines().index("    return a / b") + 1
    assert r.status == "error"
    assert r.message == f"ZeroDivisionError: float division by zero (student.py, line {line}, in helper: return a / b)"
    assert "worker" not in r.message and "sandbox" not in r.message


def test_mutation_is_reported_and_the_parents_arrays_are_untouched(good: Sandbox) -> None:
    a, b = np.array([1.0, 2.0]), np.ones((2, 2))
    r = good.call("mutates", [("a", a), ("b", b), ("n", 1)], None, 5.0)
    assert (r.status, r.mutated) == ("ok", ("a", "b"))
    assert float(r.outputs[0]) == 102.0
    assert a.tolist() == [1.0, 2.0] and b.shape == (2, 2)


def test_missing_function(good: Sandbox) -> None:
    r = call(good, "nope")
    assert (r.status, r.message) == ("missing", "there is no function named 'nope' in student.py")


def test_sys_exit_in_a_call_is_an_error(good: Sandbox) -> None:
    r = call(good, "exits")
    assert (r.status, r.message) == ("error", "called sys.exit(3) during the call")
    assert call(good, "as_int").status == "ok"


def test_huge_printing_is_truncated(good: Sandbox) -> None:
    r = call(good, "chatty")
    assert r.status == "ok"
    assert r.stdout.startswith("x" * 9_000)
    assert r.stdout.endswith("[output truncated: 19990200 more bytes were discarded]")
    assert len(r.stdout) < 10_100


def test_output_too_large_is_refused() -> None:
    with Sandbox(GOOD, "student.py", Limits(max_output_elements=100)) as sandbox:
        r = call(sandbox, "as_float32", np.ones(101))
        assert (r.status, r.message) == ("error", "the returned value is a float32 array with 101 elements: "
                                                  "output too large")
        assert call(sandbox, "as_float32", np.ones(100)).status == "ok"


# --- failures that cost one call only ----------------------------------------------------

def test_infinite_loop_times_out_and_the_next_call_works(good: Sandbox) -> None:
    start = time.monotonic()
    r = call(good, "spins", timeout=0.5)
    assert (r.status, r.message) == ("timeout", "did not return within 0.5 s")
    assert time.monotonic() - start < 1.5
    assert call(good, "as_int").status == "ok"


def test_os_exit_in_a_call_crashes_and_the_next_call_works(good: Sandbox) -> None:
    r = call(good, "hard_exit")
    assert (r.status, r.message) == ("crashed", "the process exited with code 4 during the call (sys.exit/os._exit?)")
    assert call(good, "as_int").status == "ok"


@pytest.mark.parametrize("function", ["grows", "huge"])
def test_memory_bomb(good: Sandbox, function: str) -> None:
    r = call(good, function)
    assert r.status in ("error", "crashed")
    assert "memory" in r.message and "768 MiB" in r.message
    assert call(good, "as_int").status == "ok"


def test_cpu_limit_ends_a_worker_that_ignores_sigxcpu() -> None:
    source = "import signal\ndef burn():\n    signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n    while True:\n" \
             "        pass\ndef f():\n    return 1.0\n"
    with Sandbox(source, "student.py", Limits(cpu_seconds=1)) as sandbox:
        r = call(sandbox, "burn", timeout=10.0)
        assert (r.status, r.message) == ("crashed", "used more than 1 s of CPU time (the limit for one worker) "
                                                    "during the call")
        assert call(sandbox, "f").status == "ok"


def test_restarts_are_bounded() -> None:
    with Sandbox(GOOD, "student.py", Limits(max_restarts=2)) as sandbox:
        assert [call(sandbox, "hard_exit").status for _ in range(3)] == ["crashed"] * 3
        r = call(sandbox, "as_int")
        assert r.status == "crashed" and "gave up after 2 restarts" in r.message


# --- loading -------------------------------------------------------------------------------

def test_exception_at_import_keeps_later_functions() -> None:
    source = "def f():\n    return 1.0\nx = 1 / 0\ndef g():\n    return 2.0\n"
    with Sandbox(source, "student.py", FAST) as sandbox:
        report = sandbox.load()
        assert report.functions == ("f", "g")
        assert report.issues == (LoadIssue(3, "exception", "ZeroDivisionError: division by zero (student.py, "
                                           "line 3, in <module>: x = 1 / 0); the statements after it still ran"),)
        assert str(report.issues[0]).startswith("line 3: ZeroDivisionError")
        assert float(call(sandbox, "g").outputs[0]) == 2.0


def test_sys_exit_at_import_is_recorded() -> None:
    source = "import sys\nsys.exit(1)\ndef g():\n    return 2.0\n"
    with Sandbox(source, "student.py", FAST) as sandbox:
        report = sandbox.load()
        assert report.issues == (LoadIssue(2, "exit", "called sys.exit(1) while loading; "
                                           "the statements after it still ran"),)
        assert report.functions == ("g",) and call(sandbox, "g").status == "ok"


def test_os_exit_at_import_is_skipped() -> None:
    source = "import os\ndef f():\n    return 1.0\nos._exit(7)\ndef g():\n    return 2.0\n"
    with Sandbox(source, "student.py", FAST) as sandbox:
        report = sandbox.load()
        assert report.skipped == (4,) and report.functions == ("f", "g")
        assert report.issues == (LoadIssue(4, "crashed", "the process exited with code 7 (sys.exit/os._exit?) "
                                           "while this statement ran; it was skipped"),)
        assert float(call(sandbox, "f").outputs[0]) == 1.0 and float(call(sandbox, "g").outputs[0]) == 2.0


def test_infinite_loop_at_import_is_skipped() -> None:
    source = "def f():\n    return 1.0\nwhile True:\n    pass\ndef g():\n    return 2.0\n"
    start = time.monotonic()
    with Sandbox(source, "student.py", FAST) as sandbox:
        report = sandbox.load()
        assert report.skipped == (3,) and report.functions == ("f", "g")
        assert report.issues == (LoadIssue(3, "timeout", "this statement was still running when loading hit the "
                                           "1 s limit; it was skipped"),)
        assert call(sandbox, "g").status == "ok"
    assert time.monotonic() - start < 3.0


def test_syntax_error_is_reported_cleanly() -> None:
    with Sandbox("def f(:\n    pass\n", "student.py", FAST) as sandbox:
        report = sandbox.load()
        assert report.functions == () and [(i.line, i.kind) for i in report.issues] == [(1, "syntax")]
        assert call(sandbox, "f").status == "missing"


def test_future_import_applies_to_later_statements() -> None:
    source = "from __future__ import annotations\ndef f(x: Undefined) -> float:\n    return 1.0\n"
    with Sandbox(source, "student.py", FAST) as sandbox:
        assert sandbox.load().issues == ()
        assert call(sandbox, "f", 1.0).status == "ok"


def test_the_grader_is_not_importable() -> None:
    source = "import os\ndef probe():\n    import importlib.util as u\n" \
             "    return [u.find_spec(m) is None for m in ('grader', 'reference')]\n" \
             "def environment():\n    print(sorted(os.environ))\n    return 0.0\n"
    with Sandbox(source, "student.py", FAST) as sandbox:
        assert call(sandbox, "probe").outputs[0].tolist() == [1.0, 1.0]
        # the scrubbed environment, and PWD, which the namespace's init shell sets
        names = set(ast.literal_eval(call(sandbox, "environment").stdout))
        assert set(worker_environment(Path("/x"))) <= names <= set(worker_environment(Path("/x"))) | {"PWD"}


def test_exit_at_import_is_the_builtin() -> None:
    with Sandbox("exit()\ndef f():\n    return 1.0\n", "student.py", FAST) as sandbox:
        assert sandbox.load().issues == (LoadIssue(1, "exit", "called sys.exit() while loading; "
                                                   "the statements after it still ran"),)


def test_load_output_is_captured() -> None:
    with Sandbox("print('hello')\nimport sys\nprint('oops', file=sys.stderr)\n", "student.py", FAST) as sandbox:
        assert sandbox.load().stdout == "hello\noops\n"


# --- the pipe is untrusted ------------------------------------------------------------------

WRITES = """
import os, struct, json, io
import numpy as np

def response_fd():
    argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
    return int(argv[[a.endswith(b"worker.py") for a in argv].index(True) + 2])

def frame(header, blobs=()):
    text = json.dumps(header).encode()
    payload = struct.pack(">I", len(text)) + text
    for blob in blobs:
        payload += struct.pack(">Q", len(blob)) + blob
    return struct.pack(">Q", len(payload)) + payload

def npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()

RESULT = {"event": "result", "id": 1, "ok": True, "outputs": 1, "notes": [], "mutated": [], "error": None,
          "elapsed": 0.0}

def garbage():
    os.write(response_fd(), b"\\xff" * 5000)
    return 1.0

def huge_frame():
    os.write(response_fd(), struct.pack(">Q", 2**62))
    return 1.0

def bad_json():
    os.write(response_fd(), frame({"event": "result"}))
    return 1.0

def object_array():
    os.write(response_fd(), frame(RESULT, [npy(np.array([{"a": 1}], dtype=object))]))
    return 1.0

def int_array():
    os.write(response_fd(), frame(RESULT, [npy(np.arange(3))]))
    return 1.0

def short_array():
    os.write(response_fd(), frame(RESULT, [npy(np.arange(3.0))[:-8]]))
    return 1.0

def stale_id():
    os.write(response_fd(), frame({**RESULT, "id": 99}, [npy(np.arange(3.0))]))
    return 1.0

def fine():
    return 1.0
"""


@pytest.mark.parametrize("function", ["garbage", "huge_frame", "bad_json", "object_array", "int_array",
                                      "short_array", "stale_id"])
def test_garbage_on_the_response_pipe_is_a_clean_error(function: str) -> None:
    with Sandbox(WRITES, "student.py", FAST) as sandbox:
        r = call(sandbox, function, timeout=2.0)
        assert (r.status, r.message, r.outputs) == ("error", "the worker sent malformed data", ())
        assert call(sandbox, "fine").status == "ok"


# --- batches of calls -------------------------------------------------------------------------

BATCH = """
import os, time
import numpy as np

def echo(k):
    if k == 3:
        raise ValueError("three")
    if k == 5:
        while True:
            pass
    if k == 7:
        import torch
    if k == 9:
        os._exit(4)
    if k == 13:
        sum(range(10 ** 15))  # one C loop that never lets another thread run: the watchdog cannot speak
    if k == 11:
        argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
        os.write(int(argv[[a.endswith(b"worker.py") for a in argv].index(True) + 2]), b"\\xff" * 5000)
    print(f"echo {k}")
    return float(k)

def naps(k):
    time.sleep(0.2)
    return float(k)

def zeroes_first(a):
    a[0] = 0.0
    return a.sum()

def as_float32(a):
    return a.astype(np.float32)
"""


@pytest.fixture(scope="module")
def batch() -> Iterator[Sandbox]:
    with Sandbox(BATCH, "student.py", Limits(load_timeout=1.0, max_output_elements=100),
                 forbidden=["torch"]) as sandbox:
        yield sandbox


def echo(sandbox: Sandbox, *ks: int, timeout: float = 5.0, **options: object) -> list[CallResult]:
    return sandbox.call_many("echo", [[("k", k)] for k in ks], None, timeout, **options)  # type: ignore[arg-type]


def summary(results: list[CallResult]) -> list[tuple[str, float | None]]:
    return [(r.status, float(r.outputs[0]) if r.status == "ok" else None) for r in results]


def test_call_many_answers_each_call_in_order(batch: Sandbox) -> None:
    results = echo(batch, 0, 1, 2, 4, 6)
    assert summary(results) == [("ok", 0.0), ("ok", 1.0), ("ok", 2.0), ("ok", 4.0), ("ok", 6.0)]
    note = "the returned value is a Python float, converted to a 0-d float64 array"
    assert [r.notes for r in results] == [(note,)] * 5
    # what a call prints lands with its own answer or, when the next call prints before that answer is
    # read, with the one before it: never later, and nothing is lost
    assert "".join(r.stdout for r in results) == "echo 0\necho 1\necho 2\necho 4\necho 6\n"
    assert all(f"echo {k}\n" in "".join(r.stdout for r in results[:i + 1]) for i, k in enumerate((0, 1, 2, 4, 6)))
    assert echo(batch) == []


def test_call_many_is_call_in_a_loop(batch: Sandbox) -> None:
    single = [batch.call("echo", [("k", k)], None, 5.0) for k in (1, 3)]
    assert [(r.status, r.outputs, r.message) for r in echo(batch, 1, 3)] == \
        [(r.status, r.outputs, r.message) for r in single]


def test_an_exception_in_the_middle_costs_that_call_only(batch: Sandbox) -> None:
    results = echo(batch, 1, 3, 4)
    assert summary(results) == [("ok", 1.0), ("error", None), ("ok", 4.0)]
    assert results[1].message.startswith("ValueError: three (student.py, line 7, in echo")


def test_a_hang_in_the_middle_ends_the_batch_and_keeps_the_earlier_results(batch: Sandbox) -> None:
    before = batch.process_group
    results = echo(batch, 1, 2, 5, 6, timeout=0.5)
    assert summary(results) == [("ok", 1.0), ("ok", 2.0), ("timeout", None)]
    assert results[2].message == "did not return within 0.5 s"
    assert batch.process_group is None  # the hung worker is gone; the next call starts a new one
    assert summary(echo(batch, 6)) == [("ok", 6.0)] and batch.process_group not in (None, before)


def test_a_crash_in_the_middle_ends_the_batch(batch: Sandbox) -> None:
    results = echo(batch, 1, 9, 2)
    assert summary(results) == [("ok", 1.0), ("crashed", None)]
    assert results[1].message == "the process exited with code 4 during the call (sys.exit/os._exit?)"
    assert summary(echo(batch, 2)) == [("ok", 2.0)]


def test_each_call_of_a_batch_has_its_own_timeout(batch: Sandbox) -> None:
    # eight naps of 0.2 s overrun one 1 s timeout together, but no call does on its own
    results = batch.call_many("naps", [[("k", k)] for k in range(8)], None, 1.0)
    assert summary(results) == [("ok", float(k)) for k in range(8)]


def test_output_limits_and_notes_are_per_call(batch: Sandbox) -> None:
    results = batch.call_many("as_float32", [[("a", np.ones(n))] for n in (100, 101, 60)], None, 5.0)
    assert [r.status for r in results] == ["ok", "error", "ok"]
    assert results[1].message == "the returned value is a float32 array with 101 elements: output too large"
    assert results[0].notes == results[2].notes == ("the returned value is a float32 array, converted to float64",)
    assert results[1].notes == ()


def test_mutations_are_per_call_and_the_parents_arrays_are_untouched(batch: Sandbox) -> None:
    arrays = [np.ones(3), np.zeros(3), np.arange(3.0)]
    results = batch.call_many("zeroes_first", [[("a", a)] for a in arrays], None, 5.0)
    assert [(r.status, r.mutated) for r in results] == [("ok", ("a",)), ("ok", ()), ("ok", ())]
    assert [float(r.outputs[0]) for r in results] == [2.0, 0.0, 3.0]
    assert np.array_equal(arrays[0], np.ones(3))


def test_a_forbidden_import_in_the_middle_costs_that_call_only(batch: Sandbox) -> None:
    results = echo(batch, 1, 7, 2)
    assert summary(results) == [("ok", 1.0), ("forbidden", None), ("ok", 2.0)]
    assert results[1].message.startswith("imports 'torch', which this problem set forbids")
    assert summary(echo(batch, 1, 7, 2, stop_on=("forbidden",))) == [("ok", 1.0), ("forbidden", None)]


def test_a_failed_call_skips_the_rest_of_its_group(batch: Sandbox) -> None:
    results = echo(batch, 1, 3, 4, 2, 6, 3, 8, groups=(3, 2, 2))
    assert summary(results) == [("ok", 1.0), ("error", None), ("ok", 2.0), ("ok", 6.0), ("error", None)]


def test_malformed_data_in_the_middle_goes_on_in_a_new_worker(batch: Sandbox) -> None:
    results = echo(batch, 1, 11, 2, 4, groups=(2, 1, 1))
    assert summary(results) == [("ok", 1.0), ("error", None), ("ok", 2.0), ("ok", 4.0)]
    assert results[1].message == "the worker sent malformed data"


def test_a_run_of_batches_answers_each_as_call_many_would(batch: Sandbox) -> None:
    lists = [[1, 2], [3, 4], [6], [1, 3, 2]]
    results = list(batch.run([Batch.of("echo", [[("k", k)] for k in ks], None, 5.0, groups=[len(ks)]) for ks in lists]))
    assert [summary(r) for r in results] == [summary(echo(batch, *ks, groups=[len(ks)])) for ks in lists]
    assert [summary(r) for r in results] == [[("ok", 1.0), ("ok", 2.0)], [("error", None)], [("ok", 6.0)],
                                             [("ok", 1.0), ("error", None)]]


@pytest.mark.parametrize("hang, new_workers", [
    # 5 loops in Python: the watchdog sends the waiting answers to 1 and 2 and names 5 as running,
    # so one new worker takes the next batch and nothing is replayed
    (5, 1),
    # 13 loops inside one C function, where the watchdog cannot run: the batch is replayed call by
    # call in a new worker to find the call that hangs, and another worker takes the next batch
    (13, 2),
])
def test_a_hang_costs_its_own_batch_only_and_is_pinned_on_its_call(batch: Sandbox, hang: int, new_workers: int) -> None:
    echo(batch, 1)
    starts = batch._starts
    hung, after = batch.run([Batch.of("echo", [[("k", k)] for k in (1, 2, hang, 6)], None, 0.5),
                             Batch.of("echo", [[("k", 4)]], None, 5.0)])
    assert summary(hung) == [("ok", 1.0), ("ok", 2.0), ("timeout", None)] and summary(after) == [("ok", 4.0)]
    assert hung[2].message == "did not return within 0.5 s"
    assert batch._starts == starts + new_workers


def test_stopping_a_run_early_stops_the_worker(batch: Sandbox) -> None:
    run = batch.run([Batch.of("naps", [[("k", k)] for k in range(3)], None, 5.0) for _ in range(3)])
    assert summary(next(run)) == [("ok", 0.0), ("ok", 1.0), ("ok", 2.0)]
    run.close()  # the worker is still napping through the other batches
    assert batch.process_group is None
    assert summary(echo(batch, 2)) == [("ok", 2.0)]


STREAMED = """
import time
import numpy as np

def now(k):
    return time.monotonic()

def ones(n):
    return np.ones(int(n))

def total(a):
    return a.sum()
"""


@pytest.fixture(scope="module")
def streamed() -> Iterator[Sandbox]:
    with Sandbox(STREAMED, "student.py", FAST) as sandbox:
        yield sandbox


def test_a_run_sends_each_batch_as_soon_as_it_is_made(streamed: Sandbox) -> None:
    made: list[float] = []

    def batches() -> Iterator[Batch]:
        yield Batch.of("now", [[("k", 0)]], None, 5.0)
        time.sleep(0.5)  # plenty for the worker to answer the first batch, if it has it already
        made.append(time.monotonic())
        yield Batch.of("now", [[("k", 1)]], None, 5.0)

    first, second = streamed.run(batches())
    assert float(first[0].outputs[0]) < made[0] < float(second[0].outputs[0])


def test_answers_and_requests_larger_than_the_pipes_do_not_wait_on_each_other(streamed: Sandbox) -> None:
    # the worker blocks sending 3 MB answers while this process queues 3 MB arguments behind them
    n = 400_000
    arg = np.arange(float(n))

    def batches() -> Iterator[Batch]:
        yield Batch.of("ones", [[("n", n)]] * 3, None, 10.0)
        yield Batch.of("total", [[("a", arg)]] * 3, None, 10.0)

    streamed.load()
    workers = streamed._starts
    ones, totals = streamed.run(batches())
    assert streamed._starts == workers  # not one stuck until its deadline and replayed in a new worker
    assert [(r.status, r.outputs[0].shape, float(r.outputs[0].sum())) for r in ones] == [("ok", (n,), float(n))] * 3
    assert [(r.status, float(r.outputs[0])) for r in totals] == [("ok", float(arg.sum()))] * 3


def test_a_run_nobody_reads_does_not_confuse_the_next(streamed: Sandbox) -> None:
    streamed.run([Batch.of("now", [[("k", k)] for k in range(3)], None, 5.0)])  # its answers are never read
    result = streamed.call("total", [("a", np.ones(3))], None, 5.0)
    assert (result.status, float(result.outputs[0])) == ("ok", 3.0)


@pytest.mark.parametrize("source, functions, issues, workers", [
    (STREAMED, ("now", "ones", "total"), [], 1),
    # the first worker dies loading: the next one is sent the file again, without the fatal statement
    ("import os\nos._exit(3)\ndef f():\n    return 1\n", ("f",), [(2, "crashed")], 2),
])
def test_a_file_sent_before_load_is_loaded_once(source: str, functions: tuple, issues: list, workers: int) -> None:
    with Sandbox(source, "student.py", FAST) as sandbox:
        sandbox.start()
        sandbox.preload()
        report = sandbox.load()
        assert report.functions == functions and [(i.line, i.kind) for i in report.issues] == issues
        result = sandbox.call(functions[0], [("k", 1)] if functions[0] == "now" else [], None, 5.0)
        # a file sent twice would stop the worker ("unexpected request") and cost a restart
        assert result.status == "ok" and sandbox._starts == workers and "unexpected" not in report.stdout


def test_a_missing_function_is_missing_for_every_call(batch: Sandbox) -> None:
    results = batch.call_many("nope", [[("k", 1)], [("k", 2)]], None, 5.0)
    assert [r.status for r in results] == ["missing", "missing"]


@pytest.mark.parametrize("options", [{"groups": (1, 1)}, {"groups": (3, 0)}, {"stop_on": ("timeout",)}])
def test_call_many_refuses_inconsistent_options(batch: Sandbox, options: dict) -> None:
    with pytest.raises(SandboxError, match="not valid for 3 calls"):
        echo(batch, 1, 2, 3, **options)


RECEIVES = """
import numpy as np

def receives(a):
    a[...] = 0  # the student's own copy: writable, and the grader's array stays as it was
    return np.array(list(a.shape) + [a.dtype.num, a.flags.c_contiguous])
"""


@pytest.mark.parametrize("arr", [np.ones((4, 3)), np.arange(5.0), np.array(2.5), np.zeros((0, 3)), np.array(3),
                                 np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.arange(6).reshape(3, 2).T,
                                 np.array([True, False]), np.ones((2, 3, 4), dtype=np.float32)[:, ::2]])
def test_arrays_arrive_with_their_values_dtype_and_shape(arr: np.ndarray) -> None:
    before = arr.copy()
    with Sandbox(RECEIVES + "\ndef same(a):\n    return a.astype(np.float64)\n", "student.py",
                 Limits(load_timeout=2.0)) as sandbox:
        same, seen = (sandbox.call(f, [("a", arr)], None, 5.0) for f in ("same", "receives"))
    assert same.status == seen.status == "ok" and same.mutated == () and seen.mutated == (("a",) if arr.size else ())
    assert np.array_equal(same.outputs[0], arr.astype(np.float64)) and same.outputs[0].shape == arr.shape
    assert seen.outputs[0].tolist() == [*arr.shape, arr.dtype.num, 1]
    assert np.array_equal(arr, before)


# --- cleanup -------------------------------------------------------------------------------------

def test_close_leaves_nothing_behind() -> None:
    sandbox = Sandbox(GOOD, "student.py", FAST)
    assert call(sandbox, "as_int").status == "ok"
    pgid, scratch = sandbox.process_group, sandbox.scratch
    assert pgid is not None and scratch.is_dir()
    os.killpg(pgid, 0)  # alive before close
    sandbox.close()
    assert_gone(pgid)
    assert not scratch.exists() and sandbox.process_group is None


def assert_gone(pgid: int) -> None:
    """Every process of group ``pgid`` is dead. Killed members may stay zombies for a moment: the
    namespace's init is reparented to the host's init, which reaps it when it gets to it."""
    if not Path("/proc/self/stat").exists():
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
        return
    deadline = time.monotonic() + 2.0
    while _live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _live_members(pgid) == []


def _live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (reaping orphans is init's business)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_close_kills_what_the_submission_started() -> None:
    source = "import subprocess\nchild = subprocess.Popen(['sleep', '60'])\ndef f():\n    return 1.0\n"
    with Sandbox(source, "student.py", FAST) as sandbox:
        assert call(sandbox, "f").status == "ok"
        pgid = sandbox.process_group
        # the worker and sleep, and the isolation's wrapper and its init shell where there is one
        assert pgid is not None and len(_live_members(pgid)) == (2 if sandbox.isolation == "process" else 4)
    assert_gone(pgid)


def test_a_forgotten_sandbox_is_cleaned_up_when_collected() -> None:
    sandbox = Sandbox(GOOD, "student.py", FAST)
    assert call(sandbox, "as_int").status == "ok"
    pgid, scratch = sandbox.process_group, sandbox.scratch
    del sandbox
    gc.collect()
    assert_gone(pgid)
    assert not scratch.exists()


def test_start_boots_the_worker_that_load_then_uses() -> None:
    with Sandbox(GOOD, "student.py", FAST) as sandbox:
        sandbox.start()
        pgid = sandbox.process_group
        assert pgid is not None
        sandbox.start()  # a second start changes nothing
        assert sandbox.process_group == pgid
        assert "affine" in sandbox.load().functions and sandbox.process_group == pgid
        assert call(sandbox, "as_int").status == "ok" and sandbox.process_group == pgid


def test_close_kills_a_started_worker_that_never_loaded() -> None:
    sandbox = Sandbox(GOOD, "student.py", FAST)
    sandbox.start()
    pgid, scratch = sandbox.process_group, sandbox.scratch
    sandbox.close()
    assert pgid is not None
    assert_gone(pgid)
    assert not scratch.exists()


def test_start_counts_as_the_first_of_the_workers() -> None:
    with Sandbox(GOOD, "student.py", Limits(max_restarts=0)) as sandbox:
        sandbox.start()
        assert call(sandbox, "hard_exit").status == "crashed"
        r = call(sandbox, "as_int")
        assert r.status == "crashed" and "gave up after 0 restarts" in r.message


def test_a_closed_sandbox_refuses_calls() -> None:
    sandbox = Sandbox(GOOD, "student.py", FAST)
    sandbox.close()
    with pytest.raises(SandboxError, match="closed"):
        call(sandbox, "as_int")


def test_close_on_an_exception_in_the_parent() -> None:
    with pytest.raises(KeyError):
        with Sandbox(GOOD, "student.py", FAST) as sandbox:
            call(sandbox, "as_int")
            pgid, scratch = sandbox.process_group, sandbox.scratch
            raise KeyError("grader bug")
    assert_gone(pgid)
    assert not scratch.exists()
