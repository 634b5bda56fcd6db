"""How the store's documents map to PostgreSQL rows (the tables of ``migrations/``).

Every store table is a SQL table with its key, **typed columns** for the fields
queries use (``numeric`` money beside its currency code, ``timestamptz`` times,
``date`` due dates, text, integers, booleans), and the rest of the document in
``doc`` (JSONB). A case's notes and its audit trail are rows of their own tables
(``case_notes``, ``case_audit``, keyed by case and position, foreign keys to
``cases``). Tables a flow declares without a typed table of its own live in
``flow_docs`` (table name, key, version, JSONB): genuinely open flow state.

The mapping is exact: a field goes into its typed column only when reading the
column back gives the very same JSON value (``2026-11-24T09:00:00+00:00`` does;
a time with another offset, a number written ``1E+2``, a string with a NUL
character do not, and stay in ``doc``). A JSON ``null`` stays in ``doc`` too, so a
field that is null and one that is absent read back as they were written. A
document whose rest cannot be JSONB exactly (a NUL character, a float written
with an exponent) keeps its rest as JSON text in ``doc_text`` instead.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Doc = dict[str, Any]

TEXT, INT, BOOL, NUMERIC, TIMESTAMPTZ, DATE, JSONB = (
    "text",
    "bigint",
    "boolean",
    "numeric",
    "timestamptz",
    "date",
    "jsonb",
)


@dataclass(frozen=True, slots=True)
class Column:
    """A typed column holding the document's field at ``path``."""

    name: str
    path: tuple[str, ...]
    kind: str


def col(name: str, kind: str, path: str | None = None) -> Column:
    return Column(name, tuple((path or name).split(".")), kind)


@dataclass(frozen=True, slots=True)
class Children:
    """A document's list of objects at ``field``, kept as rows of table ``sql`` (by position)."""

    field: str
    sql: str
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A store table's SQL table: key, typed columns, child lists."""

    name: str
    sql: str
    columns: tuple[Column, ...]
    children: tuple[Children, ...] = ()
    flow: bool = False  # in flow_docs: keyed by (tbl, key)
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(c.name for c in self.columns))


VERSION = col("version", INT)

SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in (
        TableSpec("meta", "meta", (VERSION,)),
        TableSpec("counters", "counters", (col("value", INT), VERSION)),
        TableSpec(
            "cases",
            "cases",
            (
                col("number", INT),
                col("kind", TEXT),
                col("customer_id", TEXT),
                col("category", TEXT),
                col("description", TEXT),
                col("created_at", TIMESTAMPTZ),
                col("created_by", TEXT),
                col("state", TEXT),
                col("owner", TEXT),
                col("subscription_id", TEXT),
                col("invoice", TEXT),
                col("dispute_invoice", TEXT, "dispute.invoice"),
                col("dispute_amount", NUMERIC, "dispute.amount.amount"),
                col("dispute_currency", TEXT, "dispute.amount.currency"),
                col("dispute_reason", TEXT, "dispute.reason"),
                col("dispute_outcome", TEXT, "dispute.outcome"),
                col("credited_amount", NUMERIC, "dispute.credited.amount"),
                col("credited_currency", TEXT, "dispute.credited.currency"),
                col("resolution", TEXT),
                col("cancel_reason", TEXT),
                col("informed_via", TEXT),
                col("sr_id", TEXT, "service_request.id"),
                col("sr_mode", TEXT, "service_request.mode"),
                col("sr_status", TEXT, "service_request.status"),
                col("sr_filed_at", TIMESTAMPTZ, "service_request.filed_at"),
                col("sr_title", TEXT, "service_request.title"),
                col("updated_at", TIMESTAMPTZ),
                col("first_response_at", TIMESTAMPTZ),
                col("resolved_at", TIMESTAMPTZ),
                col("informed_at", TIMESTAMPTZ),
                VERSION,
            ),
            children=(
                Children(
                    "notes",
                    "case_notes",
                    (
                        col("at", TIMESTAMPTZ),
                        col("author", TEXT),
                        col("text", TEXT),
                        col("to_microsoft", BOOL),
                    ),
                ),
                Children(
                    "audit",
                    "case_audit",
                    (
                        col("at", TIMESTAMPTZ),
                        col("actor", TEXT),
                        col("channel", TEXT),
                        col("action", TEXT),
                        col("details", JSONB),
                    ),
                ),
            ),
        ),
        TableSpec(
            "customers",
            "customers",
            (
                col("id", TEXT),
                col("name", TEXT),
                col("tenant_id", TEXT),
                col("owner", TEXT),
                col("created_at", TIMESTAMPTZ),
                VERSION,
            ),
        ),
        TableSpec(
            "users",
            "users",
            (
                col("id", TEXT),
                col("display_name", TEXT),
                col("role", TEXT),
                col("time_zone", TEXT),
                col("locale", TEXT),
                col("tenant_id", TEXT),
                col("locale_explicit", BOOL),
                VERSION,
            ),
        ),
        TableSpec("identities", "identities", (col("user_id", TEXT), VERSION)),
        TableSpec("conversations", "conversations", (VERSION,)),
        TableSpec("references", "channel_references", (VERSION,)),
        TableSpec("jobs", "jobs", (col("type", TEXT), col("due", TIMESTAMPTZ), VERSION)),
        TableSpec("events", "events", (col("expires", TIMESTAMPTZ), VERSION)),
        TableSpec("inbox", "inbox", (col("channel", TEXT), VERSION)),
        TableSpec(
            "receivables",
            "receivables",
            (
                col("invoice", TEXT),
                col("customer_id", TEXT),
                col("customer_name", TEXT),
                col("tenant_id", TEXT),
                col("amount", NUMERIC, "amount.amount"),
                col("currency", TEXT, "amount.currency"),
                col("due_date", DATE),
                col("paid_date", DATE),
                col("amount_paid", NUMERIC),
                col("fingerprint", TEXT),
                VERSION,
            ),
        ),
        TableSpec(
            "audit",
            "collections_audit",
            (
                col("at", TIMESTAMPTZ),
                col("actor", TEXT),
                col("channel", TEXT),
                col("action", TEXT),
                col("subject", TEXT),
                col("details", JSONB),
                VERSION,
            ),
        ),
    )
}
"""The typed tables, by store table name (migration 0001 creates them)."""

FLOW_DOCS = "flow_docs"


def spec_for(table: str) -> TableSpec:
    """The typed table of ``table``; ``flow_docs`` for any other declared table."""
    spec = SPECS.get(table)
    return spec if spec is not None else TableSpec(table, FLOW_DOCS, (VERSION,), flow=True)


# ---- exact values ---------------------------------------------------------------
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


