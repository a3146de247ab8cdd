"""Shared helpers for the tests."""

from __future__ import annotations

from pathlib import Path

BUNDLED = Path(__file__).resolve().parent.parent / "problems" / "hw1"


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    """Write one spec file into ``folder`` and return its path."""
    path = folder / name
    path.write_text(text)
    return path
