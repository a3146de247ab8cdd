"""Which isolation a sandbox worker runs under, found at run time, and the argv that applies it.

Three modes, strongest first:

- ``bwrap``: bubblewrap namespaces. No network (a private loopback only), a private
  PID space (everything the submission starts dies with the worker), and a
  file-system view holding only the Python interpreter, NumPy and the worker
  script, read-only, plus a size-capped tmpfs as the scratch working directory.
- ``unshare``: util-linux ``unshare``. No network and a private PID space; the
  file system is the host's, as the grader's user sees it.
- ``process``: a separate process only (macOS, or a container without namespaces).

Every mode also has what ``grader.sandbox_process`` gives every worker: a scrubbed
environment, rlimits and single-threaded BLAS. ``auto`` (the default) takes the
strongest mode that actually runs here; ``GRADE_ISOLATION`` forces one, e.g. to
test the fallbacks on a host that has bubblewrap. Each mode names what it
protects against and what it does not, and reports print both.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from grader.sandbox_process import PACKAGES, WORKER, SandboxError, size, worker_command

ENV_VAR = "GRADE_ISOLATION"
MODES = ("bwrap", "unshare", "process")
PROBE_TIMEOUT = 10.0  # a first start of bwrap on a cold disk; normally a few milliseconds
SANDBOX_LIB = "/sandbox/lib"  # where NumPy appears inside the bubblewrap view
SANDBOX_WORKER = "/sandbox/worker.py"
ZYGOTE = Path(__file__).with_name("zygote_worker.py")  # grader.zygote's process, beside the worker in the view
SANDBOX_ZYGOTE = "/sandbox/zygote_worker.py"
SANDBOX_SCRATCH = "/tmp"
_SHELL = ("/bin/sh", "-c", '"$@"; exit $?', "sh")
SIGNAL_BASE = 128  # bwrap and sh report a child killed by signal n as exit code 128 + n
# the top-level entries of a merged-/usr or classic layout that the dynamic linker may need
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

_NET_PID = ("no network: connections fail, loopback included",
            "private PID space: everything the submission starts dies with the worker")
_ESCAPES = "process containment: a process that starts its own session can outlive the worker"
_OPEN_FILES = ("file-system view: not restricted (the submission can read what the grader's user can, "
               "grader files and specs included, and write outside its scratch directory)")


@dataclass(frozen=True)
class Isolation:
    """One isolation mode as it runs on this host: how to wrap the worker and what that protects."""

    mode: str  # one of MODES
    tool: str | None  # the bwrap or unshare executable
    prefix: tuple[str, ...]  # unshare's flags that work here (as root or with a user namespace)
    gives: tuple[str, ...]  # protections, for the report
    lacks: tuple[str, ...]  # protections this mode does not give, for the report

    def command(self, request_fd: int, response_fd: int, scratch_size: int) -> list[str]:
        """The whole argv that starts a worker under this isolation."""
        # a shell as PID 1 of the namespace: an init ignores signals it does not handle, and the worker must
        # still die of SIGXCPU or SIGXFSZ; `; exit $?` keeps sh from exec-ing into the worker
        if self.mode == "bwrap":
            inner = [_base_python(), "-I", "-S", SANDBOX_WORKER, str(request_fd), str(response_fd), SANDBOX_LIB]
            return [self.tool or "bwrap", *_bwrap_view(scratch_size), "--as-pid-1", "--", *_SHELL, *inner]
        inner = worker_command(request_fd, response_fd)
        if self.mode == "unshare":
            return [self.tool or "unshare", *self.prefix, "--", *_SHELL, *inner]
        return inner

    def zygote_command(self, control_fd: int, scratch_size: int) -> list[str]:
        """The argv of a zygote (``grader.zygote``): the worker's bubblewrap view plus the zygote script.

        No ``--as-pid-1``: bubblewrap's own init is PID 1 and the zygote an ordinary process. The zygote
        keeps CAP_SYS_ADMIN in its namespaces just long enough to unmount what covers parts of its /proc
        (each worker mounts its own /proc, which the kernel allows only while one is fully visible) and
        CAP_SETFCAP, without which the kernel refuses to map root's uid into a worker's user namespace.
        """
        if self.mode != "bwrap":
            raise SandboxError(f"a zygote runs under bubblewrap only, not under {self.mode!r}")
        inner = [_base_python(), "-I", "-S", SANDBOX_ZYGOTE, str(control_fd), SANDBOX_LIB]
        return [self.tool or "bwrap", *_bwrap_view(scratch_size), "--cap-add", "CAP_SYS_ADMIN",
                "--cap-add", "CAP_SETFCAP", "--ro-bind", str(ZYGOTE.resolve()), SANDBOX_ZYGOTE, "--", *inner]

    def home(self, workdir: Path) -> Path:
        """The worker's HOME, TMPDIR and working directory, as the worker sees it."""
        return Path(SANDBOX_SCRATCH) if self.mode == "bwrap" else workdir

    def exit_code(self, code: int | None) -> int | None:
        """The worker's own exit code: a wrapper reports a worker killed by signal n as 128 + n."""
        if self.mode != "process" and code is not None and SIGNAL_BASE < code <= SIGNAL_BASE + 64:
            return SIGNAL_BASE - code
        return code

    def labels(self, scratch_size: int, cgroup: bool) -> tuple[str, ...]:
        """What this mode protects against and what it lacks, for the report.

        ``cgroup``: a pids cgroup holds the workers, which contains escaped processes too.
        """
        scratch = (f"scratch: a {size(scratch_size)} tmpfs, gone with the worker",) if self.mode == "bwrap" else ()
        lacks = [lack for lack in self.lacks if not (cgroup and lack == _ESCAPES)]
        return (*self.gives, *scratch, *(f"missing: {lack}" for lack in lacks))


