"""The one exception hierarchy of the toolkit.

Everything the toolkit raises on purpose derives from ``ToolkitError``; the CLI
turns it into a one-line message and an exit code, never a traceback.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base of every error the toolkit raises deliberately."""


class ExpressionError(ToolkitError):
    """An expression in a spec is not valid: bad syntax, unknown name or function.

    ``col`` is the 0-based column in the expression text where the problem is,
    when it is known, so a validator can point at it.
    """

    def __init__(self, message: str, col: int | None = None) -> None:
        super().__init__(message)
        self.col = col


class CycleError(ExpressionError):
    """Named nodes that are defined in terms of each other."""

    def __init__(self, message: str, members: frozenset[str], col: int | None = None) -> None:
        super().__init__(message, col)
        self.members = members


class EvaluationError(ToolkitError):
    """Evaluating an expression failed: shapes that do not fit, a domain error."""


class SpecError(ToolkitError):
    """A problem spec could not be loaded; carries every problem found."""

    def __init__(self, problems: list) -> None:  # list[grader.spec.SpecProblem]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SamplingError(ToolkitError):
    """No valid trial could be drawn (every draw landed on a kink or a non-finite value)."""
