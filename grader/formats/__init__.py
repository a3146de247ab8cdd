"""Reports for other systems, each built from the JSON report (``grader.report.to_json``).

Building from the JSON document, never from the grading dataclasses, keeps these
formats stable while grading internals change: the JSON shape is documented in
the README and versioned (``report_version``).
"""
