"""Hostile submissions: each attack costs its own function only, and leaves nothing behind.

Every file in ``submissions/`` defines ``attack`` (where it misbehaves) and ``innocent``
(which must keep its point), and is graded end to end against ``problems/`` under the
isolation this host offers (``GRADE_ISOLATION`` forces a weaker one), once with fresh
worker processes and once with workers forked from a batch's zygote (``grader.zygote``,
under bubblewrap only): both must give the same outcome. After each grade: no process
the submission started is alive, the sandbox's scratch directory is gone, and nothing
was written outside it where the isolation restricts the file system.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from grader.grading import GradeResult, grade
from grader.isolation import select
from grader.process_cgroup import PidsCgroup
from grader.sandbox import Limits, launching_with
from grader.spec import load_problem_set
from grader.zygote import LAYER, ZygoteLauncher

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SUBMISSIONS = HERE / "submissions"
PROBLEMS = load_problem_set(HERE / "problems")
SMALL = Limits(load_timeout=1.0, memory=512 * 2**20, cpu_seconds=10, file_size=2**20, max_output=64 * 2**10,
               max_output_elements=10**6, max_restarts=5, processes=32)
MODE = select().mode
CONFINED_FILES = MODE == "bwrap"  # the only mode whose file-system view hides and protects the host's files
OWN_NETWORK = MODE in ("bwrap", "unshare")


@dataclass(frozen=True)
class Outcome:
    status: str  # the attack's status; innocent always passes
    message: str = ""  # a part of the attack's message
    note: str = ""  # a part of the submission's notes (load issues)


def _confined(ok: bool, message: str) -> Outcome:
    """An attack that answers right only when the isolation stopped it."""
    return Outcome("passed") if ok else Outcome("failed", message)


OUTCOMES = {
    "infinite_loop": Outcome("timeout", "did not return within 1 s"),
    "ignores_signals": Outcome("timeout", "did not return within 1 s"),
    "infinite_loop_at_import": Outcome("passed", note="loading hit the 1 s limit; it was skipped"),
    "memory_bomb": Outcome("error", "ran out of memory (limit 512 MiB)"),
    "fork_bomb": Outcome("timeout", "did not return within 1 s"),
    "background_process": Outcome("passed"),
    "daemon": Outcome("passed"),
    "huge_stdout": Outcome("passed"),
    "huge_stderr": Outcome("passed"),
    # Python ignores SIGXFSZ, so the limit shows up as an OSError in the student's own frame
    "huge_file": Outcome("error", "OSError: [Errno 27] File too large"),
    "writes_outside": _confined(CONFINED_FILES, "expected"),
    "remounts_view": _confined(CONFINED_FILES, "expected"),
    # elsewhere only root may write it, so the attack is stopped only for another user
    "writes_sysctl": _confined(CONFINED_FILES or os.geteuid() != 0, "expected"),
    "reads_grader": _confined(CONFINED_FILES, "expected"),
    "network": _confined(OWN_NETWORK, "expected"),
    "sys_exit_at_import": Outcome("passed", note="called sys.exit(3) while loading"),
    "os_exit_at_import": Outcome("passed", note="the process exited with code 5"),
    "sys_exit_in_call": Outcome("error", "called sys.exit(2) during the call"),
    "os_exit_in_call": Outcome("error", "the process exited with code 9 during the call"),
    "exception_at_import": Outcome("passed", note="RuntimeError: boom at import"),
    "patches_numpy": Outcome("passed"),
    "patches_builtins": Outcome("passed"),
    "lying_ndarray": Outcome("failed"),
    "raises_on_conversion": Outcome("error", "cannot be converted to an array (RuntimeError: no array for you)"),
    "huge_return": Outcome("error", "with 10000000 elements: output too large"),
    "non_numeric": Outcome("error", "the returned value is a dict, not a number or an array of numbers"),
    "forbidden_dynamic": Outcome("forbidden", "imports 'torch', which this problem set forbids"),
    "forbidden_dunder": Outcome("forbidden", "imports 'jax', which this problem set forbids"),
    "forbidden_at_import": Outcome("passed", note="imports 'autograd', which this problem set forbids"),
    "removes_guard": Outcome("forbidden", "uses 'torch', which this problem set forbids"),
    "garbage_on_pipe": Outcome("error", "the worker sent malformed data"),
}


@pytest.fixture
def scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sandboxes make their scratch directories here, so that leftovers can be seen."""
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def cgroups(monkeypatch: pytest.MonkeyPatch) -> list[PidsCgroup]:
    """The pids cgroups the sandboxes of this test make (none where the host has none)."""
    made: list[PidsCgroup] = []
    original = PidsCgroup.create

    def create(max_pids: int) -> PidsCgroup | None:
        cgroup = original(max_pids)
        if cgroup is not None:
            made.append(cgroup)
        return cgroup

    monkeypatch.setattr("grader.sandbox.PidsCgroup.create", create)
    return made


