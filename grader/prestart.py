"""Starting a sandbox worker, and one started early: while ``grade`` is still importing.

Booting a worker (the isolation probe, bubblewrap, a fresh Python, NumPy) takes
about as long as the grader's own imports, and none of it depends on the
submission: the source and the forbidden modules travel later, in the load
request. So ``grade FILE`` calls ``begin`` before it imports anything heavy, a
background thread boots one worker with the default limits, and the first
``Sandbox`` built with those limits adopts it (``take``) instead of starting its
own. Isolation is the same as for any worker: the thread runs exactly what
``Sandbox`` would run. A worker that nobody adopts (the file did not compile,
nothing matched ``--only``) is killed and its scratch removed at exit.

This module imports nothing that imports NumPy: ``begin`` must not wait for it.
"""

from __future__ import annotations

import atexit
import functools
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from grader.isolation import Isolation, select
from grader.process_cgroup import PidsCgroup
from grader.sandbox_process import Limits, Worker, apply_rlimits, release, rlimit_plan, worker_environment

BOOT_SWITCH_INTERVAL = 0.0005  # s; Python's default is 0.005


@dataclass(frozen=True)
class Booted:
    """A worker started before its submission was known, with everything a ``Sandbox`` needs to adopt it."""

    isolation: Isolation
    limits: Limits
    cgroup: PidsCgroup | None
    scratch: Path  # holds the worker's working directory, run-0
    worker: Worker


def start_worker(isolation: Isolation, limits: Limits, cgroup: PidsCgroup | None, workdir: Path) -> Worker:
    """A new worker process under ``isolation`` and ``limits``, in ``workdir``, not loaded yet."""
    command = functools.partial(isolation.command, scratch_size=limits.scratch_size)
    join = cgroup.join if cgroup is not None else None
    return Worker(command, worker_environment(isolation.home(workdir)), workdir,
                  apply_rlimits(rlimit_plan(limits), join), limits.max_output)


def boot(limits: Limits) -> Booted:
    """Everything of a sandbox that comes before its submission: isolation, cgroup, scratch, a started worker."""
    isolation = select()
    cgroup, scratch = new_parts(limits)
    try:
        return Booted(isolation, limits, cgroup, scratch, start_worker(isolation, limits, cgroup, scratch / "run-0"))
    except BaseException:
        discard_parts(None, scratch, cgroup)
        raise


def new_parts(limits: Limits) -> tuple[PidsCgroup | None, Path]:
    """A new sandbox's pids cgroup (None where none can be made) and scratch, with its first working directory."""
    cgroup = PidsCgroup.create(limits.processes)
    scratch = Path(tempfile.mkdtemp(prefix="grader-sandbox-"))
    (scratch / "run-0").mkdir()
    return cgroup, scratch


def discard_parts(worker: Worker | None, scratch: Path, cgroup: PidsCgroup | None) -> None:
    """Kill ``worker`` and whatever it started, and remove ``scratch`` and ``cgroup``."""
    release([worker] if worker is not None else [], scratch, cgroup)


class _Early:
    """The one worker booted early in this process, until it is adopted or discarded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.ready = threading.Event()  # boot finished, with a worker or without
        self.exiting = threading.Event()  # the process is exiting: the booting thread may end
        self.booted: Booted | None = None

    def begin(self, limits: Limits) -> None:
        with self.lock:
            self.thread = threading.Thread(target=self._boot, args=(limits,), name="grader-prestart", daemon=True)
            self.thread.start()
        atexit.register(self.discard)

    def _boot(self, limits: Limits) -> None:
        # the main thread is importing meanwhile and holds the GIL for up to the switch interval each time
        # this thread wakes (after each step of the probe and the start); a short interval lets it go on
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, BOOT_SWITCH_INTERVAL))
        try:
            self.booted = boot(limits)
        except Exception:  # noqa: BLE001 - the Sandbox that would adopt it starts its own and reports the cause
            self.booted = None
        finally:
            sys.setswitchinterval(interval)
            self.ready.set()
        # bubblewrap's --die-with-parent is PR_SET_PDEATHSIG, which follows the *thread* that forked
        # bwrap: were this thread to end, the worker would be SIGKILLed mid-grade (when bwrap set it up
        # before the thread ended). So the thread lives as long as the process.
        self.exiting.wait()

    def take(self, limits: Limits) -> Booted | None:
        booted = self._pop()
        if booted is not None and booted.limits != limits:
            discard_parts(booted.worker, booted.scratch, booted.cgroup)
            return None
        return booted

    def discard(self) -> None:
        booted = self._pop()
        if booted is not None:
            discard_parts(booted.worker, booted.scratch, booted.cgroup)
        self.exiting.set()

    def _pop(self) -> Booted | None:
        with self.lock:
            if self.thread is None:
                return None
            self.ready.wait()
            booted, self.booted = self.booted, None
            return booted


_EARLY = _Early()  # the latest; an earlier one that nobody took is discarded at exit


def begin(limits: Limits | None = None) -> None:
    """Boot a worker with ``limits`` (default: the defaults) in the background, unless one is waiting already."""
    global _EARLY
    if _EARLY.thread is not None and not (_EARLY.ready.is_set() and _EARLY.booted is None):
        return  # booting, or booted and not taken yet
    _EARLY = _Early()
    _EARLY.begin(limits or Limits())


def take(limits: Limits) -> Booted | None:
    """The worker ``begin`` booted, if there is one and it has ``limits``; each is handed out once."""
    return _EARLY.take(limits)
