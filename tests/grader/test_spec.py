"""Spec loading and validation: every problem is found, located, and explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.spec import PROJECT_DEFAULTS, SpecProblem, load_problem_set, validate
from reference.errors import SpecError

from tests.helpers import BUNDLED, write_spec

GOOD = """
problem: net
dims: {n: [1, 4], h: [1, 3]}
inputs:
  x: {shape: [n]}
  W: {shape: [h, n], dist: normal, scale: [0.5, 2]}
nodes:
  z: W @ x
  a: tanh(z)
  loss: sum(a ** 2)
questions:
  - function: net_forward
    args: [x, W]
    returns: a
  - function: net_grad
    args: [x, W]
    returns: {dW: 'grad(loss, W)'}
    points: 3
    rtol: 1e-8
"""


def only(problems: list[SpecProblem]) -> SpecProblem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_bundled_problem_set_is_valid() -> None:
    assert validate(BUNDLED) == []
    ps = load_problem_set(BUNDLED)
    functions = [q.function for _, q in ps.questions()]
    assert {"reg_forward", "reg_loss", "reg_dl_dyhat", "reg_dyhat_dz3", "reg_dz2_dz1", "reg_grads",
            "reg_sgd_step"} <= set(functions)


def test_good_spec_builds_typed_questions(tmp_path: Path) -> None:
    ps = load_problem_set(write_spec(tmp_path, GOOD))
    (_, fwd), (_, grad) = ps.questions()
    assert fwd.args == ("x", "W") and not fwd.returns_tuple
    assert fwd.tolerance.rtol == PROJECT_DEFAULTS["rtol"] and fwd.trials == PROJECT_DEFAULTS["trials"]
    assert grad.returns_tuple and [o.name for o in grad.outputs] == ["dW"]
    assert grad.points == 3 and grad.tolerance.rtol == 1e-8
    assert ps.max_score == 4


def test_set_defaults_apply_below_question_overrides(tmp_path: Path) -> None:
    write_spec(tmp_path, GOOD)
    (tmp_path / "set.yaml").write_text("name: demo\ndefaults: {trials: 3, atol: 0.5}\n")
    ps = load_problem_set(tmp_path)
    assert ps.name == "demo"
    assert all(q.trials == 3 and q.tolerance.atol == 0.5 for _, q in ps.questions())


BROKEN = [
    # (description, replacement applied to GOOD, expected question, field, words in message)
    ("typo in a field", ("    points: 3\n", "    pionts: 3\n"), "net_grad", "pionts", "did you mean 'points'"),
    ("unknown function", ("a: tanh(z)", "a: tahn(z)"), None, "nodes.a", "did you mean 'tanh'"),
    ("unknown distribution", ("dist: normal,", "dist: gaussian,"), None, "inputs.W.dist", "use one of normal"),
    ("empty dimension range", ("n: [1, 4]", "n: [4, 1]"), None, "dims.n", "empty"),
    ("undeclared dimension in a shape", ("shape: [n]}", "shape: [m]}"), None, "inputs.x.shape",
     "neither a declared dimension"),
    ("argument that does not exist", ("args: [x, W]\n    returns: a", "args: [x, Wt]\n    returns: a"),
     "net_forward", "args", "did you mean 'W'"),
    ("output not computable from the arguments", ("args: [x, W]\n    returns: a", "args: [x]\n    returns: a"),
     "net_forward", "returns", "needs 'W', which cannot be computed from what is given (h, n, x)"),
    ("shapes that do not fit, caught by the dry run", ("z: W @ x", "z: x @ W"), "net_forward", "trial",
     "in 'x @ W': shapes (4,) @ (3, 4) do not fit: inner sizes 4 and 3 differ"),
    ("points list of the wrong length", ("points: 3", "points: [1, 2]"), "net_grad", "points",
     "2 values for 1 outputs"),
    ("negative tolerance", ("rtol: 1e-8", "rtol: -1"), "net_grad", "rtol", "must be a non-negative number"),
    ("derivative by a dimension", ("'grad(loss, W)'", "'grad(loss, n)'"), "net_grad", "returns",
     "with respect to 'n', a dimension"),
    ("case with a fractional dimension", ("rtol: 1e-8", "cases: [{n: 2.5}]"), "net_grad", "cases",
     "'n: 2.5': a dimension must be a whole number >= 1"),
    ("duplicate question id", ("  - function: net_grad\n", "  - function: net_grad\n    id: net_forward\n"),
     "net_forward", "id", "is used by another question"),
    ("over without positive_affine", ("rtol: 1e-8", "compare: {over: [W]}"), "net_grad", "compare.over",
     "only applies to mode positive_affine"),
    ("positive_affine on a non-scalar", ("rtol: 1e-8", "compare: {mode: positive_affine, over: [W]}"), "net_grad",
     "returns", "every output must be a scalar"),
    ("case fixing a node", ("rtol: 1e-8", "cases: [{z: 1}]"), "net_grad", "cases", "'z' is not an input"),
    ("derivative cut off from its variable", ("args: [x, W]\n    returns: {dW", "args: [z, W]\n    returns: {dW"),
     "net_grad", "returns", "'grad(loss, W)' is zero everywhere: the quantity does not depend on 'W' once the "
     "arguments (W, h, n, z) are leaves"),
    ("cycle among nodes", ("z: W @ x", "z: W @ a"), None, "nodes.z", "cycle"),
    ("grad of a non-scalar", ("'grad(loss, W)'", "'grad(a, W)'"), "net_grad", "trial", "grad needs a scalar"),
    ("eval-like syntax", ("a: tanh(z)", "a: __import__('os')"), None, "nodes.a", "unknown function '__import__'"),
    ("a lambda", ("a: tanh(z)", "a: '(lambda q: q)(z)'"), None, "nodes.a", "only named functions"),
    ("second derivative", ("'grad(loss, W)'", "'grad(sum(grad(loss, W)), W)'"), "net_grad", "returns",
     "second derivatives are not supported"),
    ("compare mode without parameters", ("rtol: 1e-8", "compare: {mode: positive_affine}"), "net_grad",
     "compare.over", "positive_affine needs"),
    ("case naming an unknown input", ("rtol: 1e-8", "cases: [{beta: 1000}]"), "net_grad", "cases",
     "'beta' is not an input"),
    ("duplicate key", ("  a: tanh(z)\n", "  a: tanh(z)\n  a: z\n"), None, "line 10", "duplicate key 'a'"),
    ("unquoted comma in a flow mapping", ("{dW: 'grad(loss, W)'}", "{dW: grad(loss, W)}"), "net_grad", "returns",
     "quote expressions that contain commas"),
    ("bad indentation", ("  z: W @ x\n", " z: W @ x\n"), None, "line", "not valid YAML"),
]


@pytest.mark.parametrize("what,edit,question,field,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_spec_names_file_question_field_and_cause(
    tmp_path: Path, what: str, edit: tuple[str, str], question: str | None, field: str, words: str
) -> None:
    assert edit[0] in GOOD, f"test edit does not apply: {edit[0]!r}"
    path = write_spec(tmp_path, GOOD.replace(edit[0], edit[1], 1))
    problems = validate(path)
    # One cause, one problem; except where every question using a broken node fails on it.
    assert len(problems) == (2 if question == "net_forward" and field == "trial" else 1), problems
    assert all(p.file == str(path) for p in problems)
    assert problems[0].question == question
    assert all(p.field.startswith(field) and words in f"{p.message} Fix: {p.fix}" for p in problems)
    with pytest.raises(SpecError) as info:
        load_problem_set(path)
    assert info.value.problems == problems


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = GOOD.replace("dist: normal,", "dist: gaussian,").replace("    returns: a\n", "    retruns: a\n")
    text = text.replace("rtol: 1e-8", "rtol: -1")
    problems = validate(write_spec(tmp_path, text))
    assert sorted((p.question or "", p.field) for p in problems) == [
        ("", "inputs.W.dist"), ("net_forward", "retruns"), ("net_forward", "returns"), ("net_grad", "rtol")]
    assert "is missing" in next(p.message for p in problems if p.field == "returns")


def test_function_asked_for_twice_across_files(tmp_path: Path) -> None:
    write_spec(tmp_path, GOOD, "a.yaml")
    write_spec(tmp_path, GOOD.replace("problem: net", "problem: other"), "b.yaml")
    problems = validate(tmp_path)
    assert {(Path(p.file).name, p.question, p.field) for p in problems} == {
        ("b.yaml", "net_forward", "function"), ("b.yaml", "net_grad", "function")}
    assert all("also asked for in" in p.message for p in problems)


@pytest.mark.parametrize("content,words", [
    ("", "is empty"),
    ("- just\n- a list\n", "must be a mapping"),
    ("problem: x\n", "questions: must be a non-empty list"),
])
def test_degenerate_files(tmp_path: Path, content: str, words: str) -> None:
    assert words in str(only(validate(write_spec(tmp_path, content))))


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    assert "does not exist" in only(validate(tmp_path / "nope")).message
    assert "holds no .yaml spec files" in only(validate(tmp_path)).message


def test_impossible_kink_avoidance_is_reported(tmp_path: Path) -> None:
    text = GOOD.replace("x: {shape: [n]}", "x: {shape: [n], dist: fixed, value: 0}").replace("tanh(z)", "relu(z)")
    problems = validate(write_spec(tmp_path, text))
    assert [p.question for p in problems] == ["net_forward", "net_grad"]  # both questions need relu(z)
    assert all(p.field == "trial" and "relu at 0 in 'relu(z)'" in p.message and "kink_margin" in p.message
               for p in problems)


FAMILY = """
variants:
  - {P: lin, act: "z", y: {shape: [n], dist: normal}}
  - {P: sq, act: "z ** 2", y: {shape: [n], dist: labels, values: [0, 1]}}