@pytest.fixture(scope="module")
def zygote() -> Iterator[ZygoteLauncher]:
    """One zygote for the module, as a batch pool process keeps one for all its submissions.

    Started before any test's fixtures: its own cgroup is not one a test should find left behind.
    """
    launcher = ZygoteLauncher(select())
    launcher.start()
    yield launcher
    launcher.close()


@pytest.fixture(params=["fresh", "zygote"])
def workers(request: pytest.FixtureRequest, zygote: ZygoteLauncher) -> Iterator[ZygoteLauncher | None]:
    """How the sandbox starts its workers: fresh processes, or forked from the module's zygote."""
    if request.param == "fresh":
        yield None
        return
    if MODE != "bwrap":
        _skip_or_fail("a zygote runs under bubblewrap only")
    zygote.drop_spare()
    # as in a batch, the sandbox adopts a worker asked for ahead: made here, after the cgroups are being recorded
    assert zygote.take_booted(None, SMALL) is None
    with launching_with(zygote):
        yield zygote


@pytest.fixture
def server() -> Iterator[socket.socket]:
    """A listening socket on the grader's loopback, for the network attack."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        yield sock


def test_every_submission_has_an_outcome() -> None:
    assert sorted(p.stem for p in SUBMISSIONS.glob("*.py")) == sorted(OUTCOMES)
    assert len(OUTCOMES) >= 20


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_attack_costs_only_its_own_function(name: str, tmp_path: Path, scratch_root: Path, server: socket.socket,
                                            cgroups: list[PidsCgroup], workers: ZygoteLauncher | None) -> None:
    if name == "fork_bomb":
        _require_process_cap()
    marker, target = f"hostile-stray-{uuid.uuid4().hex}", tmp_path / "escaped.txt"
    source = (SUBMISSIONS / f"{name}.py").read_text()
    for key, value in {"@MARKER@": marker, "@TARGET@": str(target), "@REPO@": str(REPO),
                       "@PORT@": str(server.getsockname()[1])}.items():
        source = source.replace(key, value)
    path = tmp_path / f"{name}.py"
    path.write_text(source)

    result = grade(path, PROBLEMS, seed=1, limits=SMALL)

    attack, innocent = _statuses(result)
    expected = OUTCOMES[name]
    if workers is not None:
        assert LAYER in result.layers and workers.gave_up is None  # forked, not a fallback to a fresh process
        assert workers.zygotes_started == 1  # no attack reached the zygote
    assert (attack.status, innocent.status, innocent.score) == (expected.status, "passed", 1.0), attack.message
    assert expected.message in attack.message
    assert expected.note in "\n".join(result.notes)
    if name == "daemon" and not cgroups and MODE == "process":
        # nothing on this host contains a process in its own session: the report must say so
        assert any(layer.startswith("missing: process containment") for layer in result.layers)
        _kill(_strays(marker))
    if workers is not None:
        workers.drop_spare()  # the worker booted ahead for the next sandbox: not one this test left
    assert _strays(marker) == []
    assert [c.path for c in cgroups if c.path.exists()] == []  # removed, so nothing was left in them
    assert list(scratch_root.iterdir()) == []  # every scratch directory was removed
    if CONFINED_FILES:
        assert not target.exists()
    if OWN_NETWORK:
        with pytest.raises(BlockingIOError):
            server.accept()  # the attack never reached the grader's loopback


def test_the_report_names_the_protections_that_are_missing(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text((SUBMISSIONS / "non_numeric.py").read_text())
    layers = grade(path, PROBLEMS, seed=1, limits=SMALL).layers
    missing = [layer for layer in layers if layer.startswith("missing: ")]
    assert any("file-system view:" in layer for layer in layers)
    assert (not CONFINED_FILES) == any("file-system view: not restricted" in m for m in missing)
    assert (not OWN_NETWORK) == any("network isolation" in m for m in missing)


# --- helpers --------------------------------------------------------------------------

def _statuses(result: GradeResult) -> tuple:
    by_function = {o.function: o for o in result.outputs}
    return by_function["attack"], by_function["innocent"]


def _require_process_cap() -> None:
    """A fork bomb is safe to run only where the process count is capped (a pids cgroup)."""
    cgroup = PidsCgroup.create(1)
    if cgroup is not None:
        cgroup.remove()
        return
    _skip_or_fail("no writable pids cgroup here: a fork bomb would not be bounded")


def _skip_or_fail(why: str) -> None:
    """Skip a test this host cannot run; on CI, which installs what the tests need, fail it."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def _strays(marker: str) -> list[int]:
    """Live processes that carry ``marker``: the ones a submission started with it."""
    deadline = time.monotonic() + 2.0
    while (found := _live_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.01)  # killed processes are gone once the kernel has delivered SIGKILL
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def _live_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline:
            found.append(int(proc.name))
    return found
