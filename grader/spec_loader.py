"""YAML -> the typed spec model, collecting every problem instead of stopping at the first.

Each section has its own small reader that records what is wrong in a
``Problems`` collector and returns what it could build. After the structure is
sound, every question is dry-run once (its first trial and its fixed cases) so
that shapes that do not fit, kinks that cannot be avoided and distributions that
cannot be drawn are reported by ``grade validate`` rather than met while grading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from grader.distributions import DISTRIBUTIONS
from grader.imports import DEFAULT_FORBIDDEN
from grader.spec import PROJECT_DEFAULTS, DimSpec, InputSpec, ProblemSet, ProblemSpec, SpecProblem
from grader.spec_checks import Problems, check_mapping, check_number, parse_expression
from grader.spec_questions import check_unique_ids, read_question
from grader.validation_cache import cached_documents, known_valid, remember_valid, set_key
from reference.errors import CycleError, ExpressionError, ToolkitError
from reference.expr import Expr
from reference.graph import Graph

SET_FILE = "set.yaml"
FILE_KEYS = ("problem", "title", "defaults", "dims", "inputs", "nodes", "questions", "variants")
SET_KEYS = ("name", "title", "defaults", "forbidden_imports", "examples")
INPUT_KEYS = ("shape", "dist")


def load(path: Path, trust_cache: bool = False) -> tuple[ProblemSet | None, list[SpecProblem]]:
    """Read a problem-set folder or a single spec file; return what was built and every problem.

    With ``trust_cache``, the dry run is skipped for a set that passed it before with
    the same files and the same grader code (``grader.validation_cache``).
    """
    if path.name == SET_FILE:  # the set's settings, not a problem: the set is the folder
        path = path.parent
    if not path.exists():
        return None, [SpecProblem(str(path), None, "path", "does not exist",
                                  "give a problem-set folder or a .yaml spec file")]
    files = sorted(p for p in path.glob("*.y*ml") if p.name != SET_FILE) if path.is_dir() else [path]
    set_file = (path if path.is_dir() else path.parent) / SET_FILE
    key = set_key(files + ([set_file] if set_file.exists() else []))
    dry_run = not (trust_cache and known_valid(key))
    read = _Documents(cached_documents(key) if not dry_run else {})
    meta, problems = _read_set_meta(set_file, read)
    if not files:
        problems.append(SpecProblem(str(path), None, "path", "holds no .yaml spec files",
                                    "add one file per problem, such as reg.yaml"))
    specs = []
    for f in files:
        built, found = _load_file(f, meta.get("defaults", {}), read, dry_run)
        problems += found
        specs += built
    problems += _check_across_files(specs)
    if not problems and (dry_run or read.parsed):  # newly valid, or valid but not kept as JSON yet
        remember_valid(key, read.documents)
    name = meta.get("name") or (path.name if path.is_dir() else path.stem)
    title = meta.get("title") or name
    forbidden = tuple(meta.get("forbidden_imports", DEFAULT_FORBIDDEN))
    return ProblemSet(path, str(name), str(title), tuple(specs), forbidden, meta.get("examples")), problems


class _Documents:
    """Each file's parsed data: from the validation cache when the set is known valid, else from its YAML."""

    def __init__(self, cached: dict[str, Any]) -> None:
        self.cached = cached
        self.documents: dict[str, Any] = {}  # everything read, by path, for the cache
        self.parsed = False  # some file was parsed from YAML

    def __call__(self, path: Path, out: Problems) -> Any:
        if str(path) in self.cached:
            data = self.cached[str(path)]
        else:
            from grader.spec_yaml import read_yaml  # PyYAML only when something is parsed

            data, self.parsed = read_yaml(path, out.add), True
        self.documents[str(path)] = data
        return data


def _read_set_meta(path: Path, read: _Documents) -> tuple[dict[str, Any], list[SpecProblem]]:
    if not path.exists():
        return {}, []
    out = Problems(str(path))
    data = read(path, out)
    if data is None:
        return {}, out.found
    if not isinstance(data, dict):
        out.add("file", "must be a mapping with name, title and defaults")
        return {}, out.found
    out.unknown_keys("", data, SET_KEYS)
    forbidden = data.get("forbidden_imports", list(DEFAULT_FORBIDDEN))
    if not isinstance(forbidden, list) or not all(isinstance(m, str) and m.isidentifier() for m in forbidden):
        out.add("forbidden_imports", f"must be a list of module names, got {forbidden!r}",
                "write e.g. forbidden_imports: [torch, jax]")
        forbidden = list(DEFAULT_FORBIDDEN)
    examples = data.get("examples")
    if examples is not None:
        folder = path.parent / str(examples)
        if not folder.is_dir():
            out.add("examples", f"{folder} is not a folder", "give the folder of example submissions, "
                                                             "relative to set.yaml")
        examples = folder if folder.is_dir() else None
    meta = {**data, "forbidden_imports": forbidden, "examples": examples}
    return {**meta, "defaults": _read_defaults(data.get("defaults", {}), out, {})}, out.found


