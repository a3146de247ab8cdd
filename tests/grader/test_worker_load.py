"""How the worker cuts a submission into the units it loads one at a time (grader/worker.py ``_units``)."""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest

import grader
from grader.sandbox import LoadIssue, Sandbox
from grader.sandbox_process import Limits

FAST = Limits(load_timeout=1.0)


@pytest.fixture(scope="module")
def worker() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("worker_units", Path(grader.__file__).with_name("worker.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    argv, sys.argv = sys.argv, ["worker.py"]
    try:
        spec.loader.exec_module(module)
    finally:
        sys.argv = argv
    return module


SOURCE = """import numpy as np
def a(x):
    return x
def b(x, *rest, key, **more):
    return x
def c(x=1.0):
    return x
def d(x):
    return x
@staticmethod
def e(x):
    return x
def f(x: float):
    return x
def g(x) -> float:
    return x
def h(*, k=None):
    return k
class K:
    pass
def i(x):
    return x
"""


def test_a_run_of_plain_definitions_is_one_unit_and_anything_evaluated_at_definition_is_its_own(worker) -> None:
    units = [[s.lineno for s in unit] for unit in worker._units(ast.parse(SOURCE).body, set())]
    # c has a default, e a decorator, f and g annotations, h a keyword default: each may fail or hang on its own
    assert units == [[1], [2, 4], [6], [8], [11], [13], [15], [17], [19], [21]]


def test_a_skipped_line_is_left_out_of_its_run(worker) -> None:
    units = [[s.lineno for s in unit] for unit in worker._units(ast.parse(SOURCE).body, {4, 19})]
    assert units == [[1], [2], [6], [8], [11], [13], [15], [17], [21]]


def test_definitions_that_evaluate_something_still_fail_on_their_own_line() -> None:
    source = ("def a():\n    return 1.0\n"
              "def b(x=1 / 0):\n    return 2.0\n"
              "def c():\n    return 3.0\n"
              "def e(x: undefined_annotation):\n    return 5.0\n"
              "def f():\n    return 6.0\n")
    with Sandbox(source, "student.py", FAST) as sandbox:
        report = sandbox.load()
        assert report.functions == ("a", "c", "f")
        assert [(i.line, i.kind) for i in report.issues] == [(3, "exception"), (7, "exception")]
        assert isinstance(report.issues[0], LoadIssue) and "ZeroDivisionError" in report.issues[0].message
