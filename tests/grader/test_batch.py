"""Grading a class: parallel batches into the gradebook, re-runs, spec fixes, interruptions, export."""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import grader.batch
from grader.batch import BatchInterrupted, BatchOptions, run_batch
from grader.cli import main
from grader.gradebook import Gradebook, problem_keys
from grader.roster import find_submissions
from grader.spec import load_problem_set

from tests.helpers import BUNDLED

EXAMPLES = BUNDLED.parent.parent / "submissions" / "examples"
ONLY = ["--only", "d_*", "--trials", "2"]  # the four 1.5(c) questions: quick, and they have plots


@pytest.fixture
def klass(tmp_path: Path) -> Path:
    """A class of five: two examples, the demo student (in a folder), an unreadable file, a syntax error."""
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(EXAMPLES / "solution.py", subs / "alice.py")
    shutil.copy(EXAMPLES / "naive_exponentials.py", subs / "bob.py")
    (subs / "carol").mkdir()
    shutil.copy(BUNDLED.parent.parent / "submissions" / "student.py", subs / "carol" / "hw1.py")
    (subs / "dan.py").write_bytes(b"\xff\xfe not utf-8")
    (subs / "eve.py").write_text("def d_relu(x:\n")
    return subs


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def export_rows(gradebook: Path) -> list[dict[str, str]]:
    result = CliRunner().invoke(main, ["export", "--gradebook", str(gradebook)])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_batch_grades_everyone_and_a_rerun_grades_nothing(klass: Path, tmp_path: Path) -> None:
    book = tmp_path / "grades.sqlite"
    code, out = invoke("batch", str(klass), "--jobs", "2", "--gradebook", str(book), *ONLY)
    assert code == 0, out
    assert "5 submission(s)" in out and "5 graded now, 0 unchanged" in out
    assert "could not be run (scored 0, see their reports): dan, eve" in out
    assert "5/5" in out  # the progress line
    rows = {r["student"]: r for r in export_rows(book)}
    assert sorted(rows) == ["alice", "bob", "carol", "dan", "eve"]
    assert list(rows["alice"]) == ["student", "1.5(c) d_relu", "1.5(c) d_leaky_relu", "1.5(c) d_softplus",
                                   "1.5(c) d_gelu", "total"]
    assert rows["alice"]["total"] == "4" and rows["dan"]["total"] == "0" and rows["eve"]["total"] == "0"
    assert float(rows["bob"]["total"]) < 4  # naive exponentials overflow in softplus' derivative

    code, out = invoke("batch", str(klass), "--jobs", "2", "--gradebook", str(book), *ONLY)
    assert code == 0 and "0 graded now, 5 unchanged" in out
    (klass / "alice.py").write_text((klass / "alice.py").read_text() + "\n# edited\n")
    code, out = invoke("batch", str(klass), "--jobs", "2", "--gradebook", str(book), *ONLY)
    assert code == 0 and "1 graded now, 4 unchanged" in out


def test_the_seed_is_chosen_once_per_gradebook_and_can_be_overridden(klass: Path, tmp_path: Path) -> None:
    book = tmp_path / "grades.sqlite"
    invoke("batch", str(klass / "alice.py"), "--gradebook", str(book), *ONLY)
    with Gradebook(book) as gb:
        seed = int(gb.setting("seed") or -1)
        assert gb.student("hw1", "alice").report["seed"] == seed  # type: ignore[union-attr]
    code, out = invoke("batch", str(klass / "alice.py"), "--gradebook", str(book), "--seed", str(seed + 1), *ONLY)
    assert "1 graded now" in out  # a new seed is new work
    with Gradebook(book) as gb:
        assert gb.setting("seed") == str(seed + 1)