def _load_file(path: Path, set_defaults: Mapping[str, Any], read: _Documents, dry_run: bool = True
               ) -> tuple[list[ProblemSpec], list[SpecProblem]]:
    out = Problems(str(path))
    data = read(path, out)
    if data is None and not out.found:
        out.add("file", "is empty", "write a problem spec: dims, inputs, nodes, questions")
    if data is None:
        return [], out.found
    if not isinstance(data, dict):
        out.add("file", f"must be a mapping of fields, not a {type(data).__name__}", "see docs/specs.md")
        return [], out.found
    out.unknown_keys("", data, FILE_KEYS)
    if "variants" not in data:
        return _build_checked(path, data, out, set_defaults, dry_run)
    from grader.spec_yaml import expand_variants

    expanded = expand_variants(data, out.add)
    specs, found = [], list(out.found)
    for label, body in expanded:
        spec, problems = _build_checked(path, body, Problems(f"{path} [variant {label}]"), set_defaults, dry_run)
        specs += spec
        found += problems
    return specs, found


def _build_checked(path: Path, data: dict, out: Problems, set_defaults: Mapping[str, Any], dry_run: bool
                   ) -> tuple[list[ProblemSpec], list[SpecProblem]]:
    spec = _build(path, data, out, set_defaults)
    if spec is not None and not out.found and dry_run:
        _dry_run(spec, out)
    return ([] if spec is None else [spec]), out.found


def _build(path: Path, data: dict, out: Problems, set_defaults: Mapping[str, Any]) -> ProblemSpec | None:
    name = data.get("problem", path.stem)
    if not isinstance(name, str) or not name.isidentifier():
        out.add("problem", f"must be an identifier-like name, got {name!r}", "use letters, digits and _")
        name = path.stem
    defaults = _read_defaults(data.get("defaults", {}), out, {**PROJECT_DEFAULTS, **set_defaults})
    # Names declared anywhere count as known even where their declaration is broken,
    # so one mistake is reported once, not again at every use of the name.
    declared_dims, declared_inputs, declared_nodes = (_keys(data.get(k)) for k in ("dims", "inputs", "nodes"))
    dims = _read_dims(data.get("dims", {}), out)
    inputs = _read_inputs(data.get("inputs", {}), out, declared_dims)
    nodes = _read_nodes(data.get("nodes", {}), out, declared_inputs | declared_dims)
    graph = Graph(nodes, frozenset(inputs) | {d.name for d in dims}, frozenset(d.name for d in dims))
    _check_node_graph(Graph(nodes, frozenset(declared_dims | declared_inputs | (declared_nodes - set(nodes))),
                            frozenset(declared_dims)), out)
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        out.add("questions", "must be a non-empty list of questions", "add at least one question")
        raw_questions = []
    known = declared_dims | declared_inputs | declared_nodes
    questions = [q for i, raw in enumerate(raw_questions)
                 if (q := read_question(i, raw, out, defaults, known, set(inputs),
                                            declared_inputs | declared_dims, declared_dims)) is not None]
    out.question = None
    check_unique_ids(questions, out)
    title = data.get("title", name)
    return ProblemSpec(path, name, str(title), tuple(dims), inputs, nodes, tuple(questions), graph)


def _read_defaults(raw: Any, out: Problems, base: Mapping[str, Any]) -> dict[str, Any]:
    raw = check_mapping(raw, "defaults", out, "write e.g. defaults: {trials: 10, rtol: 1e-6}")
    out.unknown_keys("defaults.", raw, tuple(PROJECT_DEFAULTS))
    merged = dict(base)
    for key, value in raw.items():
        if key in PROJECT_DEFAULTS and check_number(value, f"defaults.{key}", out, integer=key == "trials",
                                               positive=key not in ("atol", "rtol")):
            merged[key] = value
    return merged


def _read_dims(raw: Any, out: Problems) -> list[DimSpec]:
    dims: list[DimSpec] = []
    for name, value in check_mapping(raw, "dims", out, "write e.g. dims: {n: [1, 5], K: 3}").items():
        where = f"dims.{name}"
        if not str(name).isidentifier():
            out.add(where, "a dimension name must be an identifier")
            continue
        bounds = value if isinstance(value, list) else [value, value]
        earlier = {d.name for d in dims}
        if len(bounds) != 2 or not all(_bound_ok(b, earlier) for b in bounds):
            out.add(where, f"must be a whole number >= 1 or a range [low, high] of them (or of earlier dims), "
                           f"got {value!r}", "write e.g. [1, 5] or [1, n]")
            continue
        if all(isinstance(b, int) for b in bounds) and bounds[0] > bounds[1]:
            out.add(where, f"range [{bounds[0]}, {bounds[1]}] is empty", "put the smaller bound first")
            continue
        dims.append(DimSpec(str(name), bounds[0], bounds[1]))
    return dims


def _bound_ok(b: Any, earlier: set[str]) -> bool:
    return (isinstance(b, int) and not isinstance(b, bool) and b >= 1) or (isinstance(b, str) and b in earlier)


def _keys(section: Any) -> set[str]:
    return {str(k) for k in section} if isinstance(section, dict) else set()


