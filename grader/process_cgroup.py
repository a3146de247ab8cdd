"""A pids cgroup around one sandbox's workers: a cap on their process count, and a list of them all.

RLIMIT_NPROC does not bind root, and a PID namespace kills a fork bomb only when
the worker dies, not while it multiplies. A pids cgroup does both: ``pids.max``
makes ``fork`` fail past the cap, and ``cgroup.procs`` lists every process the
worker started, even one that left the worker's process group or session, so
that all of them can be killed. It needs a writable pids hierarchy (cgroup v1's
``pids`` controller, or a v2 cgroup that delegates ``pids`` to its children),
which a root grader on most Linux hosts has; elsewhere ``create`` returns None and
the report says so.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
KILL_ROUNDS = 200  # each round kills every member; members forked mid-round are caught by the next
REMOVE_WAIT = 2.0  # seconds for killed members to be reaped before the cgroup can be removed


class PidsCgroup:
    """One pids cgroup; workers join it between fork and exec, and ``kill_all`` empties it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, max_pids: int) -> PidsCgroup | None:
        """A new cgroup allowing ``max_pids`` processes (threads count), or None where there is none to make."""
        for parent in _writable_parents():
            path = parent / f"grader-sandbox-{os.urandom(6).hex()}"  # not uuid: it imports platform (3 ms)
            try:
                path.mkdir()
            except OSError:
                continue
            try:
                (path / "pids.max").write_text(str(max_pids))
                return cls(path)
            except OSError:
                _rmdir(path)
        return None

    def join(self) -> None:
        """Move the calling process into the cgroup; the ``preexec_fn`` calls this in a new worker."""
        fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def members(self) -> list[int]:
        """The processes in the cgroup now."""
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def kill_all(self) -> None:
        """SIGKILL every member until none is left alive (``pids.max`` bounds how many can appear meanwhile)."""
        for _ in range(KILL_ROUNDS):
            pids = self.members()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.001)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup; safe to call twice."""
        self.kill_all()
        deadline = time.monotonic() + REMOVE_WAIT
        while self.path.exists() and not _rmdir(self.path) and time.monotonic() < deadline:
            time.sleep(0.01)  # killed members count until they are reaped


def _writable_parents() -> list[Path]:
    """Where this process may create a pids cgroup: v1's pids hierarchy, or its own v2 cgroup if it delegates."""
    parents = []
    v1 = CGROUP_ROOT / "pids"
    if (v1 / "cgroup.procs").exists() and os.access(v1, os.W_OK):
        parents.append(v1)
    own = _own_v2_cgroup()
    if own is not None and "pids" in _read(own / "cgroup.subtree_control").split() and os.access(own, os.W_OK):
        parents.append(own)
    return parents


def _own_v2_cgroup() -> Path | None:
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        if line.startswith("0::"):
            for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                if (root / "cgroup.controllers").exists():
                    return root / line[3:].lstrip("/")
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
