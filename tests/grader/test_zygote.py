"""Workers forked from a zygote: what each one gets, that they behave as fresh ones, and that nothing
one submission does reaches the next one, the zygote, or the grader."""

from __future__ import annotations

import os
import platform
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from grader.batch import BatchOptions, run_batch
from grader.gradebook import Gradebook
from grader.isolation import Isolation, select
from grader.process_cgroup import PidsCgroup
from grader.roster import find_submissions
from grader.sandbox import CallResult, Limits, Sandbox
from grader.spec import load_problem_set
from grader.zygote import LAYER, ZygoteLauncher, start_launcher

from tests.grader.test_isolation import require

FAST = Limits(load_timeout=2.0, memory=512 * 2**20, max_output=20_000)
HOSTILE = Path(__file__).resolve().parent.parent / "hostile" / "problems"
KEYCTL = {"x86_64": 250, "aarch64": 219}.get(platform.machine(), -1)
ADD_KEY = {"x86_64": 248, "aarch64": 217}.get(platform.machine(), -1)


@pytest.fixture(scope="module")
def bwrap() -> Isolation:
    return require("bwrap")


@pytest.fixture
def launcher(bwrap: Isolation) -> Iterator[ZygoteLauncher]:
    launcher = ZygoteLauncher(bwrap)
    yield launcher
    launcher.close()


def forked(source: str, launcher: ZygoteLauncher, limits: Limits = FAST, forbidden: tuple[str, ...] = ()) -> Sandbox:
    return Sandbox(source, "student.py", limits, forbidden=forbidden, launcher=launcher)


def run(sandbox: Sandbox, function: str, *args: np.ndarray, timeout: float = 5.0) -> CallResult:
    return sandbox.call(function, [(f"a{i}", a) for i, a in enumerate(args)], None, timeout)


# --- what each forked worker gets ----------------------------------------------------------

PROBE = """
import os
def status(x):
    fields = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
    caps = [int(fields[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")]
    return [os.getpid(), os.getuid(), int(fields["NoNewPrivs"]), *caps]
def namespaces(x):
    return [os.stat(f"/proc/self/ns/{ns}").st_ino for ns in ("user", "mnt", "pid", "ipc", "uts", "net", "cgroup")]
def writable_mounts(x):
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        if "rw" in fields[5].split(","):
            print(fields[4])
    return x
"""


def test_a_forked_worker_has_no_capabilities_and_its_own_pid_space(launcher: ZygoteLauncher) -> None:
    with forked(PROBE, launcher) as sandbox:
        assert LAYER in sandbox.load().layers
        pid, uid, no_new_privs, *caps = run(sandbox, "status", np.ones(1)).outputs[0].tolist()
    assert (pid, uid, no_new_privs) == (2, 0, 1)  # PID 1 is the namespace's init, as under bubblewrap
    assert caps == [0, 0, 0, 0, 0]  # effective, permitted, inheritable, bounding and ambient sets all empty


def test_every_submission_gets_new_namespaces(launcher: ZygoteLauncher) -> None:
    seen = []
    for _ in range(2):
        with forked(PROBE, launcher) as sandbox:
            seen.append(run(sandbox, "namespaces", np.ones(1)).outputs[0].tolist())
    assert all(a != b for a, b in zip(*seen)), seen  # user, mount, PID, IPC, UTS, network and cgroup
    assert launcher.zygotes_started == 1


def test_only_the_workers_own_tmpfs_proc_and_devices_are_writable(launcher: ZygoteLauncher) -> None:
    with forked(PROBE, launcher) as sandbox:
        points = set(run(sandbox, "writable_mounts", np.ones(1)).stdout.split())
    devices = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/pts"}
    # /proc twice: the zygote's, covered by the worker's own; /proc/sys and the like are read-only
    assert points <= {"/tmp", "/dev/shm", "/proc"} | devices and {"/tmp", "/dev/shm"} <= points, points


# --- the same behaviour as a fresh worker --------------------------------------------------

