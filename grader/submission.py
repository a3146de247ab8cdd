"""Reading a submission statically, before any of it runs.

A ``.py`` file is read as it is; a Jupyter notebook (``.ipynb``) becomes the
code of its code cells in order, with IPython magics (``%...``, ``%%...``) and
shell escapes (``!...``) replaced by ``pass`` and noted, and a map from each line
back to its cell so messages point where the student wrote the code. The source
is compiled (never run) to find syntax errors with their line, and parsed to
list the functions it defines. Nothing here imports or executes student code.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from reference.errors import ToolkitError

MAX_SOURCE_BYTES = 5 * 1024 * 1024
_MAGIC = re.compile(r"^(\s*)(%%?|!)(.*)$")


class SubmissionError(ToolkitError):
    """A submission that cannot be read at all (missing, unreadable, not a notebook)."""


@dataclass(frozen=True)
class SyntaxIssue:
    line: int
    message: str
    text: str  # the offending line


@dataclass(frozen=True)
class Submission:
    path: Path
    source: str
    notes: tuple[str, ...]  # what reading changed (skipped magics)
    cells: tuple[tuple[int, int], ...] | None  # per source line (1-based index - 1): (cell, line in cell)
    syntax_error: SyntaxIssue | None

    @cached_property
    def functions(self) -> tuple[str, ...]:
        """The top-level functions, found statically (none when the file does not compile).

        Parsed on first use: grading does not need the tree (the worker reports what the
        file defines), and parsing costs as much as compiling.
        """
        if self.syntax_error is not None:
            return ()
        tree = ast.parse(self.source, filename=self.name)
        return tuple(dict.fromkeys(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))))

    @property
    def name(self) -> str:
        return self.path.name

    def locate(self, line: int) -> str:
        """Where a line of the (converted) source is, in the student's own terms."""
        if self.cells is None or not 1 <= line <= len(self.cells):
            return f"line {line}"
        cell, in_cell = self.cells[line - 1]
        return f"cell {cell}, line {in_cell}"


def read_submission(path: str | Path) -> Submission:
    """Read and statically check a ``.py`` file or an ``.ipynb`` notebook."""
    path = Path(path)
    raw = _read_text(path)
    if path.suffix == ".ipynb":
        source, notes, cells = _from_notebook(path, raw)
    else:
        source, notes, cells = raw, (), None
    return Submission(path, source, notes, cells, _syntax_error(source, path.name))


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise SubmissionError(f"{path}: larger than {MAX_SOURCE_BYTES // 2**20} MiB; is this a submission?")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SubmissionError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SubmissionError(f"{path}: is a folder; give the .py or .ipynb file") from None
    except UnicodeDecodeError:
        raise SubmissionError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise SubmissionError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _from_notebook(path: Path, raw: str) -> tuple[str, tuple[str, ...], tuple[tuple[int, int], ...]]:
    try:
        cells = json.loads(raw)["cells"]
        # numbered among all cells, as the student sees them in the notebook
        texts = [(i, "".join(c["source"]) if isinstance(c["source"], list) else str(c["source"]))
                 for i, c in enumerate(cells, start=1) if c.get("cell_type") == "code"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SubmissionError(f"{path}: not a Jupyter notebook (no readable cells)") from None
    lines: list[str] = []
    where: list[tuple[int, int]] = []
    notes: list[str] = []
    for number, text in texts:
        for i, line in enumerate(_cell_lines(text, number, notes), start=1):
            lines.append(line)
            where.append((number, i))
        lines.append("")  # cells are separate blocks
        where.append((number, len(text.splitlines()) + 1))
    return "\n".join(lines) + "\n", tuple(notes), tuple(where)


def _cell_lines(text: str, cell: int, notes: list[str]) -> list[str]:
    """The cell's lines with magics and shell escapes replaced by ``pass`` (same indentation)."""
    lines = text.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        notes.append(f"cell {cell}: cell magic '{lines[0].strip()}' skipped (the whole cell)")
        return ["pass"] + [""] * (len(lines) - 1)
    out = []
    for i, line in enumerate(lines, start=1):
        m = _MAGIC.match(line)
        if m:
            kind = "shell escape" if m.group(2) == "!" else "IPython magic"
            notes.append(f"cell {cell}, line {i}: {kind} '{line.strip()}' skipped")
            out.append(f"{m.group(1)}pass")
        else:
            out.append(line)
    return out


def _syntax_error(source: str, filename: str) -> SyntaxIssue | None:
    try:
        # compiled, not just parsed: compiling also catches what the parser lets through ('return' outside a function)
        compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = exc.lineno or 0
        text = (exc.text or "").rstrip("\n")
        return SyntaxIssue(line, exc.msg, text)
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return SyntaxIssue(0, f"cannot be compiled: {exc}", "")
    return None
