"""The gradebook: every grade of a class in one SQLite file, cached so that a re-run grades only what changed.

Two tables hold the grades (a third, ``settings``, holds the batch seed):

- ``parts``: the JSON report of one submission on one problem, keyed by the
  submission's content hash (SHA-256 of the file), the problem's hash (its YAML
  file and ``set.yaml``, so a spec fix changes the key of that problem only), the
  grader version, the seed and the options (``--only``, ``--trials``). A key that is
  present is never graded again.
- ``students``: per problem set and student, the latest assembled report, with
  the keys it was built from; ``grade export`` reads this table.

Each submission is saved in one transaction (its new parts and its student row
together), so a batch that is interrupted or killed keeps every result it
finished, never half of one, and a re-run resumes where it stopped. Only one
process writes: the batch's parent.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from grader.spec import ProblemSet
from reference.errors import ToolkitError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (
    content_hash TEXT NOT NULL, problem_key TEXT NOT NULL, grader_version TEXT NOT NULL,
    seed INTEGER NOT NULL, options TEXT NOT NULL, problem TEXT NOT NULL, report TEXT NOT NULL,
    graded_at REAL NOT NULL,
    PRIMARY KEY (content_hash, problem_key, grader_version, seed, options));
CREATE TABLE IF NOT EXISTS students (
    problem_set TEXT NOT NULL, student TEXT NOT NULL, path TEXT NOT NULL, content_hash TEXT NOT NULL,
    set_hash TEXT NOT NULL, grader_version TEXT NOT NULL, seed INTEGER NOT NULL, options TEXT NOT NULL,
    score REAL NOT NULL, max_score REAL NOT NULL, report TEXT NOT NULL, graded_at REAL NOT NULL,
    PRIMARY KEY (problem_set, student));
"""


class GradebookError(ToolkitError):
    """A gradebook that cannot be opened, or was written by an incompatible version."""


@dataclass(frozen=True)
class PartKey:
    """What a cached grade of one problem depends on: change any of it and the problem is graded again."""

    content_hash: str
    problem_key: str
    grader_version: str
    seed: int
    options: str


@dataclass(frozen=True)
class StudentRecord:
    """A student's latest report on a problem set, and what it was graded from."""

    problem_set: str
    student: str
    path: str
    content_hash: str
    set_hash: str
    grader_version: str
    seed: int
    options: str
    report: Mapping[str, Any]
    graded_at: float = 0.0

    @property
    def score(self) -> float:
        return float(self.report["score"])

    @property
    def max_score(self) -> float:
        return float(self.report["max_score"])

    def same_grade(self, other: StudentRecord) -> bool:
        """True when ``other`` was graded from the same file, specs, grader, seed and options."""
        return (self.path, self.content_hash, self.set_hash, self.grader_version, self.seed, self.options) == (
            other.path, other.content_hash, other.set_hash, other.grader_version, other.seed, other.options)


def grader_version() -> str:
    """The installed version of this grader (package metadata), part of every cache key."""
    try:
        return metadata.version("backprop-autograder")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def problem_keys(problem_set: ProblemSet) -> dict[str, str]:
    """Per problem, a hash of what defines it: its YAML file, the set's ``set.yaml``, and its name.

    Variants of one file share the file, so the name tells them apart; a change
    to ``set.yaml`` (defaults, forbidden imports) changes every problem.
    """
    set_yaml = problem_set.path / "set.yaml"
    common = set_yaml.read_bytes() if set_yaml.is_file() else b""
    return {p.name: hashlib.sha256(b"\0".join([common, p.path.read_bytes(), p.name.encode()])).hexdigest()
            for p in problem_set.problems}


def set_hash(keys: Mapping[str, str]) -> str:
    """The problem set's hash: that of all its problems' keys, in order."""
    return hashlib.sha256("\n".join(f"{k}={v}" for k, v in keys.items()).encode()).hexdigest()


def options_key(only: str | None, trials: int | None) -> str:
    """The grading options that change results, as a stable string."""
    return json.dumps({"only": only, "trials": trials}, sort_keys=True)


class Gradebook:
    """An open gradebook file. Use as a context manager; not shared between processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN ... COMMIT in save)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")  # a killed writer never corrupts committed results
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise GradebookError(f"cannot open the gradebook {path}: {exc}") from None
        self._check_schema()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _check_schema(self) -> None:
        found = self.setting("schema_version")
        if found is None:
            self.set_setting("schema_version", str(SCHEMA_VERSION))
        elif found != str(SCHEMA_VERSION):
            raise GradebookError(f"the gradebook {self.path} has schema version {found}; this grader "
                                 f"reads version {SCHEMA_VERSION}: use a new --gradebook file")

    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def batch_seed(self, override: int | None, fresh: int) -> int:
        """The seed of every batch in this gradebook: ``override`` if given (it becomes the new one),
        else the stored one, else ``fresh`` (stored for the next runs)."""
        stored = self.setting("seed")
        seed = override if override is not None else int(stored) if stored is not None else fresh
        if stored != str(seed):
            self.set_setting("seed", str(seed))
        return seed

    def parts(self, keys: Sequence[PartKey]) -> dict[PartKey, dict[str, Any]]:
        """The cached reports among ``keys``."""
        found: dict[PartKey, dict[str, Any]] = {}
        for key in keys:
            row = self._db.execute(
                "SELECT report FROM parts WHERE content_hash = ? AND problem_key = ? AND grader_version = ? "
                "AND seed = ? AND options = ?",
                (key.content_hash, key.problem_key, key.grader_version, key.seed, key.options)).fetchone()
            if row is not None:
                found[key] = json.loads(row[0])
        return found

    def student(self, problem_set: str, student: str) -> StudentRecord | None:
        row = self._db.execute(f"SELECT {_STUDENT_COLUMNS} FROM students WHERE problem_set = ? AND student = ?",
                               (problem_set, student)).fetchone()
        return None if row is None else _record(row)

    def students(self, problem_set: str) -> list[StudentRecord]:
        """Every student's latest record on ``problem_set``, by name."""
        rows = self._db.execute(f"SELECT {_STUDENT_COLUMNS} FROM students WHERE problem_set = ? ORDER BY student",
                                (problem_set,))
        return [_record(r) for r in rows]

    def problem_sets(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT problem_set FROM students ORDER BY problem_set")]

    def save(self, record: StudentRecord, new_parts: Mapping[PartKey, Mapping[str, Any]]) -> None:
        """Store a student's record and the parts newly graded for it, all or nothing."""
        now = time.time()
        with self._transaction():
            for key, part in new_parts.items():
                problem = part["questions"][0]["problem"] if part["questions"] else ""
                self._db.execute(
                    "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key.content_hash, key.problem_key, key.grader_version, key.seed, key.options, problem,
                     json.dumps(part), now))
            self._db.execute(
                "INSERT OR REPLACE INTO students VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.problem_set, record.student, record.path, record.content_hash, record.set_hash,
                 record.grader_version, record.seed, record.options, record.score, record.max_score,
                 json.dumps(record.report), now))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (Ctrl-C included)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type | None, *exc: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


_STUDENT_COLUMNS = ("problem_set, student, path, content_hash, set_hash, grader_version, seed, options, "
                    "report, graded_at")


def _record(row: Sequence[Any]) -> StudentRecord:
    *fields, report, graded_at = row
    return StudentRecord(*fields, report=json.loads(report), graded_at=graded_at)

