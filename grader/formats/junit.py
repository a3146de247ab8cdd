"""JUnit XML for CI systems (Jenkins, GitLab, GitHub Actions reporters), from JSON reports.

One ``<testsuite>`` per submission, one ``<testcase>`` per graded output:
``failed``, ``missing`` and ``forbidden`` are ``<failure>``s (the answer is wrong
or absent); ``error`` and ``timeout`` are ``<error>``s (the code did not finish).
It follows the Jenkins/Ant JUnit schema that the tests validate against
(``tests/grader/schemas/junit.xsd``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any, Mapping, Sequence

from grader.formats.feedback import label, question_feedback, summary

FAILURES = ("failed", "missing", "forbidden")
ERRORS = ("error", "timeout")
# XML 1.0 cannot hold most control characters, which a student's message might contain
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def to_junit(docs: Sequence[Mapping[str, Any]]) -> str:
    """The JUnit XML document for one or several reports."""
    root = ET.Element("testsuites", name="backprop-autograder")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    elapsed = 0.0
    for doc in docs:
        suite = _suite(doc)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        elapsed += doc.get("elapsed_seconds", 0.0)
    root.attrib.update({k: str(v) for k, v in totals.items()}, time=f"{elapsed:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _suite(doc: Mapping[str, Any]) -> ET.Element:
    questions = doc["questions"]
    suite = ET.Element("testsuite", {
        "name": _text(f"{doc['problem_set']}: {doc['submission']}"),
        "tests": str(len(questions)),
        "failures": str(sum(q["status"] in FAILURES for q in questions)),
        "errors": str(sum(q["status"] in ERRORS for q in questions)),
        "skipped": "0",
        "time": f"{doc.get('elapsed_seconds', 0.0):.3f}",
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (("submission", doc["submission"]), ("seed", doc["seed"]), ("score", doc["score"]),
                        ("max_score", doc["max_score"])):
        ET.SubElement(properties, "property", name=name, value=_text(str(value)))
    per_output = doc.get("elapsed_seconds", 0.0) / max(1, len(questions))
    for q in questions:
        suite.append(_case(doc, q, per_output))
    ET.SubElement(suite, "system-out").text = _text(summary(doc))
    return suite


def _case(doc: Mapping[str, Any], q: Mapping[str, Any], seconds: float) -> ET.Element:
    case = ET.Element("testcase", name=_text(label(q)), classname=_text(f"{doc['problem_set']}.{q['problem']}"),
                      time=f"{seconds:.3f}")
    if q["status"] in FAILURES or q["status"] in ERRORS:
        kind = "failure" if q["status"] in FAILURES else "error"
        detail = ET.SubElement(case, kind, message=_text(q.get("message") or q["status"]), type=q["status"])
        detail.text = _text(question_feedback(q))
    return case


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)
