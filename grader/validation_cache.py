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
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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


def remember_valid(key: str | None) -> None:
    if key is None:
        return
    folder = cache_dir() / "validated"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / key).touch()
    except OSError:  # a read-only home or cache: the dry run will simply run next time too
        pass
