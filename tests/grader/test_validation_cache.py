"""The dry-run cache: skipped only for the same files and code, never for `grade validate`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import grader.spec_loader as spec_loader
from grader.spec import load_problem_set, validate

from tests.helpers import BUNDLED


@pytest.fixture()
def dry_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Counts dry runs (one per problem) with a private cache folder."""
    monkeypatch.setenv("GRADE_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    real = spec_loader._dry_run

    def counting(spec, out) -> None:
        calls.append(spec.name)
        real(spec, out)

    monkeypatch.setattr(spec_loader, "_dry_run", counting)
    return calls


def copy_of_hw1(tmp_path: Path) -> Path:
    folder = tmp_path / "hw1"
    shutil.copytree(BUNDLED, folder)
    (folder / "set.yaml").write_text((folder / "set.yaml").read_text().replace("examples:", "# examples:"))
    return folder


def test_a_set_validated_once_is_not_dry_run_again(dry_runs: list[str], tmp_path: Path) -> None:
    folder = copy_of_hw1(tmp_path)
    first = load_problem_set(folder, trust_cache=True)
    assert len(dry_runs) == len(first.problems) > 10
    dry_runs.clear()
    again = load_problem_set(folder, trust_cache=True)
    assert dry_runs == [] and [p.name for p in again.problems] == [p.name for p in first.problems]


def test_an_edited_spec_is_dry_run_again(dry_runs: list[str], tmp_path: Path) -> None:
    folder = copy_of_hw1(tmp_path)
    load_problem_set(folder, trust_cache=True)
    dry_runs.clear()
    spec = folder / "15b_comp_graph.yaml"
    spec.write_text(spec.read_text().replace("w: a * b", "w: a * b * 2"))
    load_problem_set(folder, trust_cache=True)
    assert len(dry_runs) > 10


def test_validate_and_an_untrusting_load_always_dry_run(dry_runs: list[str], tmp_path: Path) -> None:
    folder = copy_of_hw1(tmp_path)
    load_problem_set(folder, trust_cache=True)
    dry_runs.clear()
    assert validate(folder) == [] and len(dry_runs) > 10
    dry_runs.clear()
    load_problem_set(folder)
    assert len(dry_runs) > 10


def test_an_invalid_set_is_never_remembered(dry_runs: list[str], tmp_path: Path) -> None:
    folder = copy_of_hw1(tmp_path)
    spec = folder / "15b_comp_graph.yaml"
    spec.write_text(spec.read_text().replace("w: a * b", "w: a @ q"))
    for _ in range(2):
        with pytest.raises(Exception, match="unknown name 'q'"):
            load_problem_set(folder, trust_cache=True)
    assert not (tmp_path / "cache" / "validated").exists() or not any((tmp_path / "cache" / "validated").iterdir())


def test_an_unwritable_cache_folder_only_means_no_caching(dry_runs: list[str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GRADE_CACHE_DIR", str(blocker / "cache"))  # a folder inside a file cannot exist
    folder = copy_of_hw1(tmp_path)
    problems = len(load_problem_set(folder, trust_cache=True).problems)
    load_problem_set(folder, trust_cache=True)
    assert len(dry_runs) == 2 * problems
