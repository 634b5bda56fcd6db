"""CSV export of the dashboard's lists, safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage
return, which some spreadsheets skip before reading a formula) gets a single
quote in front, so a customer who writes ``=HYPERLINK(...)`` in a case
description cannot plant a formula in the billing lead's spreadsheet.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from aiohttp import web

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_cell(value: object) -> str:
    """One cell as text, defused if a spreadsheet could read it as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.isoformat(timespec="minutes")
    else:
        text = str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> web.Response:
    name = _FILENAME.sub("-", filename).strip("-") or "export.csv"
    body = "\ufeff" + to_csv(header, rows)  # a BOM, so spreadsheets read UTF-8
    return web.Response(
        body=body.encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