PARITY = {
    "returns": ("def f():\n    return 1.5\n", {}),
    "raises": ("def f():\n    return 1 / 0\n", {}),
    "sys_exit": ("import sys\ndef f():\n    sys.exit(2)\n", {}),
    "os_exit": ("import os\ndef f():\n    os._exit(9)\n", {}),
    "os_exit_137": ("import os\ndef f():\n    os._exit(137)\n", {}),  # read as SIGKILL by both: a known limit
    "segfault": ("import os, signal\ndef f():\n    os.kill(os.getpid(), signal.SIGSEGV)\n", {}),
    "abort": ("import os\ndef f():\n    os.abort()\n", {}),
    # the init of either worker (a fresh one's shell, a forked one's init) is PID 1 of its namespace and survives:
    # it may say "Killed", as for any worker killed by a signal, and whether that reaches the pipe before the
    # call is settled is a race; the captured output is the only place it shows
    "kills_own_group": ("import os, signal\ndef f():\n    os.kill(0, signal.SIGKILL)\n", {"said": "Killed\n"}),
    "kills_parents": ("import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGKILL)\n"
                      "    os.kill(1, signal.SIGKILL)\n    os.kill(-1, signal.SIGKILL)\n    return 1.0\n", {}),
    "loops": ("def f():\n    while True:\n        pass\n", {"timeout": 0.5}),
    "memory": ("import numpy as np\ndef f():\n    chunks = []\n    while True:\n        chunks.append(np.ones(10**7))\n",
               {}),
    "cpu": ("import signal\ndef f():\n    signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n    while True:\n        pass\n",
            {"limits": Limits(cpu_seconds=1), "timeout": 10.0}),
    "prints": ("def f():\n    for _ in range(100):\n        print('x' * 1000)\n    return 1.0\n", {}),
    "exit_at_import": ("import os\nos._exit(5)\ndef f():\n    return 1.0\n", {}),
    "loops_at_import": ("while True:\n    pass\ndef f():\n    return 1.0\n", {"limits": Limits(load_timeout=0.5)}),
    "forbidden": ("import importlib\ndef f():\n    importlib.import_module('to' + 'rch')\n", {"forbidden": ("torch",)}),
}


@pytest.mark.parametrize("name", sorted(PARITY))
def test_a_forked_worker_gives_what_a_fresh_one_gives(name: str, bwrap: Isolation, launcher: ZygoteLauncher) -> None:
    source, options = PARITY[name]
    limits, timeout = options.get("limits", FAST), options.get("timeout", 5.0)
    forbidden = options.get("forbidden", ())
    outcomes = []
    for starter in (None, launcher):
        with Sandbox(source, "student.py", limits, forbidden=forbidden, isolation=bwrap, launcher=starter) as sandbox:
            load = sandbox.load()
            first, again = run(sandbox, "f", timeout=timeout), run(sandbox, "f", timeout=timeout)
            output = first.stdout.removesuffix(options.get("said", ""))
            outcomes.append(([str(i) for i in load.issues], first.status, first.message, output, again.status,
                             again.message))
            assert (LAYER in load.layers) == (starter is not None)
    assert outcomes[0] == outcomes[1]


# --- nothing passes from one submission to the next ------------------------------------------

LEAVE = """
import builtins, ctypes, os, signal, socket, sys
import numpy as np

libc = ctypes.CDLL(None, use_errno=True)
PLACES = ["/tmp/leak", os.path.join(os.getcwd(), "leak2"), os.path.expanduser("~/leak3"), "/dev/shm/leak",
          "/leak", "/dev/leak", "/sandbox/leak"]

def leave(x):
    mine = {int(t) for t in os.listdir("/proc/self/task")}  # its own threads (the worker's watchdog) would kill it
    for pid in range(1, 500):  # every other process it can name gets SIGKILL: only its own namespace's
        if pid not in mine:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    done = []
    for path in PLACES:
        try:
            with open(path, "w") as f:
                f.write("A")
            done.append(1.0)
        except OSError:
            done.append(0.0)
    done.append(float(libc.shmget(0x5EED, 4096, 0o1666) >= 0))  # IPC_CREAT | 0666
    done.append(float(libc.msgget(0x5EED, 0o1666) >= 0))
    done.append(float(libc.syscall(@ADD_KEY@, b"user", b"grader-leak", b"A", 1, -3) > 0))  # session keyring
    done.append(float(libc.sethostname(b"leaky", 5) == 0))
    os.environ["LEAK"] = "A"
    os.putenv("LEAK2", "A")
    builtins.LEAK = np.LEAK = "A"
    np.sum = lambda *a, **k: 42
    if os.fork() == 0:  # a daemon that would outlive the worker
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "@MARKER@"])
        os._exit(0)
    return done
"""

