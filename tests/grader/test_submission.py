"""Reading submissions statically: .py and notebooks, syntax errors, forbidden imports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.imports import DEFAULT_FORBIDDEN, cannot_name, forbidden_uses
from grader.submission import SubmissionError, read_submission


def _notebook(tmp_path: Path, cells: list[tuple[str, str]]) -> Path:
    nb = {"cells": [{"cell_type": kind, "source": text.splitlines(keepends=True), "metadata": {}}
                    for kind, text in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "hw.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_python_file_lists_its_functions(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("import numpy as np\n\ndef f(x):\n    return x\n\nasync def g():\n    pass\n\nh = f\n")
    sub = read_submission(path)
    assert sub.functions == ("f", "g") and sub.syntax_error is None and sub.locate(3) == "line 3"


def test_syntax_error_names_line_and_text(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("def f(x):\n    return x +\n")
    sub = read_submission(path)
    err = sub.syntax_error
    assert err is not None and err.line == 2 and "invalid syntax" in err.message and err.text == "    return x +"
    assert sub.functions == ()


def test_return_outside_a_function_is_caught_statically(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("x = 1\nreturn x\n")
    err = read_submission(path).syntax_error
    assert err is not None and err.line == 2 and "'return' outside function" in err.message


def test_notebook_code_cells_in_order_magics_skipped_lines_mapped(tmp_path: Path) -> None:
    path = _notebook(tmp_path, [
        ("markdown", "# Homework 1"),
        ("code", "%matplotlib inline\nimport numpy as np"),
        ("code", "!pip install numpy\ndef f(x):\n    return 2 * x"),
        ("code", "%%timeit\nf(3)"),
        ("code", "def g(x):\n    return x +"),
    ])
    sub = read_submission(path)
    assert sub.notes == (
        "cell 2, line 1: IPython magic '%matplotlib inline' skipped",
        "cell 3, line 1: shell escape '!pip install numpy' skipped",
        "cell 4: cell magic '%%timeit' skipped (the whole cell)",
    )
    assert sub.syntax_error is not None and sub.locate(sub.syntax_error.line) == "cell 5, line 2"
    fixed = _notebook(tmp_path, [("code", "%matplotlib inline\nimport numpy as np"),
                                 ("code", "def f(x):\n    return 2 * x")])
    assert read_submission(fixed).functions == ("f",)


@pytest.mark.parametrize("content,words", [(None, "no such file"), ("{not json", "not a Jupyter notebook")])
def test_unreadable_submissions_raise_one_clear_error(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "x.ipynb"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SubmissionError, match=words):
        read_submission(path)


SOURCE = '''
import numpy as np
import torch as T
from jax import grad

def uses_alias(x):
    return T.tensor(x)

def uses_from_import(f):
    return grad(f)

def imports_inside(x):
    import tensorflow as tf
    return tf.constant(x)

def dynamic(x):
    return __import__("autograd").numpy.sum(x)

def calls_a_forbidden_helper(x):
    return uses_alias(x)

def clean(x):
    return np.sum(x)
'''


def test_forbidden_imports_mark_exactly_the_functions_that_use_them() -> None:
    found = forbidden_uses(SOURCE, DEFAULT_FORBIDDEN)
    assert found.keys() == {"uses_alias", "uses_from_import", "imports_inside", "dynamic",
                            "calls_a_forbidden_helper"}
    assert "'torch'" in found["uses_alias"] and "'torch'" in found["calls_a_forbidden_helper"]
    assert "'jax'" in found["uses_from_import"] and "'autograd'" in found["dynamic"]
    assert forbidden_uses(SOURCE, ["sympy"]) == {}


@pytest.mark.parametrize("module_code,use", [
    ("", '__import__("to" "rch").tensor(x)'),  # the parser joins the literals: "torch" is nowhere in the text
    ("", '__import__("\\x74orch").tensor(x)'),  # an escape spells it
    ("from importlib import import_module", 'import_module("ja" "x").numpy.sum(x)'),
    ("import \uff54\uff4f\uff52\uff43\uff48 as t", "t.tensor(x)"),  # full-width letters: the name is torch
])
def test_forbidden_modules_spelled_other_than_verbatim_are_found(module_code: str, use: str) -> None:
    source = f"{module_code}\n\ndef uses(x):\n    return {use}\n\ndef clean(x):\n    return x\n"
    assert not cannot_name(source, DEFAULT_FORBIDDEN)  # the text alone does not clear it: the tree is walked
    assert forbidden_uses(source, DEFAULT_FORBIDDEN).keys() == {"uses"}


def test_text_that_cannot_name_a_forbidden_module_is_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    clean = "import numpy as np\n\ndef f(x):\n    return np.tanh(x)  # \\frac{d}{dx}: 1 − tanh² by hand\n"
    assert cannot_name(clean, DEFAULT_FORBIDDEN)
    monkeypatch.setattr("grader.imports._uses", lambda *args: pytest.fail("walked"))
    monkeypatch.setattr("grader.imports.ast.parse", lambda *args: pytest.fail("parsed"))
    assert forbidden_uses(clean, DEFAULT_FORBIDDEN) == {}
    for named in ("import torch\n", "x = 1  # torch\n", "t = __import__(name)\n", "import_module(n)\n",
                  "t = __ｉｍｐｏｒｔ__(name)\n", "ｊａｘ = None\n"):
        assert not cannot_name(clean + named, DEFAULT_FORBIDDEN), named


@pytest.mark.parametrize("module_code,use", [
    ("t = __import__('torch')", "t.tensor(x)"),
    ("import torch\nT = torch", "T.tensor(x)"),
    ("try:\n    import jax.numpy as jnp\nexcept ImportError:\n    jnp = None", "jnp.sum(x)"),
    ("import autograd\ngrad_of = lambda f: autograd.grad(f)", "grad_of(x)"),
    ("import torch\nclass Helper:\n    def go(self, x):\n        return torch.tensor(x)", "Helper().go(x)"),
])
def test_forbidden_modules_are_found_through_module_level_indirection(module_code: str, use: str) -> None:
    source = f"{module_code}\n\ndef uses(x):\n    return {use}\n\ndef clean(x):\n    return x\n"
    assert forbidden_uses(source, DEFAULT_FORBIDDEN).keys() >= {"uses"}
    assert "clean" not in forbidden_uses(source, DEFAULT_FORBIDDEN)
