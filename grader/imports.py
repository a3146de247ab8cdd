"""Which student functions use a forbidden module, found from the source without running it.

Hand-derived gradients must not come from an automatic-differentiation package.
A function is ``forbidden`` when its body imports such a module, calls
``__import__`` / ``importlib.import_module`` with its name, uses a name that a
top-level import of it bound, or calls another top-level function that is
forbidden. Functions that stay clear of it are graded as usual.
"""

from __future__ import annotations

import ast
import unicodedata
from typing import Iterable

DEFAULT_FORBIDDEN = ("torch", "jax", "jaxlib", "tensorflow", "autograd", "mxnet", "paddle", "theano", "chainer",
                     "mygrad", "functorch")


def forbidden_uses(source: str | ast.Module, modules: Iterable[str]) -> dict[str, str]:
    """Map each top-level function that relies on a forbidden module to a message naming it.

    ``source`` is the text, or the tree if it was parsed already: parsing and walking it are
    the whole cost, and text that cannot name a forbidden module is neither parsed nor walked.
    """
    banned = set(modules)
    if isinstance(source, str) and cannot_name(source, banned):
        return {}
    try:
        tree = source if isinstance(source, ast.Module) else ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    bound = _top_level_bindings(tree, banned)  # name -> module
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    direct: dict[str, str] = {}
    calls: dict[str, set[str]] = {}
    for name, fn in functions.items():  # one walk per function: each costs about a microsecond per node
        module, calls[name] = _uses(fn, banned, bound, functions)
        if module is not None:
            direct[name] = module
    return {name: f"uses '{module}', which this problem set forbids: derive the result by hand with NumPy"
            for name, module in _through_calls(calls, direct).items()}


def cannot_name(source: str, banned: Iterable[str]) -> bool:
    """Whether the text alone rules out every use that ``forbidden_uses`` looks for.

    An import or a name bound from one spells the module as an identifier, which Python
    reads in NFKC form: in the text so normalized it appears verbatim. The only other way
    is the string given to ``__import__`` or ``import_module``, which escapes or literals
    joined by the parser can spell in pieces, but such a call names its function as an
    identifier. One pass over the text instead of a walk of every node.
    """
    text = source if source.isascii() else unicodedata.normalize("NFKC", source)
    return "__import__" not in text and "import_module" not in text and not any(name in text for name in banned)


def _root(module: str | None) -> str:
    return (module or "").split(".")[0]


def _imported(node: ast.AST, banned: set[str]) -> str | None:
    """The banned module an import statement or dynamic-import call names, if any."""
    if isinstance(node, ast.Import):
        return next((_root(a.name) for a in node.names if _root(a.name) in banned), None)
    if isinstance(node, ast.ImportFrom) and node.level == 0 and _root(node.module) in banned:
        return _root(node.module)
    if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str) and _names_an_import(node.func)):
        target = _root(node.args[0].value)
        return target if target in banned else None
    return None


def _names_an_import(func: ast.expr) -> bool:
    """``__import__``, ``import_module`` or ``importlib.import_module``."""
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return (isinstance(func, ast.Attribute) and func.attr == "import_module" and isinstance(func.value, ast.Name)
            and func.value.id == "importlib")


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements run at import: the top level and inside top-level if/try/with/for blocks."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        found.append(node)
        for name in ("body", "orelse", "finalbody", "handlers"):
            todo += [n for n in getattr(node, name, []) if isinstance(n, (ast.stmt, ast.excepthandler))]
    return found


def _top_level_bindings(tree: ast.Module, banned: set[str]) -> dict[str, str]:
    """Module-level names that stand for a banned module: imports, and names assigned from them."""
    bound: dict[str, str] = {}
    for node in _module_level(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and (module := _imported(node, banned)):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = module
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            # t = __import__("torch"), T = torch, g = lambda x: torch.grad(x)
            module = _direct_use(node.value, banned, bound)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets if module else []:
                bound.update({n.id: module for n in ast.walk(target) if isinstance(n, ast.Name)})
    return bound


def _direct_use(fn: ast.AST, banned: set[str], bound: dict[str, str]) -> str | None:
    return _uses(fn, banned, bound, {})[0]


def _uses(fn: ast.AST, banned: set[str], bound: dict[str, str], functions: dict[str, ast.AST]
          ) -> tuple[str | None, set[str]]:
    """The first banned module ``fn`` uses (imported, or through a bound name), and the ``functions`` it names."""
    used: str | None = None
    names: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name):
            if used is None and node.id in bound:
                used = bound[node.id]
            if node.id in functions:
                names.add(node.id)
        elif used is None and isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)):
            used = _imported(node, banned)
    return used, names


def _through_calls(calls: dict[str, set[str]], direct: dict[str, str]) -> dict[str, str]:
    """Spread 'forbidden' to every function that calls a forbidden one, until nothing changes."""
    result = dict(direct)
    changed = True
    while changed:
        changed = False
        for name, callees in calls.items():
            hit = next((result[c] for c in callees if c in result and c != name), None)
            if name not in result and hit is not None:
                result[name] = hit
                changed = True
    return result
