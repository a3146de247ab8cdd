"""Property tests: no spec, however broken, makes loading or parsing raise anything but our own errors."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from grader.spec import SpecProblem, validate
from reference.errors import ExpressionError
from reference.expr import parse

from tests.grader.test_spec import GOOD

NAMES = st.sampled_from(["x", "W", "z", "a", "loss", "n", "h", "grad", "sum", "relu", "q", "T", "pi"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 50), st.floats(allow_nan=True),
                    st.text(max_size=12), NAMES)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(NAMES, inner, max_size=4)), max_leaves=12)
EXPR_PIECES = st.sampled_from(["x", "W", "@", "+", "-", "*", "/", "**", "(", ")", "[", "]", ",", ".T", "sum(",
                               "grad(", "jacobian(", "relu(", "1e-3", "2", "axis=0", "loss", "z", " ", ":", "lambda",
                               "__import__", "'s'", "[[", "]]", "derivative(", "pi"])


def _validate_text(text: str) -> list[SpecProblem]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(text)
        return validate(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["problem", "dims", "inputs", "nodes", "questions", "defaults",
                                        "variants", "title", "extra"]), VALUES, max_size=7))
def test_any_structure_gives_a_list_of_problems(data: dict) -> None:
    problems = _validate_text(yaml.safe_dump(data))
    assert isinstance(problems, list) and all(isinstance(p, SpecProblem) for p in problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(GOOD)), st.text(max_size=6)), max_size=4))
@example([(GOOD.index("rtol: 1e-8") + 6, ":")])  # an invalid setting once crashed building the question
def test_mutations_of_a_good_spec_never_crash(edits: list[tuple[int, str]]) -> None:
    text = GOOD
    for at, piece in edits:
        text = text[:at] + piece + text[at + len(piece):]
    problems = _validate_text(text)
    assert all(str(p) for p in problems)  # every problem renders as a message


@settings(max_examples=300, deadline=None)
@given(st.lists(EXPR_PIECES, min_size=1, max_size=12).map("".join))
def test_expressions_parse_or_raise_expression_error(text: str) -> None:
    try:
        parse(text)
    except ExpressionError as exc:
        assert str(exc)


@pytest.mark.parametrize("text,words", [
    (" + ".join(["x"] * 5000), "nested too deeply"),
    ("(" * 300 + "x" + ")" * 300, "not a valid expression: too many nested parentheses"),
])
def test_absurdly_long_expressions_get_a_clean_message(text: str, words: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(words)):
        parse(text)