FIND = """
import builtins, ctypes, os, socket
import numpy as np

libc = ctypes.CDLL(None, use_errno=True)
PLACES = ["/tmp/leak", os.path.join(os.getcwd(), "leak2"), os.path.expanduser("~/leak3"), "/dev/shm/leak",
          "/leak", "/dev/leak", "/sandbox/leak"]

def find(x):
    found = [p for p in PLACES if os.path.exists(p)]
    found += ["shm"] * (libc.shmget(0x5EED, 0, 0) >= 0) + ["msg"] * (libc.msgget(0x5EED, 0) >= 0)
    found += ["key"] * (libc.syscall(@KEYCTL@, 10, -3, b"user", b"grader-leak", 0) > 0)  # KEYCTL_SEARCH
    found += ["hostname"] * (socket.gethostname() == "leaky")
    found += ["environ"] * ("LEAK" in os.environ or os.getenv("LEAK2") is not None)
    found += ["modules"] * bool(hasattr(builtins, "LEAK") or hasattr(np, "LEAK") or np.sum([1, 2]) != 3)
    found += [f"process {p}" for p in os.listdir("/proc") if p.isdigit() and p not in ("1", str(os.getpid()))]
    print(found)
    return float(len(found))
"""


def _leave(marker: str) -> str:
    return LEAVE.replace("@MARKER@", marker).replace("@ADD_KEY@", str(ADD_KEY))


def _find() -> str:
    return FIND.replace("@KEYCTL@", str(KEYCTL))


def test_nothing_a_submission_leaves_reaches_the_next(launcher: ZygoteLauncher) -> None:
    if KEYCTL < 0:
        pytest.skip(f"no keyctl system call number known for {platform.machine()}")
    marker = f"zygote-leak-{uuid.uuid4().hex}"
    with forked(_leave(marker), launcher) as a:
        done = run(a, "leave", np.ones(1))
        assert done.status == "ok", done.message
        # /tmp, the working directory, HOME and /dev/shm are its own; the rest of the view is read-only;
        # a SysV segment, a message queue and a key were made; only the hostname needs a capability it lacks
        assert done.outputs[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0]
        assert _appears(marker)  # the daemon is running while the submission's worker is
    assert _gone(marker)
    with forked(_find(), launcher) as b:
        found = run(b, "find", np.ones(1))
    assert (found.status, float(found.outputs[0])) == ("ok", 0.0), found.stdout
    assert launcher.zygotes_started == 1  # its kills reached neither the zygote nor its monitor


def test_a_fork_bomb_costs_its_own_submission_only(launcher: ZygoteLauncher) -> None:
    cgroup = PidsCgroup.create(1)
    if cgroup is None:
        pytest.skip("no writable pids cgroup here: a fork bomb would not be bounded")
    cgroup.remove()
    bomb = "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n        except OSError:\n" \
           "            pass\n"
    with forked(bomb, launcher, Limits(processes=32)) as sandbox:
        assert run(sandbox, "f", timeout=1.0).status == "timeout"
    with forked("def f():\n    return 1.0\n", launcher) as sandbox:
        assert run(sandbox, "f").status == "ok"
    assert launcher.zygotes_started == 1


