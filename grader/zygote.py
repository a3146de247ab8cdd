"""Workers forked from a zygote: a batch's way to start a sandbox worker without starting Python.

A fresh worker costs a bubblewrap sandbox, an interpreter and ``import numpy``
(about 0.1 s of CPU) before its first call. A batch pool process instead keeps one
**zygote** (``grader/zygote_worker.py``): a process started exactly like a worker
(the same bubblewrap view, environment, rlimits and a pids cgroup of its own) that
imports NumPy and the worker once and never runs student code. For each worker a
sandbox needs, the zygote forks a monitor that puts the new worker in new user,
mount, PID, IPC, UTS, network and cgroup namespaces with its own tmpfs, in the
sandbox's pids cgroup, without capabilities, and then serves the usual worker
protocol on pipes that only the grader and that worker hold.

``ZygoteLauncher`` is what a ``Sandbox`` calls (``grader.sandbox.WorkerLauncher``):
it keeps the zygote, replaces one that broke, and answers None (start a fresh
process, as without a zygote) where no zygote can give a worker its namespaces.
``ForkedWorker`` is a ``Worker`` whose exit status and CPU time come from its
monitor instead of ``waitpid``, so the sandbox tells timeouts, crashes and limits
apart exactly as for a fresh process.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from grader.isolation import SANDBOX_SCRATCH, Isolation
from grader.isolation import select as select_isolation
from grader.prestart import Booted, discard_parts, new_parts
from grader.process_cgroup import PidsCgroup
from grader.sandbox_process import (Limits, SandboxError, Worker, apply_rlimits, rlimit_plan, worker_environment)

READY_TIMEOUT = 30.0  # a zygote's start: bubblewrap, Python and NumPy on a cold disk
SPAWN_TIMEOUT = 10.0  # a monitor's namespaces, mounts and two forks: milliseconds, unless the host is swamped
KILL_WAIT = 2.0  # for a monitor to kill its worker and report; then it is killed itself
ZYGOTE_PIDS = 16  # bubblewrap, its init, the zygote, and monitors on their way out to their sandbox's cgroup
GIVE_UP_AFTER = 3  # launches in a row that no zygote could serve: this process starts fresh workers from then on
OUTPUT_KEPT = 4096  # bytes of a zygote's own output kept for an error message
LAYER = ("fresh namespaces per submission: each worker is forked from a pristine zygote (NumPy imported, no "
         "student code ever run) into new user, mount, PID, IPC, UTS, network and cgroup namespaces, with its own "
         "/tmp and /dev/shm, a new session keyring and no capabilities")

RlimitPlan = Sequence[tuple[int, int, int, str]]


class ZygoteError(SandboxError):
    """A zygote could not give a worker (it died, hung, or could not set up the namespaces)."""


class ForkedWorker(Worker):
    """A worker forked by a zygote: the pipes of a fresh worker; its end is reported by its monitor.

    ``pgid`` is the monitor's process id (the worker's own lives in its PID namespace).
    """

    def __init__(self, req: int, resp: int, out: int, status: socket.socket, monitor: int, max_output: int) -> None:
        self.req, self.resp, self.out = req, resp, out
        self._status = status
        self._monitor = os.pidfd_open(monitor)  # signals through it can never reach a recycled pid
        self._code: int | None = None
        self._ended = False
        self._attach(monitor, max_output)

    def _reap(self, timeout: float | None) -> int | None:
        """The worker's exit code once its monitor has reported it (None: still running, or never reported)."""
        if not self._ended:
            self._await_status(timeout)
        return self._code

    def _await_status(self, timeout: float | None) -> None:
        poller = select.poll()
        poller.register(self._status, select.POLLIN)
        if not poller.poll(None if timeout is None else timeout * 1000):
            return
        try:
            message = self._status.recv(64, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        self._ended = True  # an exit report, or the monitor gone without one (killed from outside)
        if message[:1] == b"E" and len(message) == 17:
            self._code, self.cpu_used = struct.unpack(">qd", message[1:])

    def kill(self) -> None:
        """Have the monitor kill the worker's PID namespace (or kill the monitor), then release the pipes."""
        if self.req < 0:
            return
        if not self._ended:
            try:
                self._status.send(b"k")
            except OSError:
                pass  # the monitor is gone already
            self._await_status(KILL_WAIT)
        if not self._ended:
            # its worker (the init of the namespace) has PR_SET_PDEATHSIG: it and the namespace die with it
            signal.pidfd_send_signal(self._monitor, signal.SIGKILL)
            self._await_status(KILL_WAIT)
        self._drain_output()
        self._out_open = False
        for fd in (self.req, self.resp, self.out, self._monitor):
            os.close(fd)
        self._status.close()
        self.req = self.resp = self.out = -1


class Zygote:
    """One zygote process under ``isolation`` (bubblewrap), with its control socket and pids cgroup."""

    def __init__(self, isolation: Isolation, limits: Limits) -> None:
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._cgroup = PidsCgroup.create(ZYGOTE_PIDS)
        # its CPU limit would end a long batch; every worker sets its own, and the zygote runs no student code
        plan = [p for p in rlimit_plan(limits) if p[0] != resource.RLIMIT_CPU]
        self._output, out_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                isolation.zygote_command(theirs.fileno(), limits.scratch_size), stdin=subprocess.DEVNULL,
                stdout=out_w, stderr=out_w, pass_fds=(theirs.fileno(),), cwd="/",
                env=worker_environment(Path(SANDBOX_SCRATCH)), start_new_session=True,
                preexec_fn=apply_rlimits(plan, self._cgroup.join if self._cgroup is not None else None))
        except (OSError, subprocess.SubprocessError) as exc:
            self._release()
            raise ZygoteError(f"could not start the zygote: {exc}") from exc
        finally:
            theirs.close()
            os.close(out_w)
        os.set_blocking(self._output, False)
        self.pid = self._proc.pid
        self._said = bytearray()
        self._ready = False

    def spawn(self, env: dict[str, str], plan: RlimitPlan, scratch_size: int, cgroup: PidsCgroup | None,
              max_output: int) -> ForkedWorker:
        """A new worker in fresh namespaces, set up and waiting for the ``load`` request; else ``ZygoteError``."""
        return self.request(env, plan, scratch_size, cgroup, max_output).worker()

    def request(self, env: dict[str, str], plan: RlimitPlan, scratch_size: int, cgroup: PidsCgroup | None,
                max_output: int) -> PendingWorker:
        """Ask for a new worker and return at once: the zygote sets it up while the caller goes on."""
        self._await_ready()
        ours, theirs = _pipes()
        status, their_status = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        status.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # the monitor's pid, as this process sees it
        header = json.dumps({"env": env, "rlimits": [[res, soft, hard] for res, soft, hard, _ in plan],
                             "scratch_size": scratch_size}).encode()
        try:
            fds = [*theirs, their_status.fileno()]
            if cgroup is not None:
                # opened here: the kernel checks the opener's rights when the monitor writes itself into it
                fds.append(os.open(cgroup.path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
            try:
                socket.send_fds(self._control, [header], fds)
            except OSError as exc:
                raise ZygoteError(f"the zygote is gone ({exc}){self._last_words()}") from exc
            finally:
                for fd in fds[4:]:
                    os.close(fd)
        except BaseException:
            _close(*ours)
            status.close()
            raise
        finally:
            _close(*theirs)
            their_status.close()
        return PendingWorker(self, ours, status, max_output)

    def close(self) -> None:
        """Stop the zygote and everything still in its namespaces; safe to call twice."""
        if self._control.fileno() < 0:
            return
        self._control.close()  # the zygote's cue to exit
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)  # bubblewrap leads the group; its namespaces die with it
        except (ProcessLookupError, PermissionError):
            pass
        self._proc.wait()
        self._release()

    def _release(self) -> None:
        self._control.close()
        if self._cgroup is not None:
            self._cgroup.remove()
        _close(self._output)

    def _await_ready(self) -> None:
        """Wait for the zygote's one ``ready`` (its imports done), the first time only."""
        if self._ready:
            return
        if not _readable(self._control, READY_TIMEOUT):
            raise ZygoteError(f"the zygote did not start within {READY_TIMEOUT:g} s{self._last_words()}")
        if self._control.recv(64) != b"ready":
            raise ZygoteError(f"the zygote ended while starting{self._last_words()}")
        self._ready = True

    def monitor_started(self, status: socket.socket) -> int:
        """The monitor's pid once it says its worker is ready; ``ZygoteError`` if it says why not or ends."""
        if not _readable(status, SPAWN_TIMEOUT):
            raise ZygoteError(f"the zygote did not fork a worker within {SPAWN_TIMEOUT:g} s{self._last_words()}")
        message, ancillary, _, _ = status.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        if message == b"S":
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    return struct.unpack("3i", data[:struct.calcsize("3i")])[0]
            raise ZygoteError("the zygote's monitor sent no credentials")
        if message[:1] == b"F":
            raise ZygoteError(f"the zygote could not set up a worker: {message[1:].decode('utf-8', 'replace')}")
        raise ZygoteError(f"the zygote's monitor ended before its worker started{self._last_words()}")

    def _last_words(self) -> str:
        try:
            while chunk := os.read(self._output, 1 << 16):
                self._said = (self._said + chunk)[-OUTPUT_KEPT:]
        except (BlockingIOError, OSError):
            pass
        text = self._said.decode("utf-8", "replace").strip()
        return f": {text}" if text else ""


class PendingWorker:
    """A worker the zygote was asked for and may still be setting up: ``worker`` waits for it."""

    def __init__(self, zygote: Zygote, ours: list[int], status: socket.socket, max_output: int) -> None:
        self._zygote, self._ours, self._status, self._max_output = zygote, ours, status, max_output

    def worker(self) -> ForkedWorker:
        """The worker once its monitor says it is ready; ``ZygoteError`` if it says why not, or ends, or hangs."""
        try:
            monitor = self._zygote.monitor_started(self._status)
            return ForkedWorker(*self._ours, self._status, monitor, self._max_output)
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """Close this side of its pipes and status socket (once): a monitor that finds them closed kills its worker."""
        ours, self._ours = self._ours, []  # a descriptor closed twice could by then be another's
        _close(*ours)
        self._status.close()


@dataclass(frozen=True)
class _Spare:
    """The next sandbox's worker, asked for while this one grades: its limits, cgroup and scratch go with it."""

    limits: Limits
    cgroup: PidsCgroup | None
    scratch: Path
    pending: PendingWorker

    def discard(self) -> None:
        self.pending.abandon()
        discard_parts(None, self.scratch, self.cgroup)  # the cgroup's removal kills whatever was set up


class ZygoteLauncher:
    """The ``WorkerLauncher`` of a batch pool process: forks every sandbox's workers from one zygote.

    ``launch`` answers None (the sandbox then starts a fresh process) for a sandbox under
    other isolation, when the first zygote cannot give a worker its namespaces (this host
    cannot; checked once), and after ``GIVE_UP_AFTER`` launches in a row that failed.
    A zygote that dies or hangs is replaced by the next launch.
    """

    def __init__(self, isolation: Isolation, limits: Limits = Limits()) -> None:
        self._isolation, self._limits = isolation, limits
        self._zygote: Zygote | None = None
        self.zygotes_started = 0  # one, unless a zygote died or broke and was replaced
        self._served = 0  # workers forked so far
        self._failed_in_a_row = 0
        self._last_forked = False
        self._spare: _Spare | None = None
        self.gave_up: str | None = None  # why this process starts fresh workers only, once it does

    @property
    def layers(self) -> tuple[str, ...]:
        """The zygote's layer, when the last worker launched came from one."""
        return (LAYER,) if self._last_forked else ()

    @property
    def zygote_process(self) -> int | None:
        """The process id of the running zygote's bubblewrap (it leads the zygote's process group), if any."""
        return self._zygote.pid if self._zygote is not None else None

    def start(self) -> None:
        """Start the zygote now, so that it imports NumPy while the caller prepares the first grade."""
        if self._zygote is None and self.gave_up is None and self._isolation.mode == "bwrap":
            try:
                self._zygote = Zygote(self._isolation, self._limits)
            except ZygoteError as exc:
                self.gave_up = str(exc)
                return
            self.zygotes_started += 1

    def launch(self, isolation: Isolation, limits: Limits, plan: RlimitPlan, cgroup: PidsCgroup | None
               ) -> ForkedWorker | None:
        """A forked worker for a sandbox with these settings, or None: start a fresh one instead."""
        self._last_forked = False
        if self.gave_up is not None or isolation != self._isolation or isolation.mode != "bwrap":
            return None
        env = worker_environment(Path(SANDBOX_SCRATCH))
        why = ""
        for _ in range(2):  # a zygote that died since the last launch is replaced at once
            try:
                self.start()
                if self._zygote is None:
                    return None
                worker = self._zygote.spawn(env, plan, limits.scratch_size, cgroup, limits.max_output)
            except ZygoteError as exc:
                why = str(exc)
                self._discard()
                if not self._served:
                    break  # the first worker of this process: the host cannot do it, a new zygote would not either
                continue
            self._served += 1
            self._failed_in_a_row, self._last_forked = 0, True
            return worker
        self._failed_in_a_row += 1
        if not self._served or self._failed_in_a_row >= GIVE_UP_AFTER:
            self.gave_up = why
        return None

    def take_booted(self, isolation: Isolation | None, limits: Limits) -> Booted | None:
        """The worker asked for while the last sandbox graded, if it fits this one; the next is asked for now.

        A pool process grades one submission after another, and setting a worker up is mostly
        waiting on the kernel (joining its pids cgroup waits out an RCU grace period, 10-20 ms
        here): asked for one sandbox ahead, that wait passes while the previous one grades.
        """
        spare, self._spare = self._spare, None
        fits = spare is not None and spare.limits == limits and isolation in (None, self._isolation)
        booted = self._adopt(spare) if spare is not None and fits else None
        if spare is not None and not fits:
            spare.discard()
        if isolation in (None, self._isolation):
            self._spare = self._ask(limits)
        return booted

    def close(self) -> None:
        """Stop the zygote and drop the worker asked for ahead; safe to call twice."""
        self._discard()
        self.drop_spare()

    def drop_spare(self) -> None:
        """Kill the worker asked for ahead, if any, and remove its cgroup and scratch: the next sandbox boots its own."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()

    def _ask(self, limits: Limits) -> _Spare | None:
        if self.gave_up is not None or self._zygote is None:
            return None  # the first sandbox starts the zygote through launch(), which also finds out if it can
        cgroup, scratch = new_parts(limits)
        try:
            pending = self._zygote.request(worker_environment(Path(SANDBOX_SCRATCH)), rlimit_plan(limits),
                                           limits.scratch_size, cgroup, limits.max_output)
        except ZygoteError:
            discard_parts(None, scratch, cgroup)
            self._discard()  # the next launch starts another zygote
            return None
        return _Spare(limits, cgroup, scratch, pending)

    def _adopt(self, spare: _Spare) -> Booted | None:
        try:
            worker = spare.pending.worker()
        except ZygoteError:
            spare.discard()
            self._discard()
            return None
        self._served += 1
        self._failed_in_a_row, self._last_forked = 0, True
        return Booted(self._isolation, spare.limits, spare.cgroup, spare.scratch, worker)

    def _discard(self) -> None:
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None


def start_launcher() -> ZygoteLauncher | None:
    """A launcher whose zygote is starting now, where this host's isolation is bubblewrap; else None."""
    try:
        isolation = select_isolation()
    except SandboxError:
        return None  # every sandbox will report the same error itself
    if isolation.mode != "bwrap":
        return None  # unshare and process workers keep starting fresh (GRADE_ISOLATION, or no bubblewrap)
    launcher = ZygoteLauncher(isolation)
    launcher.start()
    return launcher


def _pipes() -> tuple[list[int], list[int]]:
    """([request writer, response reader, output reader], [request reader, response writer, output writer])."""
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    out_r, out_w = os.pipe()
    return [req_w, resp_r, out_r], [req_r, resp_w, out_w]


def _readable(sock: socket.socket, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while (left := deadline - time.monotonic()) > 0:
        if poller.poll(left * 1000):
            return True
    return False


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