def _read_inputs(raw: Any, out: Problems, dim_names: set[str]) -> dict[str, InputSpec]:
    inputs: dict[str, InputSpec] = {}
    for name, value in check_mapping(raw, "inputs", out, "write e.g. inputs: {x: {shape: [n]}}").items():
        where = f"inputs.{name}"
        if not str(name).isidentifier() or name in dim_names:
            out.add(where, "an input name must be an identifier that is not also a dimension")
            continue
        value = check_mapping(value, where, out, "write e.g. {shape: [n], dist: normal, scale: 2}")
        shape = _read_shape(value.get("shape", []), f"{where}.shape", out, dim_names)
        dist_name = value.get("dist", "normal")
        dist = DISTRIBUTIONS.get(dist_name)
        if dist is None:
            out.add(f"{where}.dist", f"unknown distribution {dist_name!r}", f"use one of {', '.join(DISTRIBUTIONS)}")
            continue
        options = {k: v for k, v in value.items() if k not in INPUT_KEYS}
        out.unknown_keys(f"{where}.", options, tuple(dist.options))
        options = {**dist.options, **options}
        missing = [k for k, v in options.items() if v is None]
        for key in missing:
            out.add(f"{where}.{key}", f"is required by dist {dist_name}")
        for message in ([] if missing else dist.check(options)):
            out.add(where, message)
        inputs[str(name)] = InputSpec(str(name), shape, dist_name, options)
    return inputs


def _read_shape(raw: Any, where: str, out: Problems, dims: set[str]) -> tuple[int | str, ...]:
    if not isinstance(raw, list):
        out.add(where, f"must be a list of dimension names or whole numbers, got {raw!r}", "write e.g. [h, n]")
        return ()
    for s in raw:
        if not ((isinstance(s, int) and not isinstance(s, bool) and s >= 0) or (isinstance(s, str) and s in dims)):
            out.add(where, f"{s!r} is neither a declared dimension nor a whole number", "declare it under dims")
            return ()
    return tuple(raw)


def _read_nodes(raw: Any, out: Problems, variables: set[str]) -> dict[str, Expr]:
    nodes: dict[str, Expr] = {}
    for name, text in check_mapping(raw, "nodes", out, "write e.g. nodes: {z1: W1 @ x + b1}").items():
        where = f"nodes.{name}"
        if not str(name).isidentifier() or name in variables:
            out.add(where, "a node name must be an identifier that is not an input or a dimension")
            continue
        expr = parse_expression(text, where, out)
        if expr is not None:
            nodes[str(name)] = expr
    return nodes


def _check_node_graph(graph: Graph, out: Problems) -> None:
    cycles: set[frozenset[str]] = set()
    for name in graph.nodes:
        try:
            graph.resolve_name(name, graph.variables)
        except CycleError as exc:
            if exc.members not in cycles:
                cycles.add(exc.members)
                out.add(f"nodes.{name}", str(exc), "define one of them without the others")
        except ExpressionError as exc:
            out.add(f"nodes.{name}", str(exc), "define every name it uses under inputs, dims or nodes")


def _check_across_files(specs: list[ProblemSpec]) -> list[SpecProblem]:
    found: list[SpecProblem] = []
    seen_fn: dict[str, str] = {}
    seen_problem: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen_problem:
            found.append(SpecProblem(str(spec.path), None, "problem", f"name '{spec.name}' is also used by "
                                     f"{seen_problem[spec.name]}", "give every problem its own name"))
        seen_problem[spec.name] = str(spec.path)
        for q in spec.questions:
            if q.function in seen_fn:
                found.append(SpecProblem(str(spec.path), q.id, "function", f"'{q.function}' is also asked for "
                                         f"in {seen_fn[q.function]}", "every question needs its own function"))
            seen_fn[q.function] = str(spec.path)
    return found


def _dry_run(spec: ProblemSpec, out: Problems) -> None:
    """Draw each question's first trials and its cases, so mistakes show now rather than while grading."""
    from grader.sampling import compile_question, draw_trial, largest_dims  # sampling needs the model built here

    for q in spec.questions:
        out.question = q.id
        try:
            cq = compile_question(spec, q)
            # Trial 0 has every dimension at its smallest, often 1, where (1,) @ (1, 1)
            # fits and any vector is a scalar; the largest sizes and a random draw catch those.
            first = draw_trial(cq, 0, 0)
            if q.compare.mode == "positive_affine" and any(e.shape != () for e in first.expected):
                out.add("returns", "compare mode positive_affine judges a loss: every output must be a scalar")
            draw_trial(cq, 0, 1, largest_dims(spec))
            draw_trial(cq, 0, 2)
            for j, case in enumerate(q.cases):
                draw_trial(cq, 0, q.trials + j, case)
        except ToolkitError as exc:
            out.add("returns" if isinstance(exc, ExpressionError) else "trial", str(exc))
        except Exception as exc:  # a spec must never crash the validator; report what broke
            out.add("trial", f"evaluation failed: {type(exc).__name__}: {exc}")
    out.question = None
