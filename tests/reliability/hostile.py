"""Hypothesis strategies for hostile input: text, JSON of the wrong shape, mutated payloads, CSVs.

``TEXT``: unicode of every kind, right-to-left and zero-width marks, control
characters, Slack/Teams markup, 100 kB strings, and commands with absurd
amounts, dates and ids. ``JSON``: any JSON value (wrongly typed fields).
``mutated(base)``: a real payload (a fixture of Slack's or Teams' documented
shapes) with a few fields removed or replaced by hostile values, so the
result still reaches deep into the translators instead of being refused at
the door. ``receivables_csv()``: a receivables file with hostile cells.
"""

from __future__ import annotations

import copy
import csv
import io
from typing import Any

from hypothesis import strategies as st

from bot.receivables import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

MARKS = list("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2069\ufeff")
CONTROLS = [chr(c) for c in range(0, 32)] + ["\x7f", "\x85", "\u2028", "\u2029"]
MARKUP = ["<!channel>", "<!here>", "<@U123|x>", "<https://evil.example|click>", "&amp;", "*", "`"]
AMOUNTS = [
    "1e309",
    "-1e309",
    "NaN",
    "-0.00",
    "Infinity",
    "9" * 400,
    "0." + "0" * 300 + "1",
    "1,000.00",
    "1.000,00",
    "١٢٣",  # Arabic-Indic digits
    "１２３",  # fullwidth digits
    "12.345",
    "-5",
    "0x10",
    "1_000",
    "",
]
DATES = [
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "2026-13-01",
    "2026-1-1",
    "+10000-01-01",
    "２０２６-０１-０１",
    "2026-11-24T09:00:00Z",
    "tomorrow",
    "",
]
COMMANDS = [
    "resolve BILL-1 credit 1e309 EUR",
    "resolve BILL-1 partial -0.00 EUR",
    "paid INV-1 1e309",
    "paid INV-1 NaN",
    "snooze BILL-1 99999999h",
    "BILL-99999999999999999999",
    "bill-0",
    "status BILL-١",
    "assign BILL-1 <@U123|x>",
    "list all customer \u202eevil",
    "customer " + "\u200b" * 500,
    "dispute G0\u202e1 ",
    "ask \ue000forged\ue001",
    "note BILL-1 " + "x" * 100_000,
    "suspend \u0000",
    "language \u202ezh",
]

TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(MARKS + CONTROLS + MARKUP + list("ab <>&|")), max_size=30).map(
        "".join
    ),
    st.text(alphabet=st.characters(min_codepoint=0x590, max_codepoint=0x6FF), max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), max_size=20),
    st.builds(
        lambda s, n: (s * n)[:100_000], st.text(min_size=1, max_size=4), st.integers(1, 25_000)
    ),
    st.sampled_from(COMMANDS),
    st.sampled_from(AMOUNTS + DATES),
    st.builds(
        lambda c, t: f"{c} {t}", st.sampled_from(["ask", "note BILL-1", "dispute"]), st.text()
    ),
)

SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    TEXT,
)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (dict keys and list indexes) inside ``value``."""
    out: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += paths(child, (*prefix, index))
    return out


@st.composite
def mutated(
    draw: st.DrawFn,
    base: dict[str, Any],
    *,
    keep: tuple[str, ...] = (),
    values: st.SearchStrategy[Any] = st.one_of(TEXT, JSON),
    max_changes: int = 4,
) -> dict[str, Any]:
    """``base`` with 1 to ``max_changes`` fields removed or replaced; ``keep`` top keys alone."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_changes))):
        candidates = [p for p in paths(doc) if p[0] not in keep]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(values)
    return doc


CELL = st.one_of(
    st.sampled_from(AMOUNTS + DATES),
    st.sampled_from(["EUR", "USD", "eur", "XXX", "EURO", "€", ""]),
    st.just("aaaaaaaa-0000-4000-8000-00000000000a"),
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from(MARKS + CONTROLS + list(',"\n\r;ab')), max_size=20),
    st.builds(lambda n: "x" * n, st.integers(190, 5000)),
)
GOOD_ROW = {
    "customer_tenant_id": "aaaaaaaa-0000-4000-8000-00000000000a",
    "customer_name": "Contoso",
    "invoice_number": "INV-1",
    "amount": "120.00",
    "currency": "EUR",
    "due_date": "2026-10-01",
    "paid_date": "",
    "subscription_ids": "",
    "amount_paid": "",
}


@st.composite
def receivables_csv(draw: st.DrawFn) -> str:
    """A receivables file: the real header (maybe broken) and rows with hostile cells."""
    columns = list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    if draw(st.integers(0, 4)) == 0:
        columns = draw(st.lists(st.sampled_from([*columns, "", "amount "]), max_size=10))
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        row = {c: draw(st.one_of(st.just(GOOD_ROW.get(c, "")), CELL)) for c in columns}
        rows.append([row[c] for c in columns])
        if draw(st.integers(0, 5)) == 0:
            rows[-1] = rows[-1][: draw(st.integers(0, len(columns)))]  # a short row
    if draw(st.integers(0, 5)) == 0:
        lines = [",".join(columns)] + [",".join(r) for r in rows]  # unquoted: broken quoting
        return "\n".join(lines)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    prefix = draw(st.sampled_from(["", "\ufeff", "\r\n"]))
    return prefix + out.getvalue()
