"""The platform formats, each validated against a schema written from the platform's documentation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import xmlschema
from click.testing import CliRunner

from grader.cli import main
from grader.formats.gradescope import to_gradescope
from grader.formats.junit import to_junit
from grader.formats.prairielearn import to_prairielearn
from grader.grading import grade
from grader.report import to_json
from grader.spec import load_problem_set

from tests.helpers import BUNDLED

SCHEMAS = Path(__file__).parent / "schemas"
EXAMPLES = BUNDLED.parent.parent / "submissions" / "examples"
REPO = BUNDLED.parent.parent


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    """Reports with every kind of outcome: passed, failed (with diagnosis), missing, and a syntax error."""
    ps = load_problem_set(BUNDLED)
    out = []
    for name in ("transposed_weight_grads.py", "solution.py"):
        out.append(to_json(grade(EXAMPLES / name, ps, 3, only="reg_*", trials=2), BUNDLED))
    return out


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("broken")
    (folder / "bad.py").write_text("def reg_loss(yhat, y):\n    return (\n")
    return to_json(grade(folder / "bad.py", load_problem_set(BUNDLED), 3, only="reg_*", trials=2), BUNDLED)


def test_gradescope_results_follow_the_documented_format(docs: list[dict[str, Any]], broken: dict[str, Any]) -> None:
    for doc in [*docs, broken]:
        out = to_gradescope(doc, "after_published")
        jsonschema.validate(out, schema("gradescope_results.schema.json"))
        assert out["score"] == doc["score"]
        assert sum(t["max_score"] for t in out["tests"]) == doc["max_score"]
    failed = to_gradescope(docs[0])
    dw1 = next(t for t in failed["tests"] if t["name"].endswith("reg_grads -> dW1"))
    assert dw1["status"] == "failed" and dw1["score"] == 0 and "transpose" in dw1["output"]
    assert [t["number"] for t in failed["tests"][:3]] == ["1.1", "1.2", "1.3"]


def test_prairielearn_results_follow_the_documented_format(docs: list[dict[str, Any]], broken: dict[str, Any]) -> None:
    for doc in [*docs, broken]:
        jsonschema.validate(to_prairielearn(doc), schema("prairielearn_results.schema.json"))
    assert to_prairielearn(docs[1])["score"] == 1.0
    assert to_prairielearn(broken)["gradable"] is False  # a syntax error is not counted as an attempt


def test_junit_validates_against_the_jenkins_schema(docs: list[dict[str, Any]], broken: dict[str, Any]) -> None:
    xml = to_junit([*docs, broken])
    xmlschema.XMLSchema(SCHEMAS / "junit.xsd").validate(xml)
    assert 'type="failed"' in xml and 'type="error"' in xml


def test_junit_survives_control_characters_in_messages(docs: list[dict[str, Any]]) -> None:
    doc = json.loads(json.dumps(docs[0]))
    doc["questions"][0].update(status="error", message="printed \x1b[31mred\x00 <&>")
    xmlschema.XMLSchema(SCHEMAS / "junit.xsd").validate(to_junit([doc]))


def test_grade_format_options_write_each_format(tmp_path: Path) -> None:
    sub = str(EXAMPLES / "transposed_weight_grads.py")
    for fmt, check in (("gradescope", "gradescope_results.schema.json"),
                       ("prairielearn", "prairielearn_results.schema.json")):
        out = tmp_path / f"{fmt}.json"
        result = CliRunner().invoke(main, [sub, "--only", "reg_grads", "--trials", "2", "--seed", "1",
                                           "--format", fmt, "--output", str(out)])
        assert result.exit_code == 0, result.output
        jsonschema.validate(json.loads(out.read_text()), schema(check))
    result = CliRunner().invoke(main, [sub, sub, "--only", "reg_grads", "--format", "gradescope"])
    assert result.exit_code == 2 and "takes one submission" in result.output


def test_gradescope_bundle_runs_against_a_fake_autograder_root(tmp_path: Path) -> None:
    bundle = tmp_path / "autograder.zip"
    result = CliRunner().invoke(main, ["gradescope-bundle", "--output", str(bundle), "--seed", "7"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        zf.extractall(root / "source")
        mode = zf.getinfo("run_autograder").external_attr >> 16
    assert {"setup.sh", "run_autograder", "grader_config.json", "problems/hw1/set.yaml",
            "grader_src/pyproject.toml", "grader_src/grader/cli.py", "grader_src/reference/ops.py"} <= names
    assert mode & 0o111, "run_autograder must be executable"
    assert "examples:" not in (root / "source/problems/hw1/set.yaml").read_text()
    (root / "submission").mkdir()
    (root / "submission" / "hw1.py").write_text((EXAMPLES / "transposed_weight_grads.py").read_text())
    # the installed grader stands in for the bundle's venv, which setup.sh would build on Gradescope
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "GRADE_EXECUTABLE": str(Path(sys.executable).parent / "grade")}
    subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, check=True, capture_output=True,
                   timeout=120)
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, schema("gradescope_results.schema.json"))
    assert results["score"] == 82 and len(results["tests"]) == 75  # its declared score


def test_gradescope_run_explains_a_missing_submission(tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "source" / "grader_config.json").write_text(json.dumps({"seed": 1, "visibility": "visible",
                                                                     "problems": str(BUNDLED)}))
    (root / "submission").mkdir()
    (root / "submission" / "notes.txt").write_text("forgot the code")
    result = CliRunner().invoke(main, ["gradescope-run", "--root", str(root)])
    assert result.exit_code == 0, result.output
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, schema("gradescope_results.schema.json"))
    assert results["score"] == 0 and "exactly one .py or .ipynb" in results["output"]