problem: ${P}
dims: {n: [1, 3]}
inputs: {x: {shape: [n]}, y: "${y}"}
nodes: {z: 3 * x, a: "${act}", loss: sum((a - y) ** 2)}
questions:
  - {function: "${P}_grad", args: [x, y], returns: "grad(loss, x)"}
"""


def test_variants_declare_a_family_of_problems_once(tmp_path: Path) -> None:
    ps = load_problem_set(write_spec(tmp_path, FAMILY))
    assert [p.name for p in ps.problems] == ["lin", "sq"]
    assert [q.function for _, q in ps.questions()] == ["lin_grad", "sq_grad"]
    assert ps.problems[1].inputs["y"].dist == "labels"  # a whole-value placeholder keeps its type


def test_variant_problems_name_the_variant(tmp_path: Path) -> None:
    text = FAMILY.replace('act: "z ** 2", ', 'act: "z ** 2", unused: 1, ').replace('{P: lin, act: "z", ', "{P: lin, ")
    problems = validate(write_spec(tmp_path, text))
    assert sorted((p.file, p.field, p.message) for p in problems) == [
        (str(tmp_path / "spec.yaml"), "variants[1]", "does not define ${act}, which the file uses"),
        (str(tmp_path / "spec.yaml"), "variants[2].unused", "is not used anywhere in the file"),
    ]


def test_a_single_file_uses_the_set_yaml_beside_it(tmp_path: Path) -> None:
    path = write_spec(tmp_path, GOOD)
    (tmp_path / "set.yaml").write_text("name: demo\ndefaults: {trials: 4}\nforbidden_imports: [sympy]\n")
    ps = load_problem_set(path)
    assert ps.name == "demo" and ps.forbidden_imports == ("sympy",)
    assert all(q.trials == 4 for _, q in ps.questions())


def test_a_question_can_belong_to_some_variants_only(tmp_path: Path) -> None:
    text = FAMILY + '  - {function: only_sq, args: [x], returns: "a", only_variants: [sq]}\n'
    ps = load_problem_set(write_spec(tmp_path, text))
    assert [q.function for _, q in ps.questions()] == ["lin_grad", "sq_grad", "only_sq"]
    bad = validate(write_spec(tmp_path, text.replace("only_variants: [sq]", "only_variants: [cube]")))
    assert [(p.field, p.message) for p in bad] == [
        ("questions[2].only_variants", "must list variants of this file (lin, sq), got ['cube']")]


def test_output_names_never_reveal_the_expected_expression(tmp_path: Path) -> None:
    text = GOOD.replace("    returns: a\n", "    returns: [a, z]\n")
    (_, listed), (_, mapped) = load_problem_set(write_spec(tmp_path, text)).questions()
    assert [o.name for o in listed.outputs] == ["net_forward[0]", "net_forward[1]"]
    single = load_problem_set(write_spec(tmp_path, GOOD))
    assert [o.name for _, q in single.questions() for o in q.outputs] == ["net_forward", "dW"]
