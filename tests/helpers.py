"""Shared helpers for the tests."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from grader.cli import main

BUNDLED = Path(__file__).resolve().parent.parent / "problems" / "hw1"


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    """Write one spec file into ``folder`` and return its path."""
    path = folder / name
    path.write_text(text)
    return path


def grade_json(*args: str) -> tuple[int, dict]:
    """``grade ARGS --format json`` through the CLI: its exit code and its report (empty unless it succeeded)."""
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else {}


def by_output(report: dict) -> dict[tuple[str, str], dict]:
    """A JSON report's rows by (function, output)."""
    return {(q["function"], q["output"]): q for q in report["questions"]}


def write(tmp_path: Path, source: str, name: str = "sub.py") -> str:
    """Write a submission into ``tmp_path``; its path as the CLI takes it."""
    path = tmp_path / name
    path.write_text(source)
    return str(path)