def test_a_spec_fix_regrades_only_the_problems_of_that_file(klass: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    problems = tmp_path / "hw1"
    shutil.copytree(BUNDLED, problems)
    (problems / "set.yaml").write_text((problems / "set.yaml").read_text().replace("examples:", "# examples:"))
    roster = find_submissions([klass / "alice.py", klass / "bob.py"])
    seen: list[tuple[str, ...]] = []
    real_grade = grader.batch._Grader.grade

    def spy(self, task):  # type: ignore[no-untyped-def]
        seen.append(task.problems)
        return real_grade(self, task)

    monkeypatch.setattr(grader.batch._Grader, "grade", spy)

    def run() -> tuple[str, ...]:
        with Gradebook(tmp_path / "g.sqlite") as gb:
            ps = load_problem_set(problems)
            return run_batch(roster, ps, gb, BatchOptions(seed=5, only="d_*", trials=2), jobs=1).graded

    assert run() == ("alice", "bob") and len(seen[0]) == 15  # every problem, the first time
    seen.clear()
    networks = problems / "12_networks.yaml"
    networks.write_text(networks.read_text() + "\n# a fix elsewhere\n")
    assert run() == ("alice", "bob")
    assert seen == [("reg", "mse", "bce", "relu_tanh")] * 2  # only the problems of the changed file
    seen.clear()
    assert run() == () and seen == []


def test_an_interrupted_batch_keeps_its_results_and_resumes(klass: Path, tmp_path: Path) -> None:
    roster = find_submissions([klass])
    ps = load_problem_set(BUNDLED)
    book = tmp_path / "g.sqlite"
    options = BatchOptions(seed=3, only="d_*", trials=2, plots=False)

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with Gradebook(book) as gb, pytest.raises(BatchInterrupted) as stopped:
        run_batch(roster, ps, gb, options, jobs=1, progress=stop_after_two)
    assert len(stopped.value.partial.records) == 2 and stopped.value.remaining == 3
    with Gradebook(book) as gb:
        assert len(gb.students("hw1")) == 2
        result = run_batch(roster, ps, gb, options, jobs=2)
    assert len(result.graded) == 3 and len(result.records) == 5
    with sqlite3.connect(book) as db:
        assert db.execute("SELECT COUNT(*) FROM students").fetchone()[0] == 5
        assert db.execute("SELECT COUNT(*) FROM parts").fetchone()[0] == 5 * len(problem_keys(ps))


def test_sigterm_stops_the_batch_and_says_how_to_resume(klass: Path, tmp_path: Path) -> None:
    for i in range(8):  # enough work that the batch is still running when it is stopped
        shutil.copy(EXAMPLES / "solution.py", klass / f"extra{i}.py")
        (klass / f"extra{i}.py").write_text((klass / f"extra{i}.py").read_text() + f"\n# {i}\n")
    book = tmp_path / "g.sqlite"
    grade = Path(sys.executable).parent / "grade"
    proc = subprocess.Popen([str(grade), "batch", str(klass), "--jobs", "2", "--gradebook", str(book),
                             "--only", "*softargmax*"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _saved(book):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted: every result above is saved; to resume, run again: grade batch" in out
    saved = _saved(book)
    assert 1 <= saved < 13
    code, out = invoke("batch", str(klass), "--jobs", "2", "--gradebook", str(book), "--only", "*softargmax*")
    assert code == 0 and f"{13 - saved} graded now, {saved} unchanged" in out


def _saved(book: Path) -> int:
    if not book.exists():
        return 0
    try:
        with sqlite3.connect(book) as db:
            return db.execute("SELECT COUNT(*) FROM students").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def test_batch_reports_duplicates_and_still_grades_the_others(klass: Path, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "solution.py", klass / "carol.py")  # carol also has carol/hw1.py
    code, out = invoke("batch", str(klass), "--gradebook", str(tmp_path / "g.sqlite"), *ONLY)
    assert code == 1
    assert "skipped: carol: several submissions" in out and "4 submission(s)" in out


def test_batch_writes_html_reports_for_everyone(klass: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    code, out = invoke("batch", str(klass), "--gradebook", str(tmp_path / "g.sqlite"), "--reports", str(reports),
                       *ONLY)
    assert code == 0, out
    assert sorted(p.name for p in reports.iterdir()) == ["alice.html", "bob.html", "carol.html", "dan.html",
                                                        "eve.html", "index.html"]
    assert "<svg" in (reports / "bob.html").read_text() and 'href="bob.html"' in (reports / "index.html").read_text()


def test_export_and_reports_need_a_gradebook(tmp_path: Path) -> None:
    code, out = invoke("export", "--gradebook", str(tmp_path / "none.sqlite"))
    assert code == 2 and "no gradebook at" in out and "grade batch" in out