def test_the_next_sandbox_adopts_a_worker_asked_for_ahead(launcher: ZygoteLauncher,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    launcher.start()  # as a pool process does: then even its first sandbox asks ahead for the next
    made: list[PidsCgroup] = []
    original = PidsCgroup.create
    monkeypatch.setattr(PidsCgroup, "create", lambda n: made.append(original(n)) or made[-1])  # type: ignore[func-returns-value]
    with forked("def f():\n    return 1.0\n", launcher) as first:
        assert run(first, "f").status == "ok"
    if None in made:
        pytest.skip("no writable pids cgroup here")
    ahead, own = made
    assert not own.path.exists() and ahead.path.exists()  # the first's removed; the next one's waiting
    booted = launcher.take_booted(None, FAST)
    assert booted is not None and booted.cgroup is ahead
    with Sandbox("def f():\n    return 2.0\n", "student.py", FAST, launcher=launcher, booted=booted) as second:
        result = run(second, "f")
        assert (result.status, float(result.outputs[0])) == ("ok", 2.0) and LAYER in second.load().layers
    assert not ahead.path.exists()
    waiting = made[-1]  # asked for when the second took its worker
    assert launcher.take_booted(None, Limits(processes=7)) is None  # other limits: not handed out, dropped
    assert not waiting.path.exists() and made[-1].path.exists()
    launcher.close()
    assert [c.path for c in made if c.path.exists()] == []
    assert launcher.zygotes_started == 1


# --- a zygote that dies or cannot serve --------------------------------------------------------

SLOW = "import time\ndef slow():\n    time.sleep(3)\n    return 1.0\ndef f():\n    return 1.0\n"


def test_a_zygote_killed_mid_call_costs_that_call_only(launcher: ZygoteLauncher) -> None:
    with forked(SLOW, launcher) as sandbox:
        assert run(sandbox, "f").status == "ok"
        killer = threading.Timer(0.3, _kill_zygote, (launcher,))
        killer.start()
        crashed = run(sandbox, "slow")
        killer.join()
        assert crashed.status == "crashed" and "during the call" in crashed.message
        assert run(sandbox, "f").status == "ok"  # a new worker from a new zygote
        assert LAYER in sandbox.layers
    assert launcher.zygotes_started == 2 and launcher.gave_up is None


def test_a_zygote_that_cannot_start_means_fresh_workers(bwrap: Isolation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Isolation, "zygote_command", lambda self, fd, size: ["/bin/false"])
    broken = ZygoteLauncher(bwrap)
    try:
        with forked("def f():\n    return 1.0\n", broken) as sandbox:
            assert run(sandbox, "f").status == "ok"
            assert LAYER not in sandbox.load().layers  # the report claims no zygote it did not have
        assert broken.gave_up is not None and "the zygote ended while starting" in broken.gave_up
    finally:
        broken.close()


def test_a_zygote_whose_workers_cannot_be_set_up_means_fresh_workers(bwrap: Isolation,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # as where user namespaces are off: the zygote starts, but the first worker's set-up fails; checked once
    monkeypatch.setattr(Isolation, "zygote_command", lambda self, fd, size: _without_sys_admin(bwrap, fd, size))
    broken = ZygoteLauncher(bwrap)
    try:
        for _ in range(2):
            with forked("def f():\n    return 1.0\n", broken) as sandbox:
                assert run(sandbox, "f").status == "ok" and LAYER not in sandbox.load().layers
        assert broken.zygotes_started == 1 and "could not set up a worker" in (broken.gave_up or "")
    finally:
        broken.close()


def _without_sys_admin(bwrap: Isolation, fd: int, size: int) -> list[str]:
    """The zygote's argv without CAP_SYS_ADMIN: it cannot uncover its /proc, so no worker can mount its own."""
    argv = _original(bwrap, fd, size)
    at = argv.index("CAP_SYS_ADMIN")
    return argv[:at - 1] + argv[at + 1:]


def test_other_isolation_keeps_fresh_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADE_ISOLATION", "process")
    assert start_launcher() is None
    launcher = ZygoteLauncher(select("process"))
    assert launcher.launch(select("process"), FAST, (), None) is None and launcher.zygotes_started == 0


# --- a batch ------------------------------------------------------------------------------------

def test_a_batch_grades_the_others_right_around_a_hostile_submission(tmp_path: Path, bwrap: Isolation) -> None:
    marker = f"zygote-batch-{uuid.uuid4().hex}"
    good = "def innocent(x):\n    return 2 * x\n"
    folder = tmp_path / "class"
    folder.mkdir()
    for i in range(6):
        # every other submission checks that nothing was left for it: its attack passes only then
        check = _find().replace("def find(x):", "def _find(x):") + "def attack(x):\n    return 2 * x + _find(x)\n"
        (folder / f"s{i}.py").write_text(check + good)
    (folder / "s2.py").write_text(_leave(marker) + "def attack(x):\n    leave(x)\n    return 2 * x\n" + good)
    with Gradebook(tmp_path / "g.sqlite") as book:
        result = run_batch(find_submissions([folder]), load_problem_set(HOSTILE), book, BatchOptions(seed=1), jobs=2)
    scores = {r.student: (r.score, r.max_score) for r in result.records}
    assert result.failures == () and scores == {f"s{i}": (2.0, 2.0) for i in range(6)}, scores
    assert all(LAYER in r.report["isolation"] for r in result.records)
    assert _gone(marker)


# --- helpers --------------------------------------------------------------------------------

_original = Isolation.zygote_command


def _kill_zygote(launcher: ZygoteLauncher) -> None:
    """SIGKILL the zygote's own Python process (bubblewrap and its init then end by themselves)."""
    bwrap_pid = launcher.zygote_process
    assert bwrap_pid is not None
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            # bubblewrap, its init, the zygote; the zygote's monitors and workers share its command line
            if b"zygote_worker.py" in (proc / "cmdline").read_bytes() and _ancestors(int(proc.name))[1] == bwrap_pid:
                os.kill(int(proc.name), signal.SIGKILL)
                return
        except (OSError, ValueError, IndexError):
            continue
    raise AssertionError("the zygote's process was not found")


def _ancestors(pid: int) -> list[int]:
    found = []
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        found.append(pid)
    return found


def _live_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z" and \
                    marker.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except (OSError, IndexError):
            continue
    return found


def _appears(marker: str) -> bool:
    deadline = time.monotonic() + 2.0
    while not _live_with(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(_live_with(marker))


def _gone(marker: str) -> bool:
    deadline = time.monotonic() + 2.0
    while _live_with(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _live_with(marker)
