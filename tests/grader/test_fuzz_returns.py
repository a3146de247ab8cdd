"""Property tests: whatever a student's function returns, grading finishes and produces a report.

Return values are generated as Python expressions (numbers of every kind, ragged and
nested sequences, arrays of every dtype and shape, ndarray subclasses that lie, objects
that raise on conversion) and returned by ``attack`` of the hostile problem set, whose
``innocent`` function must keep its point every time.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.grading import STATUSES, grade
from grader.report import render_json, render_text
from grader.sandbox import Limits
from grader.spec import load_problem_set

from tests.hostile.test_hostile import HERE

PROBLEMS = load_problem_set(HERE / "problems")
LIMITS = Limits(load_timeout=2.0, memory=512 * 2**20, max_output=4096, max_output_elements=10**5, max_restarts=3)
PRELUDE = '''
import numpy as np

class Liar(np.ndarray):
    def __eq__(self, other):
        return True

class Raiser:
    def __array__(self, *args, **kwargs):
        raise ValueError("no array")

class Lenny:
    def __len__(self):
        raise RuntimeError("no length")
    def __getitem__(self, i):
        return 1.0

def innocent(x):
    return 2 * x

def attack(x):
    return {expr}
'''

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(lambda f: f"float({str(f)!r})"),
                    st.integers(-10**30, 10**30).map(str), st.booleans().map(str), st.just("None"),
                    st.complex_numbers(allow_nan=False, max_magnitude=1e6).map(repr),
                    st.text(max_size=5).map(repr), st.sampled_from(["x", "2 * x", "x[:, None]", "x.sum()", "2 * x[0]"]))
DTYPES = st.sampled_from(["float16", "float32", "float64", "int8", "uint64", "bool", "complex64", "object", "U3",
                          "longdouble"])
SHAPES = st.lists(st.integers(0, 4), max_size=3).map(tuple) | st.sampled_from([(10**6,), (10**5, 2), (0, 0, 7)])


def _expressions() -> st.SearchStrategy[str]:
    leaves = st.one_of(
        NUMBERS,
        st.tuples(SHAPES, DTYPES).map(lambda sd: f"np.ones({sd[0]!r}, dtype={sd[1]!r})"),
        st.sampled_from(["(2 * x).view(Liar)", "Raiser()", "Lenny()", "[Raiser()]", "{'a': x}", "object()",
                         "np.array([x, Raiser()], dtype=object)", "iter([1.0])", "lambda: 1.0", "b'12'"]))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
        st.lists(inner, max_size=3).map(lambda xs: f"({', '.join(xs)},)" if xs else "()"),
        inner.map(lambda e: f"np.asarray({e})")), max_leaves=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(_expressions())
def test_any_return_value_gives_a_report(tmp_path: Path, expr: str) -> None:
    path = tmp_path / "fuzz.py"
    path.write_text(PRELUDE.format(expr=expr))
    result = grade(path, PROBLEMS, seed=1, limits=LIMITS)
    by_function = {o.function: o for o in result.outputs}
    assert set(by_function) == {"attack", "innocent"}
    assert by_function["innocent"].status == "passed" and by_function["innocent"].score == 1.0
    assert by_function["attack"].status in STATUSES
    assert by_function["attack"].status == "passed" or by_function["attack"].message
    assert "Total:" in render_text(result, HERE / "problems")
    assert json.loads(render_json([result], HERE / "problems"))["questions"]
