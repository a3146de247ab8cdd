"""Grading end to end through the CLI: verdicts, isolation of failures, reports, replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.grading import grade_planned
from grader.plan import make_plan
from grader.spec import load_problem_set

from tests.helpers import BUNDLED, by_output, grade_json, write

ROOT = BUNDLED.parent.parent
SOLUTION = ROOT / "submissions" / "examples" / "solution.py"
REG = "reg_*"


SOLUTION_SOURCE = SOLUTION.read_text()


def test_solution_gets_full_marks_and_the_json_has_the_documented_fields() -> None:
    code, report = grade_json(str(SOLUTION), "--only", REG, "--seed", "3", "--trials", "4")
    assert code == 0
    assert {"submission", "problem_set", "seed", "score", "max_score", "questions", "isolation"} <= report.keys()
    assert report["seed"] == 3 and report["score"] == report["max_score"] > 0
    for q in report["questions"]:
        assert {"id", "function", "output", "status", "score", "max_score", "trials", "trials_passed", "message",
                "diagnosis", "max_abs_error", "max_rel_error"} <= q.keys()
        assert q["status"] == "passed" and q["trials_passed"] == q["trials"] >= 4
    assert any("separate process" in layer for layer in report["isolation"])


def test_a_wrong_gradient_loses_exactly_its_points(tmp_path: Path) -> None:
    wrong = SOLUTION_SOURCE.replace("dW1 = np.outer(dz1, x)", "dW1 = np.outer(x, dz1).T * 0.5")
    code, report = grade_json(write(tmp_path, wrong), "--only", REG, "--seed", "3", "--trials", "4")
    outputs = by_output(report)
    failed = {k for k, q in outputs.items() if q["status"] != "passed"}
    assert failed == {("reg_grads", "dW1"), ("reg_sgd_step", "W1")}
    dW1 = outputs[("reg_grads", "dW1")]
    assert dW1["score"] == 0 and dW1["max_abs_error"] > 0
    assert "outside tolerance" in dW1["message"] or dW1["message"].startswith("got ")
    assert report["score"] == report["max_score"] - 3  # dW1 is worth 2, the W1 of the SGD step 1
    assert "--trial" in dW1["failure"]["replay"] and "--seed 3" in dW1["failure"]["replay"]


def test_a_file_that_does_not_compile_scores_zero_with_the_line(tmp_path: Path) -> None:
    code, report = grade_json(write(tmp_path, "import numpy as np\ndef reg_loss(yhat, y)\n    return 0\n"),
                              "--only", REG, "--seed", "1")
    assert code == 0 and report["score"] == 0 and report["graded"] is False
    assert "line 2: SyntaxError" in report["notes"][0]
    assert {q["status"] for q in report["questions"]} == {"error"}


def test_a_file_that_does_not_compile_lists_every_question_without_drawing_any(tmp_path: Path) -> None:
    plan = make_plan(load_problem_set(BUNDLED), 1, lazy=True)
    result = grade_planned(write(tmp_path, "def reg_loss(yhat, y)\n    return 0\n"), plan)
    assert not result.graded and len(result.outputs) == sum(len(cq.question.outputs) for cq in plan.compiled)
    assert not plan.drawn  # the trials would go unused


def test_missing_functions_are_missing_and_others_still_graded(tmp_path: Path) -> None:
    source = "import numpy as np\n\ndef reg_loss(yhat, y):\n    return np.sum((yhat - y) ** 2)\n"
    code, report = grade_json(write(tmp_path, source), "--only", REG, "--seed", "1", "--trials", "3")
    outputs = by_output(report)
    assert outputs[("reg_loss", "reg_loss")]["status"] == "passed"
    assert outputs[("reg_grads", "dW1")]["status"] == "missing"
    assert "reg_grads is not defined in sub.py" in outputs[("reg_grads", "dW1")]["message"]


def test_an_exception_while_loading_keeps_the_functions_after_it(tmp_path: Path) -> None:
    source = SOLUTION_SOURCE.replace("def reg_loss(", "undefined_name + 1\n\n\ndef reg_loss(", 1)
    code, report = grade_json(write(tmp_path, source), "--only", "reg_loss", "--seed", "1", "--trials", "3")
    assert by_output(report)[("reg_loss", "reg_loss")]["status"] == "passed"
    assert any("NameError" in n and "line" in n for n in report["notes"])


def test_a_hang_and_a_crash_cost_only_their_own_function(tmp_path: Path) -> None:
    source = SOLUTION_SOURCE.replace("def reg_dyhat_dz3(z3):\n", "def reg_dyhat_dz3(z3):\n    while True: pass\n")
    source = source.replace("def reg_loss(yhat, y):\n", "def reg_loss(yhat, y):\n    import os; os._exit(3)\n")
    code, report = grade_json(write(tmp_path, source), "--only", REG, "--seed", "2", "--trials", "3")
    outputs = by_output(report)
    assert outputs[("reg_dyhat_dz3", "reg_dyhat_dz3")]["status"] == "timeout"
    assert outputs[("reg_loss", "reg_loss")]["status"] == "error"
    assert "exited" in outputs[("reg_loss", "reg_loss")]["message"]
    others = [q for k, q in outputs.items() if k[0] not in ("reg_dyhat_dz3", "reg_loss")]
    assert others and all(q["status"] == "passed" for q in others)


def test_forbidden_imports_are_forbidden(tmp_path: Path) -> None:
    source = SOLUTION_SOURCE + "\n\ndef reg_dl_dyhat(yhat, y):\n    import torch\n    return 2 * (yhat - y)\n"
    code, report = grade_json(write(tmp_path, source), "--only", "reg_dl_dyhat", "--seed", "1")
    (q,) = report["questions"]
    assert q["status"] == "forbidden" and "'torch'" in q["message"] and q["score"] == 0


def test_mutating_an_input_is_a_warning_and_changes_nothing(tmp_path: Path) -> None:
    source = SOLUTION_SOURCE.replace("def reg_dl_dyhat(yhat, y):\n    return 2.0 * (yhat - y)",
                                     "def reg_dl_dyhat(yhat, y):\n    yhat *= 2.0\n    return yhat - 2.0 * y")
    code, report = grade_json(write(tmp_path, source), "--only", "reg_dl_dyhat", "--seed", "1", "--trials", "3")
    (q,) = report["questions"]
    assert q["status"] == "passed"
    assert [w for w in q["warnings"] if "in place" in w] == [
        "modifies its argument 'yhat' in place; the grader passed a copy, but code that calls your function "
        "would see its input changed"]


def test_notebooks_are_graded(tmp_path: Path) -> None:
    cells = [{"cell_type": "markdown", "source": ["# HW1"], "metadata": {}},
             {"cell_type": "code", "source": ["%matplotlib inline\n", SOLUTION_SOURCE], "metadata": {},
              "outputs": [], "execution_count": None}]
    nb = write(tmp_path, json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
               "hw.ipynb")
    code, report = grade_json(nb, "--only", REG, "--seed", "4", "--trials", "2")
    assert report["score"] == report["max_score"] > 0
    assert "cell 2, line 1: IPython magic '%matplotlib inline' skipped" in report["notes"]


def test_replay_reproduces_the_failing_trial(tmp_path: Path) -> None:
    wrong = write(tmp_path, SOLUTION_SOURCE.replace("return 2.0 * (yhat - y)", "return yhat - y"))
    code, report = grade_json(wrong, "--only", "reg_dl_dyhat", "--seed", "8", "--trials", "5")
    (q,) = report["questions"]
    replay = q["failure"]["replay"].split()
    assert replay[:2] == ["grade", wrong]
    code, again = grade_json(*replay[1:])
    (r,) = again["questions"]
    assert r["trials"] == 1 and r["trials_passed"] == 0 and r["message"] == q["failure"]["message"]


def test_text_report_has_table_total_and_tolerance_report(tmp_path: Path) -> None:
    wrong = write(tmp_path, SOLUTION_SOURCE.replace("dW1 = np.outer(dz1, x)", "dW1 = np.outer(dz1, x) * 2"))
    result = CliRunner().invoke(main, [wrong, "--only", REG, "--seed", "5", "--trials", "3"])
    out = result.output
    assert result.exit_code == 0
    assert "question" in out and "status" in out and "Total:" in out
    assert "tolerance report (failing trial" in out and "worst abs error" in out and "replay: grade" in out
    assert "seed 5" in out


@pytest.mark.parametrize("args,words", [
    (["nope.py"], "nothing could be graded"),
    ([str(SOLUTION), "--only", "no_such_function"], "no question matches"),
    ([str(SOLUTION), "--problems", "/nonexistent"], "is not valid"),
])
def test_usage_errors_exit_nonzero_with_one_line(args: list[str], words: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert words in result.output and "Traceback" not in result.output


def test_a_failure_in_a_fixed_case_says_which_case(tmp_path: Path) -> None:
    naive = SOLUTION_SOURCE + "\n\ndef softargmax(z, beta=1.0):\n    e = np.exp(beta * z)\n    return e / e.sum()\n"
    code, report = grade_json(write(tmp_path, naive), "--only", "softargmax", "--seed", "3", "--trials", "3")
    (q,) = report["questions"]
    assert q["status"] == "failed" and "NaN" in q["message"]
    assert q["failure"]["case"]["beta"] == 1000


def test_replay_of_a_fixed_case_keeps_the_trial_count(tmp_path: Path) -> None:
    naive = SOLUTION_SOURCE + "\n\ndef softargmax(z, beta=1.0):\n    e = np.exp(beta * z)\n    return e / e.sum()\n"
    code, report = grade_json(write(tmp_path, naive), "--only", "softargmax", "--seed", "3", "--trials", "2")
    failure = report["questions"][0]["failure"]
    assert failure["case"] is not None and "--trials 2" in failure["replay"]
    code, again = grade_json(*failure["replay"].split()[1:])
    assert again["questions"][0]["failure"]["case"] == failure["case"]


def test_a_hanging_loss_costs_one_timeout_not_one_per_parameter_draw(tmp_path: Path) -> None:
    source = SOLUTION_SOURCE.replace("def adaline_loss(w, b, x, y):\n", "def adaline_loss(w, b, x, y):\n"
                                     "    while True: pass\n")
    assert "while True" in source
    code, report = grade_json(write(tmp_path, source), "--only", "adaline_loss", "--seed", "1", "--trials", "3")
    (q,) = report["questions"]
    assert q["status"] == "timeout"
    assert report["elapsed_seconds"] < 2 * 5.0  # one 5 s timeout, not six


def test_errors_in_a_notebook_point_at_the_cell(tmp_path: Path) -> None:
    cells = [{"cell_type": "markdown", "source": ["# HW1"], "metadata": {}},
             {"cell_type": "code", "source": ["import numpy as np\n", "undefined_at_load\n"], "metadata": {},
              "outputs": [], "execution_count": None},
             {"cell_type": "code", "source": ["def reg_loss(yhat, y):\n", "    return 1 / 0\n"], "metadata": {},
              "outputs": [], "execution_count": None}]
    nb = write(tmp_path, json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
               "hw.ipynb")
    code, report = grade_json(nb, "--only", "reg_loss", "--seed", "1", "--trials", "1")
    assert "cell 3, line 2, in reg_loss" in report["questions"][0]["message"]
    assert any(n.startswith("cell 2, line 2: NameError") for n in report["notes"])
