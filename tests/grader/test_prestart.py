"""A worker booted while `grade` imports: adopted by the first sandbox, or killed and cleaned up at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from grader import prestart
from grader.sandbox import Limits, Sandbox, SandboxError

REPO = Path(__file__).resolve().parents[2]
SOURCE = "def double(a):\n    return 2 * a\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes: it runs nothing and only waits to be reaped
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_an_adopted_worker_is_the_sandboxes_first_and_answers() -> None:
    booted = prestart.boot(Limits())
    pid = booted.worker.proc.pid
    with Sandbox(SOURCE, "early.py", Limits(), booted=booted) as sandbox:
        assert sandbox.process_group == pid  # no second worker was started
        assert sandbox.scratch == booted.scratch
        result = sandbox.call("double", [("a", np.arange(3.0))], None, 5.0)
        assert result.status == "ok"
        np.testing.assert_array_equal(result.outputs[0], [0.0, 2.0, 4.0])
        assert sandbox.layers == Sandbox(SOURCE, "other.py", Limits()).layers
    assert not _alive(pid)
    assert not booted.scratch.exists()


def test_a_worker_booted_with_other_limits_cannot_be_adopted() -> None:
    booted = prestart.boot(Limits(load_timeout=2.0))
    try:
        with pytest.raises(SandboxError, match="limits and isolation"):
            Sandbox(SOURCE, "early.py", Limits(), booted=booted)
    finally:
        prestart.discard_parts(booted.worker, booted.scratch, booted.cgroup)
    assert not booted.scratch.exists()


def _run(script: str) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_early_worker_outlives_its_start_and_is_taken_once() -> None:
    # bwrap --die-with-parent kills the worker when the thread that forked it ends: that thread must still
    # be alive while the worker is in use (when it ended, this failed in about one grade of ten)
    seen = _run("""
        import json, time
        import numpy as np
        from grader import prestart
        from grader.sandbox import Limits, Sandbox
        prestart.begin()
        time.sleep(1.0)  # long past bwrap's own start-up
        booted = prestart.take(Limits())
        with Sandbox("def double(a):\\n    return 2 * a\\n", "early.py", Limits(), booted=booted) as box:
            r = box.call("double", [("a", np.arange(3.0))], None, 5.0)
            print(json.dumps({"adopted": box.process_group == booted.worker.proc.pid, "status": r.status,
                              "again": prestart.take(Limits()) is None,
                              "thread": prestart._EARLY.thread.is_alive()}))
        """)
    assert seen == {"adopted": True, "status": "ok", "again": True, "thread": True}


def test_an_early_worker_nobody_adopts_is_killed_and_removed_at_exit() -> None:
    seen = _run("""
        import json
        from grader import prestart
        prestart.begin()
        prestart._EARLY.ready.wait()
        booted = prestart._EARLY.booted
        print(json.dumps({"pid": booted.worker.proc.pid, "scratch": str(booted.scratch)}))
        """)
    deadline = time.monotonic() + 5
    while _alive(seen["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(seen["pid"])
    assert not Path(seen["scratch"]).exists()


def test_other_limits_discard_the_early_worker() -> None:
    seen = _run("""
        import json
        from grader import prestart
        from grader.sandbox import Limits
        prestart.begin()
        prestart._EARLY.ready.wait()
        scratch = prestart._EARLY.booted.scratch
        print(json.dumps({"taken": prestart.take(Limits(memory=2**30)) is not None, "gone": not scratch.exists()}))
        """)
    assert seen == {"taken": False, "gone": True}


def test_grade_adopts_the_worker_it_booted(tmp_path: Path) -> None:
    # the whole command: one worker for one submission (the sandbox's start counter says so)
    sub = tmp_path / "student.py"
    sub.write_text("def d_relu(z):\n    return (z > 0).astype(float)\n")
    seen = _run(f"""
        import json, sys
        from grader import sandbox
        starts = []
        original = sandbox.Sandbox._spawn
        def counting(self):
            starts.append(1)
            return original(self)
        sandbox.Sandbox._spawn = counting
        from grader.cli import main
        try:
            main(["{sub}", "--only", "d_relu", "--seed", "3"], standalone_mode=False)
        finally:
            print(json.dumps({{"spawned": len(starts)}}))
        """)
    assert seen == {"spawned": 0}


def test_begin_boots_again_only_once_the_last_worker_was_taken() -> None:
    seen = _run("""
        import json
        from grader import prestart
        from grader.sandbox import Limits
        prestart.begin(); first = prestart._EARLY
        prestart.begin(); same = prestart._EARLY is first  # still waiting to be taken: no second worker
        a = prestart.take(Limits())
        prestart.begin(); b = prestart.take(Limits())
        print(json.dumps({"same": same, "two": a is not None and b is not None and a.worker is not b.worker}))
        for booted in (a, b):
            prestart.discard_parts(booted.worker, booted.scratch, booted.cgroup)
        """)
    assert seen == {"same": True, "two": True}
