"""Which file is whose: finding the submissions of a class and naming each student.

The rules (also in the README, "Grading a class"):

- A target is a folder, a file, or a glob (``'subs/*/hw1.ipynb'``, quoted so that
  the grader expands it). A folder target stands for its entries; hidden entries,
  ``__pycache__`` and ``.ipynb_checkpoints`` are ignored.
- A file (``.py`` or ``.ipynb``) is named after itself: ``subs/alice.py`` is
  ``alice``. Files that share a name (``subs/alice/hw1.py``, ``subs/bob/hw1.py``)
  are named after their folders instead: ``alice``, ``bob``.
- A folder is named after itself and holds one submission file, found at any
  depth: ``subs/alice/`` holding ``work/hw1.ipynb`` is ``alice``.
- Two submissions with one name (``alice.py`` and ``alice/hw1.py``), a folder with
  several submission files, or one with none are reported and not graded; the
  others are.
"""

from __future__ import annotations

import glob
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

SUFFIXES = (".py", ".ipynb")
IGNORED = {"__pycache__", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class Entry:
    student: str
    path: Path


@dataclass(frozen=True)
class Roster:
    """The submissions found, by student, and what could not be attributed (one line each)."""

    entries: tuple[Entry, ...]
    problems: tuple[str, ...]


def find_submissions(targets: Sequence[str | Path]) -> Roster:
    """The submissions under ``targets`` (folders, files or globs), each with its student's name."""
    problems: list[str] = []
    candidates: list[Path] = []
    for target in targets:
        matched = _expand(str(target))
        if not matched:
            problems.append(f"{target}: no such file or folder")
        candidates += matched
    named: list[Entry] = []
    folders, files = [p for p in candidates if p.is_dir()], [p for p in candidates if not p.is_dir()]
    for folder in folders:
        inside = sorted(_submission_files(folder))
        if len(inside) == 1:
            named.append(Entry(folder.name, inside[0]))
        else:
            found = ", ".join(str(p.relative_to(folder)) for p in inside) or "no .py or .ipynb file"
            problems.append(f"{folder}/: needs exactly one submission file, found {found}")
    stems = Counter(p.stem for p in files)
    named += [Entry(p.parent.resolve().name if stems[p.stem] > 1 else p.stem, p) for p in files]
    entries, duplicates = _unique(named)
    problems += duplicates
    return Roster(tuple(sorted(entries, key=lambda e: e.student)), tuple(problems))


def _expand(target: str) -> list[Path]:
    if glob.has_magic(target):
        matched = [Path(p) for p in sorted(glob.glob(target, recursive=True))]
        return [p for p in matched if _wanted(p)]
    path = Path(target)
    if path.is_dir():
        return [p for p in sorted(path.iterdir()) if _wanted(p)]
    return [path] if path.exists() else []


def _wanted(path: Path) -> bool:
    if path.name.startswith(".") or path.name in IGNORED:
        return False
    return path.is_dir() or path.suffix in SUFFIXES


def _submission_files(folder: Path) -> Iterable[Path]:
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if path.is_file() and path.suffix in SUFFIXES and not any(
                p.startswith(".") or p in IGNORED for p in parts):
            yield path


def _unique(named: list[Entry]) -> tuple[list[Entry], list[str]]:
    by_student: dict[str, list[Path]] = defaultdict(list)
    for e in named:
        by_student[e.student].append(e.path)
    entries = [Entry(s, paths[0]) for s, paths in by_student.items() if len(paths) == 1]
    problems = [f"{s}: several submissions ({', '.join(str(p) for p in sorted(paths))}); keep one, or rename "
                "them, then run again" for s, paths in sorted(by_student.items()) if len(paths) > 1]
    return entries, problems
