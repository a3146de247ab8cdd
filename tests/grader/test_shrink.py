"""The smallest failing example: simpler trials, and the example shown for a real mistake."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from grader.cli import main
from grader.sampling import compile_question, draw_trial, simpler_trial
from grader.spec import load_problem_set

from tests.helpers import BUNDLED, write_spec

ROOT = BUNDLED.parent.parent
SOLUTION = ROOT / "submissions" / "examples" / "solution.py"
FORGOT_FIVE = ROOT / "submissions" / "examples" / "forgot_five_relu.py"

SPEC = """
problem: mix
title: "Rounding and kinks"
dims:
  n: [2, 5]
inputs:
  x: {shape: [n], dist: normal, scale: [0.5, 3]}
  p: {shape: [n], dist: simplex}
nodes:
  r: relu(x)
questions:
  - id: q
    function: f
    args: [x, p]
    returns: "r * p"
    cases:
      - {n: 3, x: [1.25, -2.5, 3.75]}
"""


def question(tmp_path: Path, spec: str = SPEC):
    write_spec(tmp_path, spec)
    ps = load_problem_set(tmp_path)
    [(p, q)] = list(ps.questions())
    return compile_question(p, q)


def test_a_simpler_trial_has_the_smallest_dims_and_round_inputs_but_keeps_a_simplex(tmp_path: Path) -> None:
    cq = question(tmp_path)
    base = draw_trial(cq, seed=5, index=3)
    t = simpler_trial(cq, base, smallest=True, decimals=1)
    assert t is not None and dict(t.dims) == {"n": 2}
    assert np.allclose(t.args["x"] * 10, np.round(t.args["x"] * 10), atol=1e-12)
    assert np.isclose(t.args["p"].sum(), 1.0) and not np.allclose(t.args["p"] * 10, np.round(t.args["p"] * 10))
    assert t.index == base.index and t.seed == base.seed


def test_a_simpler_trial_is_drawn_once_per_trial_and_is_the_same_as_drawn_afresh(tmp_path: Path) -> None:
    cq = question(tmp_path)
    base = draw_trial(cq, seed=5, index=3)
    first = simpler_trial(cq, base, smallest=True, decimals=1)
    assert simpler_trial(cq, base, smallest=True, decimals=1) is first  # the next submission's example reuses it
    assert simpler_trial(cq, base, smallest=True, decimals=2) is not first
    again = simpler_trial(cq, replace(base), smallest=True, decimals=1)  # an equal trial, not the same object
    assert again is not first and first is not None and again is not None
    assert dict(again.dims) == dict(first.dims)
    assert all(np.array_equal(again.args[k], first.args[k]) for k in first.args)
    assert all(np.array_equal(a, b) for a, b in zip(again.expected, first.expected))


def test_a_simpler_trial_keeps_its_own_dims_when_asked(tmp_path: Path) -> None:
    cq = question(tmp_path)
    base = draw_trial(cq, seed=5, index=3)
    t = simpler_trial(cq, base, smallest=False, decimals=2)
    assert t is not None and dict(t.dims) == dict(base.dims)
    assert np.allclose(t.args["x"], np.round(base.args["x"], 2))


def test_a_fixed_case_keeps_its_values(tmp_path: Path) -> None:
    cq = question(tmp_path)
    case = cq.question.cases[0]
    base = draw_trial(cq, seed=5, index=10, case=case)
    t = simpler_trial(cq, base, smallest=True, decimals=1)
    assert t is not None and dict(t.dims) == {"n": 3}
    assert t.args["x"].tolist() == [1.25, -2.5, 3.75]


def test_rounding_onto_a_kink_gives_no_trial(tmp_path: Path) -> None:
    # scale 0.01: every x rounds to 0, where relu is not differentiable
    cq = question(tmp_path, SPEC.replace("scale: [0.5, 3]", "scale: 0.01"))
    base = draw_trial(cq, seed=5, index=1)
    assert simpler_trial(cq, base, smallest=True, decimals=1) is None
    assert simpler_trial(cq, base, smallest=True, decimals=None) is not None


def _call(path: Path, function: str, inputs: dict[str, Any]) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # our own example files, not a student's
    args = {k: np.array(v) if isinstance(v, list) else v for k, v in inputs.items()}
    return namespace[function](**args)


def test_the_example_of_a_real_mistake_is_small_round_and_reproducible() -> None:
    # seed 38: the failing trial of reg_sgd_step is not already the smallest, so there is something to shrink
    result = CliRunner().invoke(main, [str(FORGOT_FIVE), "--only", "reg_*", "--seed", "38", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    outputs = {(q["function"], q["output"]): q for q in report["questions"]}
    step = outputs[("reg_sgd_step", "W1")]["failure"]["example"]
    assert step["shrunk"] is True and step["rounded_to_decimals"] == 1
    assert step["dims"] == {"n": 1, "h": 1, "K": 1}
    for name in ("x", "y", "W1", "b1", "W2", "b2"):
        values = np.array(step["inputs"][name])
        assert np.allclose(values * 10, np.round(values * 10), atol=1e-9), name
    # the values shown are what the student's and the solution's functions give on those inputs
    got = _call(FORGOT_FIVE, "reg_sgd_step", step["inputs"])
    expected = _call(SOLUTION, "reg_sgd_step", step["inputs"])
    assert np.allclose(step["got"], got[0]) and np.allclose(step["expected"], expected[0])
    assert not np.allclose(step["got"], step["expected"])


def test_the_text_report_shows_the_example_under_the_tolerance_report() -> None:
    result = CliRunner().invoke(main, [str(FORGOT_FIVE), "--only", "reg_grads", "--seed", "1"])
    text = result.stdout
    block = text[text.index("reg_grads -> dW1  [failed]"):]
    lines = block.splitlines()
    assert lines[2].startswith("  tolerance report (failing trial ")
    assert any(line.startswith("    diagnosis: off by a constant factor of 0.2") for line in lines[3:7])
    start = next(i for i, line in enumerate(lines) if line.startswith("  smallest failing example ("))
    assert lines[start + 1].startswith("    x ") and "expected =" in "\n".join(lines[start:start + 9])


def test_a_non_finite_answer_is_shown_as_null_in_json(tmp_path: Path) -> None:
    source = SOLUTION.read_text().replace("def softargmax(z, beta=1.0):", "def softargmax(z, beta=1.0):\n"
                                          "    return np.exp(beta * z) / np.sum(np.exp(beta * z))\n"
                                          "def _unused(z, beta):")
    assert "np.exp(beta * z)" in source
    path = tmp_path / "naive.py"
    path.write_text(source)
    result = CliRunner().invoke(main, [str(path), "--only", "softargmax", "--seed", "2", "--format", "json"])
    [q] = json.loads(result.stdout)["questions"]
    example = q["failure"]["example"]
    assert q["status"] == "failed" and None in example["got"]
    assert all(v is not None for v in example["expected"])
