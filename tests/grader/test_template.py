"""The generated template: in step with the specs, complete, and gradable."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from click.testing import CliRunner

from grader.cli import main
from grader.spec import load_problem_set
from grader.template import render_template

from tests.helpers import BUNDLED

TEMPLATE = BUNDLED.parent.parent / "submissions" / "template.py"


def test_shipped_template_is_what_the_specs_generate() -> None:
    expected = render_template(load_problem_set(BUNDLED), "grade template problems/hw1")
    assert TEMPLATE.read_text() == expected, "regenerate it: grade template problems/hw1 --output submissions/template.py"


def test_template_defines_every_function_with_its_arguments_and_shapes() -> None:
    tree = ast.parse(TEMPLATE.read_text())
    defined = {f.name: [a.arg for a in f.args.args] for f in tree.body if isinstance(f, ast.FunctionDef)}
    asked = {q.function: list(q.args) for _, q in load_problem_set(BUNDLED).questions()}
    assert defined == asked
    reg = ast.get_docstring(next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "reg_grads"))
    assert "W1: (h, n)" in reg and "dW1: (h, n)" in reg and "Points: 8" in reg
    assert "grad(" not in TEMPLATE.read_text()  # never the expected expressions


def test_the_blank_template_grades_to_zero_without_crashing() -> None:
    result = CliRunner().invoke(main, [str(TEMPLATE), "--seed", "0", "--trials", "1", "--format", "json"])
    report = json.loads(result.stdout)
    assert report["score"] == 0 and report["max_score"] == 102
    assert {q["status"] for q in report["questions"]} == {"error"}
    assert all("NotImplementedError" in q["message"] for q in report["questions"])