def select(requested: str | None = None) -> Isolation:
    """The isolation to use: ``requested``, else ``$GRADE_ISOLATION``, else ``auto`` (the strongest that runs).

    A mode that was asked for by name but cannot run here is a ``SandboxError``: whoever
    asked for it should know that grading would be weaker than they wanted.
    """
    wanted = requested or os.environ.get(ENV_VAR, "").strip() or "auto"
    if wanted not in (*MODES, "auto"):
        raise SandboxError(f"{ENV_VAR}={wanted!r}: expected one of auto, {', '.join(MODES)}")
    if wanted == "auto":
        return next(_runnable())  # probing stops at the first that runs: each probe starts a process
    chosen = next(_runnable(wanted), None)
    if chosen is None:
        raise SandboxError(f"isolation {wanted!r} was asked for ({ENV_VAR} or a parameter) but does not run on "
                           f"this host: {probe_failure(wanted)}")
    return chosen


def detect() -> tuple[Isolation, ...]:
    """Every mode that runs on this host, strongest first (``process`` always runs)."""
    return tuple(_runnable())


def _runnable(only: str | None = None) -> Iterator[Isolation]:
    """The modes that run here (all, or only the mode ``only``), strongest first, each probed when reached."""
    if only in (None, "bwrap") and _bwrap_failure() is None:
        yield Isolation("bwrap", shutil.which("bwrap"), (), ("bubblewrap namespaces", *_NET_PID,
                        "file-system view: Python, NumPy and the worker only, read-only; no grader files, "
                        "specs or home directory"), ())
    flags = _unshare_flags() if only in (None, "unshare") else None
    if flags is not None:
        yield Isolation("unshare", shutil.which("unshare"), flags, ("unshare namespaces", *_NET_PID),
                        (_OPEN_FILES,))
    if only in (None, "process"):
        yield Isolation("process", None, (), (), (
            "network isolation: the submission can open connections", _ESCAPES, _OPEN_FILES))


def probe_failure(mode: str) -> str:
    """Why ``mode`` does not run here, in one line."""
    if mode == "bwrap":
        return _bwrap_failure() or "it runs"
    if mode == "unshare":
        return "it runs" if _unshare_flags() is not None else _unshare_failure(_UNSHARE_FLAGS[0])
    return "it runs"


# --- bubblewrap -------------------------------------------------------------------

def _base_python() -> str:
    # a venv's python is a symlink into the venv, which the view does not hold
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _python_home() -> Path:
    return Path(os.path.realpath(sys.base_prefix))


def _bwrap_view(scratch_size: int) -> list[str]:
    """bwrap's arguments: namespaces, the read-only file-system view and the scratch tmpfs."""
    # run as root, bubblewrap keeps the worker's capabilities in its namespaces unless told otherwise, and those
    # let it remount the read-only view (the host's /usr, this grader's files) writable; it leaves /proc/sys writable
    args = ["--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--proc", "/proc",
            "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    for top in SYSTEM_DIRS:
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    home = _python_home()
    if not home.is_relative_to("/usr"):  # e.g. pyenv under /root: bind the interpreter's own tree only
        args += ["--ro-bind", str(home), str(home)]
    # the interpreter's own site-packages is not on the worker's path (-S); hide it all the same
    for site in sorted(home.glob("lib/python3*/site-packages")):
        args += ["--tmpfs", str(site), "--remount-ro", str(site)]
    numpy = PACKAGES / "numpy"
    for part in (numpy, PACKAGES / "numpy.libs"):  # numpy.libs: the OpenBLAS a wheel bundles
        if part.is_dir():
            args += ["--ro-bind", str(part.resolve()), f"{SANDBOX_LIB}/{part.name}"]
    args += ["--ro-bind", str(WORKER.resolve()), SANDBOX_WORKER]
    args += ["--size", str(scratch_size), "--tmpfs", SANDBOX_SCRATCH, "--chdir", SANDBOX_SCRATCH]
    return args


@functools.lru_cache(maxsize=None)
def _bwrap_failure() -> str | None:
    """None when bwrap starts Python in the worker's view here, else why not (cached: it is the host's)."""
    tool = shutil.which("bwrap")
    if tool is None:
        return "bubblewrap (bwrap) is not installed"
    return _probe([tool, *_bwrap_view(1 << 20), "--", _base_python(), "-I", "-S", "-c", "pass"])


# --- unshare ----------------------------------------------------------------------

_NAMESPACES = ("--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts")
# as root the namespaces need no user namespace; an ordinary user needs one to create them
_UNSHARE_FLAGS = (_NAMESPACES, ("--user", "--map-root-user", *_NAMESPACES))


@functools.lru_cache(maxsize=None)
def _unshare_flags() -> tuple[str, ...] | None:
    """The first set of unshare flags that works here, or None."""
    return next((flags for flags in _UNSHARE_FLAGS if _unshare_failure(flags) is None), None)


@functools.lru_cache(maxsize=None)
def _unshare_failure(flags: tuple[str, ...]) -> str | None:
    tool = shutil.which("unshare")
    if tool is None or sys.platform != "linux":
        return "util-linux unshare is not available"
    return _probe([tool, *flags, "--", "/bin/sh", "-c", "exit 0"])


def _probe(argv: list[str]) -> str | None:
    """None when ``argv`` runs and exits 0, else its complaint."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT,
                              env={"PATH": "/usr/bin:/bin"}, cwd="/")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{Path(argv[0]).name} could not run: {exc}"
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{Path(argv[0]).name} failed here ({reason[-1] if reason else f'exit code {done.returncode}'})"
    return None
