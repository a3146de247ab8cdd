"""Isolation modes: detection, forcing a mode, the wrapped argv, exit codes and what reports say."""

from __future__ import annotations

import os

import numpy as np
import pytest

from grader.isolation import ENV_VAR, Isolation, detect, select
from grader.sandbox import Limits, Sandbox, SandboxError

FAST = Limits(load_timeout=2.0)
PROBE = """
import os, socket
def probe(x):
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=0.2).close()
        net = 1.0
    except OSError as exc:
        net = 0.0 if "refused" in str(exc) else 2.0
    return [float(os.getpid()), float(os.path.exists(os.path.expanduser("~root/.bashrc"))), net]
"""


def _modes() -> list[str]:
    return [iso.mode for iso in detect()]


def require(mode: str) -> Isolation:
    """The mode, or a skip where it does not run (a failure on CI for bwrap, which CI installs)."""
    if mode in _modes():
        return select(mode)
    why = f"{mode} does not run on this host"
    if mode == "bwrap" and os.environ.get("CI"):
        pytest.fail(f"{why}: CI must install bubblewrap (apt-get install bubblewrap)")
    pytest.skip(why)


def test_process_always_runs_and_auto_takes_the_strongest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    modes = _modes()
    assert modes[-1] == "process" and modes == sorted(modes, key=("bwrap", "unshare", "process").index)
    assert select().mode == modes[0]


def test_bubblewrap_is_used_where_installed() -> None:
    require("bwrap")
    with Sandbox("def f(x):\n    return x\n", "s.py", FAST, isolation=select("bwrap")) as sandbox:
        layers = sandbox.load().layers
        assert "bubblewrap namespaces" in layers and not any("file-system" in m for m in layers
                                                             if m.startswith("missing: "))


def test_the_environment_variable_forces_a_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "process")
    assert select().mode == "process"
    monkeypatch.setenv(ENV_VAR, "chroot")
    with pytest.raises(SandboxError, match="GRADE_ISOLATION='chroot': expected one of auto, bwrap"):
        select()


def test_a_mode_asked_for_but_unavailable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("grader.isolation.detect", lambda: (Isolation("process", None, (), (), ()),))
    monkeypatch.setattr("grader.isolation._bwrap_failure", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(SandboxError, match="isolation 'bwrap' was asked for .* bubblewrap \\(bwrap\\) is not "
                                           "installed"):
        select("bwrap")


def test_a_wrapper_reports_a_signal_as_128_plus_n() -> None:
    wrapped, bare = Isolation("unshare", "unshare", (), (), ()), Isolation("process", None, (), (), ())
    assert [wrapped.exit_code(c) for c in (0, 4, 70, 137, 152, None)] == [0, 4, 70, -9, -24, None]
    assert bare.exit_code(137) == 137 and bare.exit_code(-9) == -9


@pytest.mark.parametrize("mode", ["bwrap", "unshare", "process"])
def test_each_mode_grades_and_says_what_it_lacks(mode: str) -> None:
    isolation = require(mode)
    with Sandbox(PROBE, "s.py", FAST, isolation=isolation) as sandbox:
        layers = sandbox.load().layers
        pid, sees_root, net = sandbox.call("probe", [("x", np.ones(1))], None, 5.0).outputs[0].tolist()
    missing = [layer for layer in layers if layer.startswith("missing: ")]
    assert layers[:4] == ("separate process", "isolated interpreter (python -I -S)", "scrubbed environment",
                          "scratch working directory") and "BLAS threads pinned to 1" in layers
    namespaced = mode != "process"
    assert (pid < 10) == namespaced  # a private PID space numbers its processes from 1
    assert net in ((0.0, 2.0) if namespaced else (0.0, 1.0, 2.0))  # refused: nothing listens in a private net
    assert any("network isolation" in m for m in missing) == (not namespaced)
    assert any("file-system view: not restricted" in m for m in missing) == (mode != "bwrap")
    if mode == "bwrap":
        assert sees_root == 0.0  # the home directory is not in the view
