"""The zygote: runs INSIDE the bubblewrap sandbox and forks one fresh worker per submission.

Started by ``grader.zygote`` as ``python -I -S zygote_worker.py CONTROL_FD PACKAGES_DIR``
under the same bubblewrap view, environment, rlimits and pids cgroup as a worker
(``grader/worker.py``, which sits beside this file in the view). It imports NumPy
and the worker once, says ``ready`` on the control socket, and then only forks: it
never runs student code and never sees a submission (sources and arguments go
straight to the forked worker over pipes it does not keep). Like the worker it
imports nothing of the grader.

Per spawn request (a JSON header and the child's file descriptors, passed with
``SCM_RIGHTS``) three processes are made:

- the **monitor** (forked from the zygote): joins the submission's pids cgroup,
  creates new user, mount, PID, IPC, UTS, network and cgroup namespaces, mounts a
  fresh size-capped tmpfs on ``/tmp`` and ``/dev/shm`` and makes the rest of the
  view read-only, then forks the init. It tells the grader ``started`` once the
  worker is ready, kills the init when the grader asks (or goes away), and reports
  the worker's exit status and the CPU time of everything in the namespace.
- the **init**, PID 1 of the new PID namespace: mounts its own ``/proc`` and forks
  the worker; when the worker ends it reports its status and exits, which kills
  every process left in the namespace (as the shell does under bubblewrap: the
  worker itself is not PID 1, so signals act on it as on any process).
- the **worker**: a fresh session keyring, the scrubbed environment, every
  inherited descriptor closed but its own pipes, the rlimits, no capabilities at
  all (bounding set included) and no_new_privs; then ``worker.run`` as usual.

Status messages to the grader, one per datagram: ``S`` started; ``F`` + text: the
worker could not be set up (no student code ran); ``E`` + ``>qd``: the worker's exit
code (negative: killed by that signal) and the CPU seconds used.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import importlib.util
import json
import os
import platform
import resource
import select
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any, NoReturn

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy is imported, as in the worker

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
NAMESPACES = (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET
              | CLONE_NEWCGROUP)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 4, 24, 28
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
SECUREBITS_LOCKED = 0xEF  # noroot, no_setuid_fixup, no_cap_ambient_raise, each locked; keep_caps locked off
CAPABILITY_VERSION_3 = 0x20080522
CAP_SETFCAP = 31
KEYCTL = {"x86_64": 250, "aarch64": 219}  # the keyctl syscall; glibc has no wrapper
KEYCTL_JOIN_SESSION_KEYRING = 1
ENOSYS = 38
# what bubblewrap covers in a /proc it mounts: kernel tunables that root's uid could write
PROC_COVERS = ("sys", "sysrq-trigger", "irq", "bus")
STATVFS_TO_MS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                 (os.ST_NOATIME, 1024), (os.ST_NODIRATIME, 2048), (os.ST_RELATIME, 1 << 21))
IFREQ = "16sH22x"  # struct ifreq: the interface name and its flags, 40 bytes in all
SETUP_FAILED = 71  # exit code of a process that could not set the worker up

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class SetupError(Exception):
    """A step that must succeed before any student code runs did not."""


# --- system calls -----------------------------------------------------------------

def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = (lambda s: None if s is None else s.encode())
    _check(_libc.mount(encode(source), target.encode(), encode(fstype), flags, encode(data)), f"mount {target}")


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    _check(_libc.prctl(option, arg, arg3, 0, 0), f"prctl({option})")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _remount_read_only(path: str) -> None:
    # a bind remount must repeat the flags the mount is locked with (nosuid, nodev, atime) or it is refused
    kept = os.statvfs(path).f_flag
    flags = sum(ms for st, ms in STATVFS_TO_MS if kept & st)
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


# --- the zygote -------------------------------------------------------------------

def uncover_proc() -> None:
    """Unmount what bubblewrap mounted over parts of the zygote's /proc.

    The kernel lets a user namespace mount a new procfs only while an existing one is
    fully visible; every worker mounts its own and covers those parts again.
    """
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith("/proc/")), key=len, reverse=True):
        _libc.umount2(point.encode(), MNT_DETACH)  # where it fails, the first worker fails and says why


def serve_spawns(control: socket.socket, worker: Any) -> None:
    """Fork a monitor for each spawn request until the grader closes the control socket."""
    # the handlers the interpreter started with (None: not Python's to set), given back to every worker
    defaults = {sig: handler for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
                if (handler := signal.getsignal(sig)) is not None}
    signal.signal(signal.SIGCHLD, _reap_monitors)
    gc.freeze()  # the imported modules stay out of the collector: fewer pages copied in every fork
    control.send(b"ready")
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 16, 8)
        except InterruptedError:
            continue
        if not data:
            return
        try:
            if len(fds) < 4:
                raise ValueError(f"{len(fds)} descriptors, expected 4 or 5")
            request = json.loads(data)
            if os.fork() == 0:
                monitor(request, fds, control, worker, defaults)
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the zygote
            os.write(2, f"zygote: spawn failed: {type(exc).__name__}: {exc}\n".encode())
        finally:
            for fd in fds:
                os.close(fd)


def _reap_monitors(*_: object) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


# --- the monitor: outside the new PID namespace --------------------------------------

def monitor(request: dict, fds: list[int], control: socket.socket, worker: Any, defaults: dict) -> NoReturn:
    """Set up the namespaces, fork the init, then watch it; never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    control.close()
    req, resp, out, status_fd = fds[:4]
    status = socket.socket(fileno=status_fd)
    try:
        for fd in (1, 2):
            os.dup2(out, fd)  # a failure's message lands in the submission's captured output
        os.close(out)
        os.setsid()
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the zygote
        if len(fds) > 4:
            os.write(fds[4], b"0")  # joins the submission's pids cgroup; the grader opened the file
            os.close(fds[4])
        enter_namespaces(request["scratch_size"])
        ready_r, ready_w = os.pipe()
        report_r, report_w = os.pipe()
        init_pid = os.fork()
        if init_pid == 0:
            status.close()
            os.close(ready_r)
            os.close(report_r)
            init(request, req, resp, ready_w, report_w, worker, defaults)
        for fd in (req, resp, ready_w, report_w):
            os.close(fd)
        _watch(status, init_pid, ready_r, report_r)
    except BaseException as exc:  # noqa: BLE001 - whatever failed, the grader hears why
        _send(status, b"F" + f"{type(exc).__name__}: {exc}".encode()[:2000])
        os._exit(SETUP_FAILED)
    os._exit(0)


