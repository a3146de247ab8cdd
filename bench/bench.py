"""Benchmark: how long grading takes, where the time goes, and the floor it is measured against.

Run from the repository root with the project's virtual environment:

    .venv/bin/python bench/bench.py              # print the results
    .venv/bin/python bench/bench.py --write      # and record them in bench/RESULTS.md

It measures, each as the median of several runs:

- the floor: ``python -c "import numpy"``, a fresh interpreter that imports NumPy;
- one whole-Homework-1 grade of the full-marks example through the ``grade``
  command, as a student runs it (every sandbox protection on);
- the same grade in-process, split into start-up and imports, spec loading,
  trials and reference values, worker start, student calls, comparison and
  diagnoses, and the report;
- batch throughput: 200 distinct submissions with ``grade batch --jobs <cores>``
  into a fresh gradebook;
- ``grade selfcheck``.

Before measuring it compiles the grader's modules to bytecode, as ``pip install``
does for a regular install: an editable install under ``PYTHONDONTWRITEBYTECODE``
would otherwise recompile every module on every run (about 0.1 s).

This is a benchmark, not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "submissions" / "examples" / "solution.py"
EXAMPLES = ROOT / "submissions" / "examples"
BIN = Path(sys.executable).parent
SEED = 1


def median_time(run: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def command(*args: str) -> Callable[[], object]:
    def run() -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return run


def compile_bytecode() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", "grader", "reference"], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL)


IMPORTS = ("import time; t = time.perf_counter(); import grader.cli, grader.prestart, grader.grading, grader.plan, "
           "grader.report, grader.spec, grader.spec_loader; print(time.perf_counter() - t)")


def breakdown(repeat: int) -> dict[str, float]:
    """One grade in this process as ``grade`` runs it, phase by phase (median of ``repeat`` runs of each).

    As in the command, a worker is booted in the background first (``grader.prestart``), the
    plan is lazy and each question goes to the worker as soon as it is drawn, so the worker
    answers while the trials are drawn. The worker boots while this process sleeps for as
    long as the command takes to start and import, so "waiting for the worker" is what is
    left of its start-up when the grade needs it, plus loading the file.
    """
    imports = statistics.median(float(subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True,
                                                     check=True, cwd=ROOT).stdout) for _ in range(repeat))
    interpreter, _ = median_time(command(sys.executable, "-c", "pass"), repeat)
    from grader import plan as plans
    from grader import prestart
    from grader.cli import bundled_problems
    from grader.grading import grade_planned
    from grader.report import render_text
    from grader.sandbox import Sandbox
    from grader.spec import load_problem_set

    phases: dict[str, list[float]] = {k: [] for k in ("spec", "draw", "worker", "send", "grade", "report")}
    original_run, original_load, original_draw = Sandbox.run, Sandbox._load_into, plans._draw

    def timed(name: str, function: Callable) -> Callable:
        def run(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return run

    for _ in range(repeat):
        spent: dict[str, float] = {}
        prestart.begin()
        time.sleep(interpreter + imports)  # as long as the command imports while its worker boots
        t0 = time.perf_counter()
        ps = load_problem_set(bundled_problems(), trust_cache=True)  # as `grade` loads it
        plans._draw = timed("draw", original_draw)  # before the plan is made: its questions hold the function
        plan = plans.make_plan(ps, SEED, lazy=True)
        t1 = time.perf_counter()
        Sandbox.run, Sandbox._load_into = timed("run", original_run), timed("worker", original_load)  # type: ignore
        try:
            result = grade_planned(SOLUTION, plan)
        finally:
            Sandbox.run, Sandbox._load_into, plans._draw = original_run, original_load, original_draw  # type: ignore
        t2 = time.perf_counter()
        render_text(result, bundled_problems())
        t3 = time.perf_counter()
        sent = spent["run"] - spent["draw"] - spent.get("worker", 0.0)  # run() draws the lazy plan as it sends
        for name, value in (("spec", t1 - t0), ("draw", spent["draw"]), ("worker", spent.get("worker", 0.0)),
                            ("send", sent), ("grade", t2 - t1 - spent["run"]), ("report", t3 - t2)):
            phases[name].append(value)
    m = {k: statistics.median(v) for k, v in phases.items()}
    return {
        "interpreter start-up": interpreter,
        "imports (grader, NumPy, click)": imports,
        "spec loading (validation cached) and compiling the questions": m["spec"],
        "drawing trials and reference values (the worker answers meanwhile)": m["draw"],
        "waiting for the worker (booted in the background) to load the file": m["worker"],
        "checking imports, encoding and sending the calls": m["send"],
        "reading the answers, comparison, diagnoses, bookkeeping": m["grade"],
        "report": m["report"],
    }


def batch_throughput(count: int, jobs: int) -> tuple[float, float]:
    """(seconds, submissions per second) for ``count`` distinct submissions into a fresh gradebook."""
    sources = sorted(EXAMPLES.glob("*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        for i in range(count):  # distinct contents, so nothing is served from the gradebook's cache
            src = sources[i % len(sources)]
            (folder / f"student{i:03d}.py").write_text(src.read_text() + f"\n# submission {i}\n")
        start = time.perf_counter()
        subprocess.run([str(BIN / "grade"), "batch", str(folder), "--jobs", str(jobs), "--seed", str(SEED),
                        "--gradebook", str(Path(tmp) / "gradebook.sqlite")],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        seconds = time.perf_counter() - start
    return seconds, count / seconds


def machine() -> list[str]:
    import numpy

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    isolation = "bubblewrap" if shutil.which("bwrap") else "unshare" if shutil.which("unshare") else "none"
    return [f"- CPU: {cpu}, {os.cpu_count()} cores", f"- OS: {platform.platform()}",
            f"- Python {platform.python_version()}, NumPy {numpy.__version__}",
            f"- namespace tool on the host: {isolation}", f"- date: {time.strftime('%Y-%m-%d')}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (median)")
    parser.add_argument("--batch", type=int, default=200, help="submissions in the batch measurement")
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument("--grade-only", action="store_true", help="skip the batch and selfcheck measurements")
    args = parser.parse_args()
    jobs = os.cpu_count() or 1

    compile_bytecode()
    floor, _ = median_time(command(sys.executable, "-c", "import numpy"), args.repeat)
    whole, runs = median_time(command(str(BIN / "grade"), str(SOLUTION.relative_to(ROOT)), "--seed",
                                      str(SEED)), args.repeat)
    parts = breakdown(args.repeat)
    if args.grade_only and args.write:
        parser.error("--write records every measurement: drop --grade-only")
    batch_seconds, rate = batch_throughput(args.batch, jobs) if not args.grade_only else (math.nan, math.nan)
    selfcheck = median_time(command(str(BIN / "grade"), "selfcheck", "--seed", str(SEED)), 1)[0] \
        if not args.grade_only else math.nan

    lines = ["| measurement | time |", "|---|---|",
             f"| floor: `python -c \"import numpy\"` | {floor:.3f} s |",
             f"| `grade {SOLUTION.relative_to(ROOT)}` (whole Homework 1, 43 functions) | {whole:.3f} s "
             f"({whole / floor:.1f}x the floor; runs {', '.join(f'{t:.2f}' for t in runs)}) |",
             f"| batch: {args.batch} submissions, `--jobs {jobs}` | {batch_seconds:.1f} s = {rate:.1f} "
             f"submissions/s |",
             f"| `grade selfcheck` | {selfcheck:.1f} s |",
             "", "Breakdown of one grade (in-process, median):", "", "| phase | seconds |", "|---|---|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in parts.items()]
    text = "\n".join(lines)
    print(text)
    if args.write:
        results = ROOT / "bench" / "RESULTS.md"
        old = results.read_text() if results.exists() else ""
        marker = "<!-- measured -->"
        head, _, tail = old.partition(marker)
        _, _, tail = tail.partition("<!-- /measured -->")
        body = "\n".join(["", "Machine:", "", *machine(), "", text, ""])
        results.write_text((head or "# Benchmark results\n\n") + marker + body + "<!-- /measured -->" + tail)
        print(f"written to {results}")


if __name__ == "__main__":
    main()
