"""The Gradescope autograder: the zip to upload, and what it runs for each submission.

Gradescope unzips the bundle into ``/autograder/source``, runs ``setup.sh`` once
when building its image, then ``run_autograder`` per submission, with the
student's files in ``/autograder/submission`` and the results expected in
``/autograder/results/results.json``
(https://gradescope-autograders.readthedocs.io/en/latest/specs/).

The bundle holds:

- ``setup.sh``: a Python 3.11+ virtual environment at ``/autograder/venv`` with
  this grader installed from ``grader_src/`` (numpy, click and pyyaml come from
  PyPI while the image is built; grading needs no network);
- ``run_autograder``: calls ``grade gradescope-run``, which is ``run_autograder()`` below;
- ``grader_src/``: this grader's packages (``grader``, ``reference``) and a ``pyproject.toml``;
- ``problems/<set>/``: the problem set;
- ``grader_config.json``: the seed (fixed when the bundle is built, so that a
  regrade gives the same result) and the tests' visibility.

``AUTOGRADER_ROOT`` moves ``/autograder`` (the tests point it at a temporary folder).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

from grader.gradebook import grader_version

CONFIG = "grader_config.json"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while building the autograder image.
set -euo pipefail
PY=python3
if ! command -v python3 >/dev/null || ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    # the grader needs Python 3.11+; older Ubuntu images get it from the deadsnakes archive
    apt-get update
    apt-get install -y software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update
    apt-get install -y python3.11 python3.11-venv
    PY=python3.11
fi
apt-get install -y python3-venv >/dev/null 2>&1 || true
"$PY" -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet /autograder/source/grader_src
/autograder/venv/bin/grade validate /autograder/source/problems/{set_name}
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission into
# /autograder/results/results.json. AUTOGRADER_ROOT and GRADE_EXECUTABLE move both (for tests).
ROOT="${AUTOGRADER_ROOT:-/autograder}"
GRADE="${GRADE_EXECUTABLE:-$ROOT/venv/bin/grade}"
exec "$GRADE" gradescope-run --root "$ROOT"
"""

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "backprop-autograder"
version = "{version}"
requires-python = ">=3.11"
dependencies = ["numpy>=1.26", "click>=8.1", "pyyaml>=6.0"]

[project.scripts]
grade = "grader.cli:run"

[tool.setuptools.packages.find]
include = ["grader*", "reference*"]
"""


def build_bundle(problems: Path, output: Path, seed: int, visibility: str) -> list[str]:
    """Write the autograder zip for the problem set folder ``problems``; return the names it holds."""
    if not problems.is_dir():
        raise ValueError(f"{problems} is not a folder: the bundle needs a problem set folder")
    set_name = problems.resolve().name
    packages = Path(__file__).resolve().parents[2]  # the folder holding the grader and reference packages
    files: dict[str, bytes] = {
        "setup.sh": SETUP_SH.replace("{set_name}", set_name).encode(),
        "run_autograder": RUN_AUTOGRADER.encode(),
        CONFIG: json.dumps({"seed": seed, "visibility": visibility, "problems": f"problems/{set_name}"},
                           indent=2).encode(),
        "grader_src/pyproject.toml": PYPROJECT.replace("{version}", grader_version()).encode(),
    }
    for package in ("grader", "reference"):
        files.update(_tree(packages / package, f"grader_src/{package}"))
    for name, data in _tree(problems, f"problems/{set_name}").items():
        files[name] = _without_examples(data) if name.endswith("/set.yaml") else data
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))  # the same zip for the same inputs
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return sorted(files)


def _tree(folder: Path, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _without_examples(set_yaml: bytes) -> bytes:
    # the example submissions stay with the instructor; their folder is not in the bundle
    return re.sub(rb"(?m)^examples:.*\n?", b"", set_yaml)


def run_autograder(root: Path) -> str:
    """Grade the submission in ``root/submission`` and write ``root/results/results.json``; return a summary.

    Whatever goes wrong, a results.json is written, so the student sees why.
    """
    from grader.formats.gradescope import to_gradescope

    config = json.loads((root / "source" / CONFIG).read_text())
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    try:
        doc = _grade_submission(root, config)
        out = to_gradescope(doc, config.get("visibility", "visible"))
    except _NoSubmission as exc:
        out = _zero(str(exc))
    results.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return f"score {out['score']:g}; results written to {results}"


class _NoSubmission(Exception):
    """No single gradable file in the submission folder; the message is for the student."""


def _grade_submission(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    from grader.cli import bundled_problems
    from grader.grading import grade
    from grader.report import to_json
    from grader.spec import load_problem_set
    from grader.submission import SubmissionError

    path = _find_submission(root / "submission")
    problem_set = load_problem_set(root / "source" / config["problems"])
    try:
        result = grade(path, problem_set, int(config["seed"]))
    except SubmissionError as exc:
        raise _NoSubmission(f"your submission could not be read: {exc}") from None
    return to_json(result, bundled_problems())


def _find_submission(folder: Path) -> Path:
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb")
                   and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(folder).parts))
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found) or "none"
        raise _NoSubmission(f"submit exactly one .py or .ipynb file; found: {names}")
    return found[0]


def _zero(message: str) -> dict[str, Any]:
    return {"score": 0.0, "execution_time": 0.0, "output": message, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": []}
