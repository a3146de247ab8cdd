"""The worker's restore of its own namespaces, in this process: what it writes back, and when it need not."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Iterator

import pytest

import grader

MAX_TEXT = 500  # worker.MAX_TEXT, which these tests overwrite in the saved copy only


@pytest.fixture(scope="module")
def worker() -> Iterator[types.ModuleType]:
    # as a zygote imports it; its own argv handling must not see pytest's arguments
    spec = importlib.util.spec_from_file_location("worker_under_test", Path(grader.__file__).with_name("worker.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    argv, sys.argv = sys.argv, ["worker.py"]
    sys.modules["worker_under_test"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.argv = argv
    yield module
    del sys.modules["worker_under_test"]


def test_this_interpreter_moves_a_dicts_version_on_every_change(worker: types.ModuleType) -> None:
    # the fast path is on where the grader runs (CPython 3.11); elsewhere restores write every name back
    assert worker.TAGS_MOVE
    namespace = {"a": 1}
    tag = worker.dict_version(namespace)
    before = tag[0]
    namespace["a"] = 1  # the same object again is no change
    assert tag[0] == before
    namespace["a"] = 2
    assert tag[0] > before


def _own_entry(keeper: object, worker: types.ModuleType) -> list:
    return next(entry for entry in keeper.light if entry[0] == worker.__name__)  # type: ignore[attr-defined]


def test_an_unchanged_namespace_is_not_written_back(worker: types.ModuleType) -> None:
    keeper = worker.Pristine(worker.ImportGuard(()))
    entry = _own_entry(keeper, worker)
    entry[3] = {**entry[3], "MAX_TEXT": -1}  # what a write-back would now put there
    keeper.restore_light()
    assert worker.MAX_TEXT == MAX_TEXT  # nothing changed since the snapshot: nothing was written


def test_a_changed_namespace_is_written_back_and_then_left_alone(worker: types.ModuleType) -> None:
    keeper = worker.Pristine(worker.ImportGuard(()))
    original = worker._encode
    worker._encode = lambda *args: "garbage"  # a patch of what the worker answers with
    keeper.restore_light()
    assert worker._encode is original
    entry = _own_entry(keeper, worker)
    entry[3] = {**entry[3], "MAX_TEXT": -1}
    keeper.restore_light()  # the namespace is as it was put back: no second write
    assert worker.MAX_TEXT == MAX_TEXT
    worker.ADDED_BY_STUDENT = 1  # any change, even an added name, moves the version
    try:
        keeper.restore_light()
        assert worker.MAX_TEXT == -1 and worker.ADDED_BY_STUDENT == 1  # every saved name written; added ones stay
    finally:
        worker.MAX_TEXT = MAX_TEXT
        del worker.ADDED_BY_STUDENT


def test_without_readable_versions_every_restore_writes_back(worker: types.ModuleType,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "TAGS_MOVE", False)
    keeper = worker.Pristine(worker.ImportGuard(()))
    entry = _own_entry(keeper, worker)
    entry[3] = {**entry[3], "MAX_TEXT": -1}
    try:
        keeper.restore_light()
        assert worker.MAX_TEXT == -1
    finally:
        worker.MAX_TEXT = MAX_TEXT
