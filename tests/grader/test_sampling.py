"""Seeded trials: reproducible, small first, clear of kinks, cases appended."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grader.distributions import DISTRIBUTIONS
from grader.plan import make_plan
from grader.sampling import compile_question, draw_trial, draw_trials
from grader.spec import ProblemSpec, QuestionSpec, load_problem_set
from reference.errors import SamplingError
from reference.evaluate import evaluate

from tests.helpers import BUNDLED, write_spec

SPEC = """
problem: s
dims: {n: [2, 6], k: [1, n]}
inputs:
  x: {shape: [n], dist: uniform, low: -0.05, high: 1}
  U: {shape: [n, k], dist: full_column_rank, max_condition: 20}
  y: {shape: [n], dist: labels, values: [-1, 1]}
  p: {shape: [n], dist: simplex}
  beta: {dist: fixed, value: 1}
nodes:
  r: relu(x)
questions:
  - function: d_relu
    args: [x]
    returns: derivative(relu(x), x)
    trials: 30
    kink_margin: 0.01
  - function: proj
    args: [U]
    returns: U @ inv(U.T @ U) @ U.T
  - function: soft
    args: [x, beta]
    returns: softmax(beta * x)
    cases: [{beta: 1000}, {beta: 1000, n: 2}]
  - function: labels_and_probs
    args: [y, p]
    returns: [y, p]
