"""HTML reports: self-contained, escaped, with the failing example and the derivative plots drawn.

The screenshot tests render the pages in headless Chromium (Debian package
``chromium``) and check that the chart regions hold drawn pixels of the chart
colours. Without Chromium they are skipped, unless CI is set: then they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from grader.class_report import render_class_report
from grader.curves import plots
from grader.grading import grade
from grader.html_report import REFERENCE_COLOR, STUDENT_COLOR, render_html
from grader.report import to_json
from grader.selection import selected_questions
from grader.spec import load_problem_set
from grader.svg import BAR

from tests.helpers import BUNDLED

EXAMPLES = BUNDLED.parent.parent / "submissions" / "examples"
EVIL = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def gelu_doc() -> dict[str, Any]:
    """A report with a failed element-wise derivative (GELU's inner derivative forgotten) and its plots."""
    ps = load_problem_set(BUNDLED)
    path = EXAMPLES / "gelu_inner_derivative.py"
    doc = to_json(grade(path, ps, 3, only="d_*", trials=3), BUNDLED)
    doc["plots"] = plots(path, selected_questions(ps, "d_*"))
    return doc


def test_plots_compare_the_student_with_the_reference(gelu_doc: dict[str, Any]) -> None:
    by_function = {p["function"]: p for p in gelu_doc["plots"]}
    assert sorted(by_function) == ["d_gelu", "d_leaky_relu", "d_relu", "d_softplus"]
    relu = by_function["d_relu"]
    assert relu["got"] == relu["expected"] and len(relu["x"]) == 200
    gelu = by_function["d_gelu"]
    assert gelu["got"] != gelu["expected"] and gelu["message"] == ""


def test_page_is_self_contained_and_escapes_student_text(gelu_doc: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(gelu_doc))
    doc["notes"] = [f"line 3: NameError: {EVIL}"]
    doc["questions"][0].update(status="error", message=EVIL, diagnosis=[EVIL])
    html = render_html(doc, student=EVIL)
    assert EVIL not in html and "&lt;script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "nothing may be fetched"
    assert "<script" not in html.lower() and "<link" not in html.lower()


def test_failing_example_is_shown_when_the_grader_gives_one(gelu_doc: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(gelu_doc))
    failed = next(q for q in doc["questions"] if q["status"] == "failed")
    assert failed["failure"]["example"] is not None  # the grader gives one; the page shows it
    assert "Smallest failing example" in render_html(doc)
    failed["failure"]["example"] = {"dims": {"n": 2}, "inputs": {"x": [[0.5, -1.25]]},
                                    "expected": [[0.8, 0.1]], "got": [[0.7, 0.2]]}
    html = render_html(doc)
    assert "Smallest failing example" in html and "[[0.5, -1.25]]" in html and "[[0.7, 0.2]]" in html
    failed["failure"]["example"] = None
    assert "Smallest failing example" not in render_html(doc)


def test_class_report_counts_pass_rates(gelu_doc: dict[str, Any]) -> None:
    html = render_class_report([("ann", gelu_doc), (EVIL, gelu_doc)], "hw1", {"ann": "ann.html"})
    assert "2 students" in html and "pass rate per question" in html and EVIL not in html
    assert 'href="ann.html"' in html


# --- rendered in a browser ------------------------------------------------------------

def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is needed for the HTML screenshot tests: apt-get install -y chromium")
        pytest.skip("Chromium is not installed (apt-get install -y chromium); CI runs this test")
    return found


def screenshot(html: str, tmp_path: Path, width: int = 1000, height: int = 2000) -> Image.Image:
    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")
    png = tmp_path / "page.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
                        page.as_uri()], check=True, capture_output=True, timeout=120)
    return Image.open(png).convert("RGB")


def count_colour(image: Image.Image, hex_colour: str, tolerance: int = 40) -> int:
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    pixels = np.asarray(image, dtype=np.int16)  # (height, width, 3)
    return int(np.all(np.abs(pixels - target) <= tolerance, axis=-1).sum())


def test_derivative_plots_are_drawn_in_a_browser(gelu_doc: dict[str, Any], tmp_path: Path) -> None:
    image = screenshot(render_html(gelu_doc), tmp_path)
    # four curves of each colour, 2.5 px wide and hundreds of px long
    assert count_colour(image, REFERENCE_COLOR) > 1500
    assert count_colour(image, STUDENT_COLOR) > 1000
    without = screenshot(render_html({**gelu_doc, "plots": []}), tmp_path)
    assert count_colour(without, REFERENCE_COLOR) < 50  # the colour comes from the charts alone


def test_class_charts_are_drawn_in_a_browser(gelu_doc: dict[str, Any], tmp_path: Path) -> None:
    other = json.loads(json.dumps(gelu_doc))
    for q in other["questions"]:
        q.update(status="failed", score=0.0)
    other["score"] = 0.0
    image = screenshot(render_class_report([("a", gelu_doc), ("b", other), ("c", gelu_doc)], "hw1"), tmp_path)
    assert count_colour(image, BAR, tolerance=20) > 5000  # histogram bars and pass-rate bars