def enter_namespaces(scratch_size: int) -> None:
    """New namespaces for everything the worker does, with the root of the new user namespace mapped to ours."""
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(NAMESPACES), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _loopback_up()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here propagates back to the zygote
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_size},mode=0755")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={scratch_size},mode=1777")
    # the zygote's root and /dev are tmpfs shared by every worker it forks: read-only, nothing passes through them
    _remount_read_only("/")
    _remount_read_only("/dev")


def _loopback_up() -> None:
    # a fresh network namespace has its loopback down; a worker under bubblewrap has it up
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack(IFREQ, fcntl.ioctl(sock, siocgifflags, struct.pack(IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack(IFREQ, b"lo", flags | iff_up))


def _watch(status: socket.socket, init_pid: int, ready_r: int, report_r: int) -> None:
    """Report the worker started (or why not), kill the init on request, report how the worker ended."""
    ready = _read_all(ready_r)
    if ready == b"ok":
        _send(status, b"S")
        poller = select.poll()
        poller.register(status, select.POLLIN)
        poller.register(os.pidfd_open(init_pid), select.POLLIN)
        events = poller.poll()
        if any(fd == status.fileno() for fd, _ in events):  # a kill request, or the grader went away
            os.kill(init_pid, signal.SIGKILL)  # PID 1 of the namespace: every process in it dies too
    else:
        os.kill(init_pid, signal.SIGKILL)
    _, code, usage = os.wait4(init_pid, 0)
    report = _read_all(report_r)
    if ready != b"ok":
        _send(status, b"F" + (ready or b"the worker ended during its set-up"))
        return
    worker_code = struct.unpack(">q", report)[0] if len(report) == 8 else -signal.SIGKILL
    _send(status, b"E" + struct.pack(">qd", worker_code, usage.ru_utime + usage.ru_stime))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _send(status: socket.socket, message: bytes) -> None:
    try:
        status.send(message)
    except OSError:
        pass  # the grader is gone: nobody left to tell


# --- the init: PID 1 of the new namespace ------------------------------------------

def init(request: dict, req: int, resp: int, ready_w: int, report_w: int, worker: Any, defaults: dict) -> NoReturn:
    """Mount /proc, fork the worker, wait for it, report its status and exit (ending the namespace)."""
    try:
        os.setsid()  # the worker's kill(0, ...) reaches this session only
        for sig in defaults:
            signal.signal(sig, signal.SIG_DFL)  # PID 1 ignores every signal it has no handler for
        mount_proc()
        worker_pid = os.fork()
        if worker_pid == 0:
            os.close(report_w)
            become_worker(request, req, resp, ready_w, worker, defaults)
        for fd in (req, resp, ready_w):
            os.close(fd)
        while True:
            pid, code = os.waitpid(-1, 0)  # orphans are reparented here and reaped as they go
            if pid == worker_pid:
                break
        if os.WIFSIGNALED(code) and os.WTERMSIG(code) not in (signal.SIGINT, signal.SIGPIPE):
            # what the shell that is a fresh worker's init prints to the worker's output, e.g. "Killed"
            _write_fd(2, f"{signal.strsignal(os.WTERMSIG(code))}{' (core dumped)' * os.WCOREDUMP(code)}\n")
        os.write(report_w, struct.pack(">q", -os.WTERMSIG(code) if os.WIFSIGNALED(code) else os.WEXITSTATUS(code)))
    except BaseException as exc:  # noqa: BLE001
        _write_fd(ready_w, f"{type(exc).__name__}: {exc}")
    os._exit(0)


def mount_proc() -> None:
    """A /proc of the new PID namespace, with the kernel's tunables read-only as bubblewrap leaves them."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_COVERS:
        path = f"/proc/{name}"
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _remount_read_only(path)


def _write_fd(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode()[:2000])
    except OSError:
        pass


# --- the worker -----------------------------------------------------------------

def become_worker(request: dict, req: int, resp: int, ready_w: int, worker: Any, defaults: dict) -> NoReturn:
    """Drop everything the zygote had that a student must not, then serve the submission."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _join_new_session_keyring()
        os.chdir("/tmp")
        os.environ.clear()
        os.environ.update(request["env"])
        _close_all_but({0, 1, 2, req, resp, ready_w})
        for res, soft, hard in request["rlimits"]:
            resource.setrlimit(res, (soft, hard))
        drop_capabilities()
        _prctl(PR_SET_DUMPABLE, 1)  # as a freshly started worker is; the init stays undumpable
        _fresh_random_state()
        for sig, handler in defaults.items():
            signal.signal(sig, handler)  # the interpreter's own start-up handlers, as in a fresh worker
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        os.write(ready_w, b"ok")
        os.close(ready_w)
    except BaseException as exc:  # noqa: BLE001 - no student code has run: say why and stop
        _write_fd(ready_w, f"{type(exc).__name__}: {exc}")
        os._exit(SETUP_FAILED)
    worker.run(req, resp)
    os._exit(0)


def _join_new_session_keyring() -> None:
    # a key left in a shared session keyring would reach the next worker; the new user namespace already gives
    # this one its own keyrings on the kernels seen, and this makes sure of it where the system call is known
    number = KEYCTL.get(platform.machine())
    if number is not None and _libc.syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        errno = ctypes.get_errno()
        if errno != ENOSYS:  # a kernel without keyrings has nothing to share
            raise SetupError(f"joining a new session keyring: {os.strerror(errno)}")


def _close_all_but(keep: set[int]) -> None:
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory's own descriptor, closed by now


def drop_capabilities() -> None:
    """No capability left in any set, none that an exec could regain, and no_new_privs; checked, not assumed."""
    _prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED)
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1  # until EINVAL: one past the last capability this kernel knows
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    clear_capabilities()
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    fields = dict(line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith(("Cap", "NoNewPrivs")))
    if any(int(fields[f], 16) for f in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")) or \
            fields["NoNewPrivs"].strip() != "1":
        raise SetupError(f"capabilities were not all dropped: {fields}")


def clear_capabilities(keep: int = 0) -> None:
    """Empty the effective, permitted and inheritable sets but for the capabilities in ``keep`` (below 32)."""
    header, data = _CapHeader(CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    data[0].effective = data[0].permitted = keep
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _fresh_random_state() -> None:
    # a fresh worker seeds these from the OS when it imports them; a fork would share the zygote's state
    for name in ("random", "numpy.random"):
        module = sys.modules.get(name)
        if module is not None:
            module.seed()


# --- start-up ------------------------------------------------------------------

def _load_worker() -> Any:
    """grader/worker.py, imported from beside this file (-I keeps this directory off sys.path)."""
    spec = importlib.util.spec_from_file_location("worker", Path(__file__).with_name("worker.py"))
    if spec is None or spec.loader is None:
        raise SetupError("worker.py is not next to the zygote")
    module = importlib.util.module_from_spec(spec)
    sys.modules["worker"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    sys.dont_write_bytecode = True
    sys.path.append(argv[2])  # where NumPy lives, as for the worker
    control = socket.socket(fileno=int(argv[1]))
    worker = _load_worker()
    uncover_proc()
    # a new user namespace gives each monitor what it needs to set its worker up, but mapping our uid (root's)
    # into it is allowed only if its creator held CAP_SETFCAP; it lets the zygote set file capabilities on its
    # own tmpfs, which no_new_privs makes meaningless anyway
    clear_capabilities(keep=1 << CAP_SETFCAP)
    _prctl(PR_SET_DUMPABLE, 0)  # nothing may read or trace the zygote's memory
    serve_spawns(control, worker)


if __name__ == "__main__":
    main(sys.argv)
