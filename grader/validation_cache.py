"""Remembering that a problem set passed its dry run, so everyday grading need not repeat it.

The dry run draws and evaluates every question at several sizes: about a third
of loading a problem set. Its verdict depends only on the spec files and on the
grader's own code, so a set whose files and code hash to a key seen before is
known to be valid. The key covers every spec file, ``set.yaml``, and every
source file of the ``grader`` and ``reference`` packages; a marker file per key
lives in the cache folder (``GRADE_CACHE_DIR``, else ``$XDG_CACHE_HOME`` or
``~/.cache``, under ``backprop-autograder``). ``grade validate`` and
``grade selfcheck`` never use it. Anything unreadable or unwritable simply means
the dry run runs, as it always did.

The marker also holds the files' parsed YAML as JSON, so that a known set is
read without importing PyYAML or parsing YAML at all (half of loading it). Only
documents that JSON gives back exactly are kept; the others are parsed again.
The files are hashed either way, so an edited spec is never read from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

PACKAGES = (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "reference")


def cache_dir() -> Path:
    explicit = os.environ.get("GRADE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backprop-autograder"


def set_key(files: list[Path]) -> str | None:
    """A hash of the spec files and of the grader's code; None when a file cannot be read."""
    digest = hashlib.sha256()
    try:
        for path in sorted(files) + sorted(p for pkg in PACKAGES for p in pkg.rglob("*.py")):
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()


def known_valid(key: str | None) -> bool:
    return key is not None and (cache_dir() / "validated" / key).is_file()


def cached_documents(key: str | None) -> dict[str, Any]:
    """The parsed files of a set known valid, by path; empty when there are none (they are then parsed)."""
    if key is None:
        return {}
    try:
        docs = json.loads((cache_dir() / "validated" / key).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return docs if isinstance(docs, dict) else {}


def remember_valid(key: str | None, documents: dict[str, Any] | None = None) -> None:
    """Mark the set of ``key`` valid, keeping those of its parsed ``documents`` that JSON round-trips exactly."""
    if key is None:
        return
    kept = {path: doc for path, doc in (documents or {}).items() if _round_trips(doc)}
    folder = cache_dir() / "validated"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{key}.{os.getpid()}"
        temp.write_text(json.dumps(kept), encoding="utf-8")
        temp.replace(folder / key)  # atomic: a grade running meanwhile reads the old marker or the new one
    except OSError:  # a read-only home or cache: the dry run will simply run next time too
        pass


def _round_trips(doc: Any) -> bool:
    # YAML can hold what JSON cannot (integer keys, dates, NaN); such a file is simply parsed each time
    try:
        return json.loads(json.dumps(doc, allow_nan=False)) == doc
    except (TypeError, ValueError):
        return False