def text_ok(s: str) -> bool:
    """PostgreSQL text holds it as it is (no NUL, valid UTF-8)."""
    if "\x00" in s:
        return False
    if s.isascii():
        return True
    try:
        s.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def jsonb_ok(value: Any) -> bool:
    """JSONB gives back exactly this JSON value (json.loads of what it prints)."""
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, str):
        return text_ok(value)
    if isinstance(value, float):
        text = repr(value)
        return math.isfinite(value) and "e" not in text and not (value == 0 and text[0] == "-")
    if isinstance(value, list):
        return all(jsonb_ok(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and text_ok(k) and jsonb_ok(v) for k, v in value.items())
    return False


def fits(kind: str, value: Any) -> bool:
    """The typed column ``kind`` gives ``value`` back exactly (None never: it stays in doc)."""
    if kind == TEXT:
        return isinstance(value, str) and text_ok(value)
    if kind == INT:
        return type(value) is int and -(2**63) <= value < 2**63
    if kind == BOOL:
        return type(value) is bool
    if kind == JSONB:
        return value is not None and jsonb_ok(value)
    if not isinstance(value, str):
        return False
    if kind == NUMERIC:
        if not _NUMBER.fullmatch(value):
            return False
        try:
            return not (value.startswith("-") and Decimal(value) == 0)
        except InvalidOperation:
            return False
    try:
        if kind == TIMESTAMPTZ:
            at = datetime.fromisoformat(value)
            return at.tzinfo is not None and at.astimezone(UTC).isoformat() == value
        if kind == DATE:
            return date.fromisoformat(value).isoformat() == value
    except (ValueError, OverflowError):
        return False
    raise ValueError(f"unknown column kind {kind}")


def to_sql(kind: str, value: Any) -> Any:
    if kind == NUMERIC:
        return Decimal(value)
    if kind == TIMESTAMPTZ:
        return datetime.fromisoformat(value)
    if kind == DATE:
        return date.fromisoformat(value)
    if kind == JSONB:
        return json.dumps(value, ensure_ascii=False)
    return value


def from_sql(kind: str, value: Any) -> Any:
    if kind == NUMERIC:
        return str(value)
    if kind == TIMESTAMPTZ:
        return value.astimezone(UTC).isoformat()
    if kind == DATE:
        return value.isoformat()
    if kind == JSONB:
        return json.loads(value) if isinstance(value, str) else value
    return value


# ---- documents <-> rows -------------------------------------------------------------
@dataclass(slots=True)
class Row:
    """A document as SQL values: typed columns, the rest (JSONB text or JSON text), children."""

    values: list[Any]
    doc: str | None
    doc_text: str | None
    children: dict[str, list[tuple[list[Any], str | None, str | None]]]


def _take(rest: Doc, columns: Sequence[Column]) -> list[Any]:
    out: list[Any] = []
    for c in columns:
        parent: Any = rest
        for p in c.path[:-1]:
            parent = parent.get(p) if isinstance(parent, dict) else None
        leaf = c.path[-1]
        if isinstance(parent, dict) and leaf in parent and fits(c.kind, parent[leaf]):
            out.append(to_sql(c.kind, parent.pop(leaf)))
        else:
            out.append(None)
    return out


def _rest(rest: Doc) -> tuple[str | None, str | None]:
    if jsonb_ok(rest):
        return json.dumps(rest, ensure_ascii=False), None
    return None, json.dumps(rest)


def child_list(value: Any) -> list[Doc] | None:
    """``value`` as a list kept in a child table (a non-empty list of objects), else None."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value
    return None


def _copy(value: Any) -> Any:
    """A copy of a JSON value's dicts and lists (encode takes fields out of it); 4x quicker
    than ``copy.deepcopy`` on a case, which counts when ``store copy`` writes 100,000."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def encode(spec: TableSpec, doc: Doc) -> Row:
    rest: Doc = _copy(doc)
    values = _take(rest, spec.columns)
    children: dict[str, list[tuple[list[Any], str | None, str | None]]] = {}
    for child in spec.children:
        items = child_list(rest.get(child.field))
        if items is None:
            continue
        del rest[child.field]
        rows = []
        for item in items:
            vals = _take(item, child.columns)
            rows.append((vals, *_rest(item)))
        children[child.field] = rows
    return Row(values, *_rest(rest), children)


def _put(doc: Doc, columns: Sequence[Column], values: Sequence[Any]) -> Doc:
    for c, v in zip(columns, values, strict=True):
        if v is None:
            continue
        parent = doc
        for p in c.path[:-1]:
            parent = parent.setdefault(p, {})
        parent[c.path[-1]] = from_sql(c.kind, v)
    return doc


def _residual(doc: Any, doc_text: str | None) -> Doc:
    if doc is not None:
        out = json.loads(doc) if isinstance(doc, str) else doc
    else:
        out = json.loads(doc_text) if doc_text is not None else {}
    assert isinstance(out, dict)
    return out


def decode(
    spec: TableSpec,
    values: Sequence[Any],
    doc: Any,
    doc_text: str | None,
    children: dict[str, list[tuple[Sequence[Any], Any, str | None]]] | None = None,
) -> Doc:
    out = _put(_residual(doc, doc_text), spec.columns, values)
    for child in spec.children:
        rows = (children or {}).get(child.field)
        if rows:
            out[child.field] = [_put(_residual(d, t), child.columns, v) for v, d, t in rows]
    return out
