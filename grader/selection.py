"""Which questions ``--only PATTERN`` selects, for the steps around ``grade()`` that need the same list."""

from __future__ import annotations

import fnmatch

from grader.spec import ProblemSet, ProblemSpec, QuestionSpec


def selected_questions(problem_set: ProblemSet, only: str | None) -> list[tuple[ProblemSpec, QuestionSpec]]:
    """The questions whose function or id matches the glob ``only`` (all of them for None), as grade() picks."""
    return [(p, q) for p, q in problem_set.questions()
            if only is None or any(fnmatch.fnmatchcase(name, only) for name in (q.function, q.id))]
