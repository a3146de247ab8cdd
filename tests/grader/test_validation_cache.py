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


def _specs_as_built(folder: Path) -> list[tuple]:
    ps = load_problem_set(folder, trust_cache=True)
    return [(p.name, p.title, p.dims, tuple(p.inputs.items()), tuple(p.questions)) for p in ps.problems]


def test_a_known_set_is_read_from_the_cache_without_yaml(dry_runs: list[str], tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    folder = copy_of_hw1(tmp_path)
    built = _specs_as_built(folder)
    script = ("import sys; from pathlib import Path; from grader.spec import load_problem_set; "
              f"ps = load_problem_set(Path({str(folder)!r}), trust_cache=True); "
              "print(len(ps.problems), 'yaml' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**os.environ, "GRADE_CACHE_DIR": str(tmp_path / "cache")})
    assert done.stdout.split() == [str(len(built)), "False"]
    assert _specs_as_built(folder) == built  # what the cache gives builds the very same specs


def test_only_documents_json_gives_back_exactly_are_kept(dry_runs: list[str], tmp_path: Path) -> None:
    from grader.validation_cache import cached_documents, remember_valid

    remember_valid("k", {"a.yaml": {1: "x"}, "b.yaml": {"k": [1, 2.5, None]}, "c.yaml": {"x": float("nan")}})
    assert cached_documents("k") == {"b.yaml": {"k": [1, 2.5, None]}}


def test_a_document_missing_from_the_cache_is_parsed(dry_runs: list[str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import grader.spec_yaml as spec_yaml

    folder = copy_of_hw1(tmp_path)
    built = _specs_as_built(folder)
    (marker,) = (tmp_path / "cache" / "validated").iterdir()
    docs = json.loads(marker.read_text())
    del docs[str(folder / "15b_comp_graph.yaml")]
    marker.write_text(json.dumps(docs))
    parsed: list[str] = []
    real = spec_yaml.read_yaml
    monkeypatch.setattr(spec_yaml, "read_yaml", lambda path, add: parsed.append(path.name) or real(path, add))
    assert _specs_as_built(folder) == built and parsed == ["15b_comp_graph.yaml"]
    parsed.clear()
    assert _specs_as_built(folder) == built and parsed == []  # and it was put back in the cache


def test_an_old_marker_without_documents_is_filled_in(dry_runs: list[str], tmp_path: Path) -> None:
    folder = copy_of_hw1(tmp_path)
    load_problem_set(folder, trust_cache=True)
    markers = list((tmp_path / "cache" / "validated").iterdir())
    assert len(markers) == 1 and markers[0].read_text().startswith("{")
    markers[0].write_text("")  # as the previous version wrote it
    load_problem_set(folder, trust_cache=True)
    assert dry_runs.count("reg") == 1 and markers[0].read_text().startswith("{\"")
