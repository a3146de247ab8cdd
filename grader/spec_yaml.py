"""Reading spec files into plain data: strict YAML, and the expansion of ``variants``.

Plain YAML silently keeps the last of two equal keys and reads ``1e-8`` as a
string; spec files are read with both fixed. A file with ``variants:`` is a
family of problems written once: each variant fills the ``${name}`` placeholders.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable, Mapping

Report = Callable[..., None]  # (where, message, fix="") -> None


@functools.lru_cache(maxsize=None)
def _loader() -> type:
    """A safe loader that rejects duplicate keys and reads ``1e-8`` as a number.

    Built on libyaml's parser where PyYAML has it: five times faster. Made on first use, so
    that a set read from the validation cache never imports PyYAML at all.
    """
    import yaml

    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
        # plain YAML silently keeps the last of two equal keys
        loader.flatten_mapping(node)
        seen: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen[key] = loader.construct_object(value_node, deep=deep)
        return seen

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    # YAML 1.1 reads 1e-8 (no dot) as a string; tolerances are written that way, so read it as a number.
    UniqueKeyLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return UniqueKeyLoader


def read_yaml(path: Path, add: Report) -> Any:
    """The file's data, or None after reporting why it cannot be read."""
    import yaml

    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except OSError as exc:
        add("file", f"cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError:
        add("file", "is not UTF-8 text")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc)
        add(where, f"not valid YAML: {problem}", "check the indentation and quoting around that line")
    return None


def expand_variants(data: dict, add: Report) -> list[tuple[str, dict]]:
    """One body per variant, with its ``${name}`` placeholders filled in."""
    variants = data["variants"]
    if not isinstance(variants, list) or not variants or not all(isinstance(v, dict) and v for v in variants):
        add("variants", "must be a non-empty list of mappings name: value",
                "write e.g. variants: [{P: reg, f: '5 * relu(z1)'}, {P: mse, f: 'tanh(z1)'}]")
        return []
    body = {k: v for k, v in data.items() if k != "variants"}
    labels = [str(v.get("P", v.get("name", i))) for i, v in enumerate(variants, start=1)]
    _check_only_variants(body.get("questions"), labels, add)
    expanded = []
    for i, variant in enumerate(variants, start=1):
        label = labels[i - 1]
        used: set[str] = set()
        try:
            expanded.append((label, _substitute(body, variant, used)))
        except KeyError as exc:
            add(f"variants[{i}]", f"does not define ${{{exc.args[0]}}}, which the file uses",
                    f"add {exc.args[0]}: ... to this variant")
            continue
        for unused in sorted(set(map(str, variant)) - used):
            add(f"variants[{i}].{unused}", "is not used anywhere in the file", "remove it or fix its name")
    return [(label, _keep_questions_of(body, label)) for label, body in expanded]


ONLY = "only_variants"  # a question asked of some variants only: only_variants: [reg]


def _check_only_variants(questions: Any, labels: list[str], add: Report) -> None:
    for i, q in enumerate(questions if isinstance(questions, list) else [], start=1):
        only = q.get(ONLY) if isinstance(q, dict) else None
        if only is not None and (not isinstance(only, list) or any(str(v) not in labels for v in only)):
            add(f"questions[{i}].{ONLY}", f"must list variants of this file ({', '.join(labels)}), got {only!r}")


def _keep_questions_of(body: dict, label: str) -> dict:
    questions = body.get("questions")
    if not isinstance(questions, list):
        return body
    kept = [{k: v for k, v in q.items() if k != ONLY} if isinstance(q, dict) else q for q in questions
            if not (isinstance(q, dict) and isinstance(q.get(ONLY), list) and label not in map(str, q[ONLY]))]
    return {**body, "questions": kept}


_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _substitute(value: Any, variant: Mapping[str, Any], used: set[str]) -> Any:
    """Fill ``${name}`` placeholders; a string that is only a placeholder takes the value whole (any type)."""
    if isinstance(value, dict):
        return {_substitute(k, variant, used): _substitute(v, variant, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variant, used) for v in value]
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value.strip())
    if whole:
        used.add(whole.group(1))
        return variant[whole.group(1)]

    def fill(m: re.Match[str]) -> str:
        used.add(m.group(1))
        return str(variant[m.group(1)])

    return _PLACEHOLDER.sub(fill, value)