"""


@pytest.fixture()
def questions(tmp_path: Path) -> dict:
    ps = load_problem_set(write_spec(tmp_path, SPEC))
    return {q.function: compile_question(p, q) for p, q in ps.questions()}


def _same(a: list, b: list) -> bool:
    return all(t.dims == u.dims and all(np.array_equal(t.args[k], u.args[k]) for k in t.args)
               for t, u in zip(a, b, strict=True))


def test_same_seed_same_trials_other_seed_other_trials(questions: dict) -> None:
    cq = questions["d_relu"]
    assert _same(draw_trials(cq, 7), draw_trials(cq, 7))
    assert not _same(draw_trials(cq, 7), draw_trials(cq, 8))


def test_first_trial_uses_the_smallest_dimensions_and_later_ones_vary(questions: dict) -> None:
    trials = draw_trials(questions["proj"], 3)
    assert trials[0].dims == {"n": 2, "k": 1}
    assert len({tuple(t.dims.values()) for t in trials}) > 2
    assert all(1 <= t.dims["k"] <= t.dims["n"] for t in trials)  # a bound naming an earlier dim


def test_draws_stay_clear_of_kinks(questions: dict) -> None:
    # x is uniform on [-0.05, 1], so about one entry in twenty lands within 0.01 of relu's kink
    trials = draw_trials(questions["d_relu"], 11)
    assert all(np.min(np.abs(t.args["x"])) >= 0.01 for t in trials)
    assert any(t.attempt > 0 for t in trials), "some draws must have been rejected and redrawn"
    for t in trials:
        np.testing.assert_array_equal(t.expected[0], (t.args["x"] > 0).astype(float))


def test_adding_an_input_does_not_change_the_other_draws(tmp_path: Path) -> None:
    base = load_problem_set(write_spec(tmp_path, SPEC, "a.yaml"))
    more = load_problem_set(write_spec(tmp_path / "..", SPEC.replace("  beta:", "  extra: {shape: [n]}\n  beta:"),
                                       "b.yaml"))
    (p1, q1), (p2, q2) = next(base.questions()), next(more.questions())
    assert _same(draw_trials(compile_question(p1, q1), 5), draw_trials(compile_question(p2, q2), 5))


def test_cases_follow_the_random_trials_with_their_fixed_values(questions: dict) -> None:
    cq = questions["soft"]
    trials = draw_trials(cq, 2, trials=4)
    assert [t.index for t in trials] == [0, 1, 2, 3, 4, 5]
    assert [t.case for t in trials[-2:]] == [{"beta": 1000}, {"beta": 1000, "n": 2}]
    assert all(float(t.args["beta"]) == 1000.0 for t in trials[-2:])
    assert trials[-1].dims["n"] == 2
    big = trials[-2]  # softmax(1000 x) is a one-hot argmax, and the reference stays finite
    np.testing.assert_allclose(big.expected[0], np.eye(big.dims["n"])[np.argmax(big.args["x"])], atol=1e-12)


def test_distributions_draw_what_they_promise(questions: dict) -> None:
    for t in draw_trials(questions["proj"], 4):
        assert np.linalg.cond(t.args["U"]) <= 20
    for t in draw_trials(questions["labels_and_probs"], 4):
        assert set(np.unique(t.args["y"])) <= {-1.0, 1.0}
        assert np.all(t.args["p"] > 0) and abs(t.args["p"].sum() - 1) < 1e-12


def test_scale_ranges_vary_the_magnitude_between_trials() -> None:
    rng = np.random.default_rng(0)
    scales = [np.std(DISTRIBUTIONS["normal"].draw(rng, (400,), {"mean": 0.0, "scale": [0.01, 100]}))
              for _ in range(20)]
    assert max(scales) / min(scales) > 100


def test_a_full_rank_matrix_needs_at_least_as_many_rows_as_columns() -> None:
    with pytest.raises(SamplingError, match="rows >= cols"):
        DISTRIBUTIONS["full_column_rank"].draw(np.random.default_rng(0), (2, 3), {"scale": 1.0, "max_condition": 10})


def test_bundled_trials_are_reproducible_from_the_printed_seed() -> None:
    ps = load_problem_set(BUNDLED)
    for p, q in ps.questions():
        cq = compile_question(p, q)
        first, again = draw_trial(cq, 1234, 5), draw_trial(cq, 1234, 5)
        for e, f in zip(first.expected, again.expected, strict=True):
            np.testing.assert_array_equal(e, f)


def test_adding_a_question_does_not_change_the_other_draws(tmp_path: Path) -> None:
    extra = "questions:\n  - function: first\n    args: [x, p]\n    returns: x * sum(p)\n"
    base = load_problem_set(write_spec(tmp_path, SPEC, "a.yaml"))
    more = load_problem_set(write_spec(tmp_path / "..", SPEC.replace("questions:\n", extra), "b.yaml"))
    before = {q.function: compile_question(p, q) for p, q in base.questions()}
    after = {q.function: compile_question(p, q) for p, q in more.questions()}
    assert "first" in after
    for function, cq in before.items():
        assert _same(draw_trials(cq, 9), draw_trials(after[function], 9)), function


def test_a_trial_is_drawn_alike_alone_and_among_the_others(questions: dict) -> None:
    # what --trial N relies on to replay a failure: no draw depends on the draws before it
    cq = questions["soft"]
    every = draw_trials(cq, 4, trials=5)
    assert _same([draw_trial(cq, 4, 3)], [every[3]])
    assert _same([draw_trial(cq, 4, 6, cq.question.cases[1])], [every[6]])


def test_a_lazy_plan_draws_each_question_when_first_needed_with_the_same_values() -> None:
    ps = load_problem_set(BUNDLED)
    eager, lazy = make_plan(ps, 11), make_plan(ps, 11, lazy=True)
    assert eager.drawn and not lazy.drawn
    first = lazy.questions[0]
    assert lazy.questions[0] is first and not lazy.drawn  # drawn once, and the others not yet
    assert len(lazy.questions) == len(eager.questions) and lazy.questions[1:3] == tuple(lazy.questions)[1:3]
    for e, d in zip(eager.questions, lazy.questions, strict=True):
        assert e.error == d.error and len(e.groups) == len(d.groups)
        for eg, dg in zip(e.groups, d.groups, strict=True):
            assert _same(list(eg), list(dg))
            for t, u in zip(eg, dg):
                assert all(np.array_equal(a, b) for a, b in zip(t.expected, u.expected, strict=True))
    assert lazy.drawn


# --- compiled questions: cached per spec object, never shared between specs ----------


def test_a_question_is_compiled_once_per_problem_and_question(tmp_path: Path) -> None:
    ps = load_problem_set(write_spec(tmp_path, SPEC))
    (p, q1), (_, q2) = list(ps.questions())[:2]
    assert compile_question(p, q1) is compile_question(p, q1)
    assert compile_question(p, q2).output_program is not compile_question(p, q1).output_program
    again = load_problem_set(write_spec(tmp_path, SPEC))  # the same files loaded again: other objects
    p_again, q_again = next(again.questions())
    assert compile_question(p_again, q_again) is not compile_question(p, q1)
    assert _same(draw_trials(compile_question(p_again, q_again), 3), draw_trials(compile_question(p, q1), 3))


def test_problem_sets_with_the_same_names_never_share_a_program(tmp_path: Path) -> None:
    # same problem name, function and arguments: only what the question returns differs
    spec = "problem: s\ndims: {n: [2, 4]}\ninputs:\n  x: {shape: [n]}\nquestions:\n  - function: f\n    args: [x]\n"
    one = load_problem_set(write_spec(tmp_path, spec + "    returns: 2 * x\n", "one.yaml"))
    other = load_problem_set(write_spec(tmp_path, spec + "    returns: 3 * x\n", "other.yaml"))
    for ps, factor in ((one, 2.0), (other, 3.0), (one, 2.0)):
        for t in draw_trials(compile_question(*next(ps.questions())), 5):
            np.testing.assert_array_equal(t.expected[0], factor * t.args["x"])


def test_every_bundled_expected_value_is_what_the_reference_computes_from_the_trial() -> None:
    # the plan's compiled, cached programs against the graphs resolved and evaluated anew
    cached, fresh = load_problem_set(BUNDLED), load_problem_set(BUNDLED)
    for (p, q), (p2, q2) in zip(cached.questions(), fresh.questions(), strict=True):
        cq, nodes = compile_question(p, q), _resolved_outputs(p2, q2)
        for t in draw_trials(cq, 3, trials=2):
            env = {**{d: np.asarray(float(v)) for d, v in t.dims.items()}, **t.args}
            for got, node in zip(t.expected, nodes, strict=True):
                value = evaluate(node, env)
                assert got.dtype == value.dtype and got.shape == value.shape, q.function
                assert got.tobytes() == value.tobytes(), q.function


def _resolved_outputs(p: ProblemSpec, q: QuestionSpec) -> list:
    leaves = frozenset(q.args) | {d.name for d in p.dims}
    return [p.graph.resolve(out.expr, leaves) for out in q.outputs]
