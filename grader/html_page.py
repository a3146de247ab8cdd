"""The frame every HTML report shares: one self-contained page with inline CSS and no script.

Nothing is fetched when the page is opened (no fonts, images or scripts from the
network), so a report can be mailed or opened offline. Callers escape every
piece of text they put in (``html.escape``): messages and names come from
student files.
"""

from __future__ import annotations

from html import escape

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1000px;
  padding:0 16px;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:18px 0 6px}
.meta{color:#555;font-size:.9em}.total{font-size:1.3em;font-weight:bold;margin:12px 0}
table{border-collapse:collapse;width:100%;font-size:.9em}th,td{border-bottom:1px solid #e3e3e3;
  padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.num{text-align:right;white-space:nowrap}
.passed{color:#1b7a32;font-weight:bold}.failed,.error,.timeout,.missing,.forbidden{color:#b3261e;font-weight:bold}
.detail{border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px;margin:10px 0;background:#fcfcfc}
.detail p{margin:4px 0}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
pre{background:#f6f6f6;padding:6px 8px;overflow-x:auto;white-space:pre-wrap;margin:4px 0}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{border:1px solid #e3e3e3;border-radius:6px;padding:6px}
.note{color:#8a5a00}svg text{fill:#333}
"""


def page(title: str, body: str) -> str:
    """A complete HTML document; ``title`` is escaped here, ``body`` must be escaped already."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def points(x: float) -> str:
    return f"{x:g}"
