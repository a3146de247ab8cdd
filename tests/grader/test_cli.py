"""The CLI end to end: grade validate and grade selfcheck, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.launch import grades_a_file
from grader.selfcheck import run_selfcheck
from reference.ops import OPS

from tests.helpers import BUNDLED, write_spec

TANH_NET = """
problem: t
dims: {n: [1, 4]}
inputs: {x: {shape: [n]}, W: {shape: [n, n]}}
nodes: {z: W @ x, loss: sum(tanh(z))}
questions:
  - {function: t_grad, args: [x, W], returns: 'grad(loss, W)'}
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_validate_bundled_set() -> None:
    code, out = invoke("validate")
    assert code == 0
    assert "OK: problem set 'hw1'" in out and "points" in out


def test_validate_reports_problems_and_exits_1(tmp_path: Path) -> None:
    path = write_spec(tmp_path, TANH_NET.replace("tanh(z)", "tahn(z)"))
    code, out = invoke("validate", str(path))
    assert code == 1
    assert "1 mistake(s)" in out and str(path) in out and "did you mean 'tanh'?" in out
    assert "Traceback" not in out


def test_selfcheck_passes_on_bundled_set_and_prints_its_seed() -> None:
    code, out = invoke("selfcheck", "--trials", "3", "--seed", "99")
    assert code == 0, out
    assert "seed 99" in out and "PASSED" in out
    assert "reg_grads" in out and "all agree" in out


def test_selfcheck_refuses_a_broken_spec(tmp_path: Path) -> None:
    path = write_spec(tmp_path, TANH_NET.replace("W @ x", "x @ W @ x @ W"))
    code, out = invoke("selfcheck", str(path), "--seed", "1")
    assert code == 1
    assert "@ takes vectors and matrices only, got shapes () @" in out and "multiply a scalar with *" in out
    assert "fix it before the self-check" in out


def test_selfcheck_catches_a_wrong_vjp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tanh' is 1 - tanh^2; a reference that forgot the square must be caught end to end
    monkeypatch.setitem(OPS, "tanh", replace(OPS["tanh"], vjp=lambda g, o, a: (g * (1.0 - o),)))
    result = run_selfcheck(write_spec(tmp_path, TANH_NET), seed=5, trials=4)
    assert not result.ok
    assert [o.op for o in result.ops if not o.ok] == ["tanh"]
    (question,) = result.questions
    assert not question.ok and "NumPy and torch differ" in question.failures[0]


def test_a_whole_grade_imports_nothing_it_does_not_need(tmp_path: Path) -> None:
    # torch costs ~2 s to import and is only for selfcheck; the rest would be start-up for nothing. Once the
    # problem set is known valid it is read without PyYAML, and full marks need no diagnoses.
    solution = BUNDLED.parent.parent / "submissions" / "examples" / "solution.py"
    code = ("import sys\nfrom grader.cli import run\nsys.argv = ['grade', sys.argv[1], '--seed', '1']\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\n"
            "print('heavy:', sorted(m for m in ('torch', 'pandas', 'scipy', 'matplotlib', 'jax', 'sympy', "
            "'jsonschema', 'PIL', 'xmlschema', 'yaml', 'grader.diagnose', 'grader.selfcheck_report') "
            "if m in sys.modules))")
    env = {**os.environ, "GRADE_CACHE_DIR": str(tmp_path / "cache")}
    first, again = (subprocess.run([sys.executable, "-c", code, str(solution)], capture_output=True, text=True,
                                   check=True, env=env) for _ in range(2))
    assert "Total: 102 / 102 points" in first.stdout and "Total: 102 / 102 points" in again.stdout
    assert first.stdout.strip().splitlines()[-1] == "heavy: ['yaml']"  # the first read parses the YAML
    assert again.stdout.strip().splitlines()[-1] == "heavy: []"


def test_console_script_has_no_traceback_on_missing_path(tmp_path: Path) -> None:
    grade = Path(sys.executable).with_name("grade")
    out = subprocess.run([str(grade), "validate", str(tmp_path / "missing")], capture_output=True, text=True)
    assert out.returncode == 1
    assert "does not exist" in out.stdout and "Traceback" not in out.stdout + out.stderr


def test_validating_set_yaml_validates_its_folder() -> None:
    code, out = invoke("validate", str(BUNDLED / "set.yaml"))
    assert code == 0 and "OK: problem set 'hw1'" in out


def test_an_unreadable_submission_among_others_is_named_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [str(tmp_path), str(BUNDLED.parent.parent / "submissions" / "template.py"),
                                       "--only", "shear", "--trials", "1"])
    assert result.exit_code == 0
    assert result.output.count("is a folder") == 1 and "Total:" in result.output


@pytest.mark.parametrize("args, grades", [
    (["submissions/examples/solution.py"], True),
    (["--seed", "3", "submissions/examples/solution.py"], False),  # "3" comes first: the CLI boots it later
    (["submission", "anything.py"], True),
    (["submissions/examples/no-such-file.py"], False),
    (["validate"], False),
    (["batch", "submissions/examples"], False),
    ([], False),
])
def test_the_console_command_boots_a_worker_first_only_to_grade_files(args: list[str], grades: bool,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert grades_a_file(args) is grades
