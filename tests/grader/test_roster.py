"""Naming students from files and folders, and refusing to guess between two submissions."""

from __future__ import annotations

from pathlib import Path

from grader.roster import find_submissions


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x = 1\n")
    return path


def test_files_are_named_after_themselves_and_folders_after_the_folder(tmp_path: Path) -> None:
    touch(tmp_path / "alice.py")
    touch(tmp_path / "bob" / "work" / "hw1.ipynb")
    touch(tmp_path / "bob" / ".ipynb_checkpoints" / "hw1-checkpoint.ipynb")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".hidden.py")
    roster = find_submissions([tmp_path])
    assert [(e.student, e.path.name) for e in roster.entries] == [("alice", "alice.py"), ("bob", "hw1.ipynb")]
    assert roster.problems == ()


def test_files_sharing_a_name_are_named_after_their_folders(tmp_path: Path) -> None:
    for who in ("carol", "dave"):
        touch(tmp_path / who / "hw1.py")
    roster = find_submissions([str(tmp_path / "*" / "hw1.py")])
    assert [e.student for e in roster.entries] == ["carol", "dave"]


def test_duplicates_and_ambiguous_folders_are_reported_not_graded(tmp_path: Path) -> None:
    touch(tmp_path / "alice.py")
    touch(tmp_path / "alice" / "hw1.py")
    touch(tmp_path / "erin" / "a.py")
    touch(tmp_path / "erin" / "b.py")
    (tmp_path / "frank").mkdir()
    touch(tmp_path / "gina.py")
    roster = find_submissions([tmp_path, tmp_path / "missing"])
    assert [e.student for e in roster.entries] == ["gina"]
    text = "\n".join(roster.problems)
    assert "alice: several submissions" in text and "alice.py" in text and "hw1.py" in text
    assert "erin/: needs exactly one submission file, found a.py, b.py" in text
    assert "frank/: needs exactly one submission file, found no .py or .ipynb file" in text
    assert "missing: no such file or folder" in text
