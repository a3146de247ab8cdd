"""Text for ``grade validate`` and ``grade selfcheck``; the CLI prints what these return."""

from __future__ import annotations

from typing import Sequence

from grader.textutil import table
from grader.selfcheck import ATOL, RTOL, SelfCheckResult
from grader.spec import ProblemSet, SpecProblem


def render_problems(path: str, problems: Sequence[SpecProblem]) -> str:
    lines = [f"{len(problems)} mistake(s) in {path}:"]
    lines += [f"  {p}" for p in problems]
    return "\n".join(lines)


def render_valid(problem_set: ProblemSet) -> str:
    n = sum(1 for _ in problem_set.questions())
    outputs = sum(len(q.outputs) for _, q in problem_set.questions())
    return (f"OK: problem set '{problem_set.name}' ({problem_set.path}) is valid: {len(problem_set.problems)} "
            f"problems, {n} questions, {outputs} graded outputs, {problem_set.max_score:g} points.")


def render_selfcheck(result: SelfCheckResult) -> str:
    lines = [
        f"Self-check of problem set '{result.problem_set}' ({result.path})",
        f"seed {result.seed}, {result.trials} random trials per question plus its fixed cases; "
        f"NumPy must match torch within rtol {RTOL:g}, atol {ATOL:g} x max(1, |value|)",
        "",
    ]
    bad_ops = [o for o in result.ops if not o.ok]
    lines.append(f"op registry: {len(result.ops)} ops, forward and VJP against torch, VJP against central "
                 f"finite differences: " + ("all agree" if not bad_ops else f"{len(bad_ops)} disagree"))
    for op in bad_ops:
        lines += [f"  {op.op}: {m}" for m in op.mismatches]
    rows = []
    for q in result.questions:
        w = q.worst
        rows.append([q.problem, q.question, q.function, str(q.trials),
                     f"{w.max_rel:.1e}" if w else "-", f"{w.max_abs:.1e}" if w else "-",
                     f"{w.output}" if w else "-", "ok" if q.ok else "FAIL"])
    lines += ["", table(["problem", "question", "function", "trials", "worst rel", "worst abs", "at output",
                         "status"], rows)]
    for q in result.questions:
        lines += [f"  {q.problem} / {q.question}: {f}" for f in q.failures[:5]]
        if len(q.failures) > 5:
            lines.append(f"  {q.problem} / {q.question}: ... and {len(q.failures) - 5} more")
    if result.examples:
        rows = [[c.path.name, f"{c.score:g}/{c.max_score:g}",
                 "-" if c.expected_score is None else f"{c.expected_score:g}", "ok" if c.ok else "FAIL"]
                for c in result.examples]
        lines += ["", "example submissions, graded with the same seed:", "",
                  table(["example", "score", "declared", "status"], rows)]
        lines += [f"  {c.path.name}: {c.problem}" for c in result.examples if not c.ok]
    failed = len(bad_ops) + sum(not q.ok for q in result.questions) + sum(not c.ok for c in result.examples)
    lines += ["", "PASSED: every expected value agrees with torch autograd"
              + (", and every example gets its declared score." if result.examples else ".") if result.ok
              else f"FAILED: {failed} check(s) disagree (replay with --seed {result.seed})."]
    return "\n".join(lines)
