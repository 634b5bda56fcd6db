"""Storage engines: where documents live. The typed :class:`bot.storage.Store` sits on top.

An engine holds named tables of JSON documents keyed by string. Writes come
as a list of :class:`Op` that is applied atomically and durably by
:meth:`Engine.commit`. Cases are special: finished ones (closed, cancelled)
may move to an archive, so ``scan("cases")`` returns only live ones while
``get("cases", key)`` finds any case.
"""

from __future__ import annotations

import abc
import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]
Listener = Callable[[str, str, "Doc | None", "Doc | None"], None]
"""``fn(table, key, old, new)``: a document of an engine's in-memory view changed."""

CORE_TABLES = (
    "meta",
    "counters",
    "cases",
    "customers",
    "users",
    "identities",
    "conversations",
    "references",
    "jobs",
    "events",
    "inbox",
)
"""The tables of the store itself; a flow adds its own with :func:`declare_tables`."""

_DECLARED: dict[str, None] = dict.fromkeys(CORE_TABLES)  # an ordered set


def declare_tables(*names: str) -> tuple[str, ...]:
    """Let every engine keep the tables ``names`` (a flow module calls this at import).

    Declaring is idempotent and process-wide. An engine made before a flow
    declared its tables takes them on first use; the durable engine also keeps
    any table it finds in its snapshot, declared or not (see :func:`known_tables`).
    Returns ``names``.
    """
    for name in names:
        if not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"a table name must be an identifier, not {name!r}")
        _DECLARED.setdefault(name, None)
    return names


def declared_table(tables: dict[str, dict[str, Doc]], name: str) -> dict[str, Doc]:
    """``tables[name]``; a table declared after ``tables`` was made is added now, and an
    undeclared name is a StorageError (every engine's in-memory tables work so)."""
    try:
        return tables[name]
    except KeyError:
        if not is_declared(name):
            raise StorageError(f"unknown table {name}") from None
        return tables.setdefault(name, {})


def known_tables() -> tuple[str, ...]:
    """The store's own tables, then every table a flow declared, in declaration order."""
    return tuple(_DECLARED)


def is_declared(name: str) -> bool:
    """Whether ``name`` is one of the store's tables or declared by a flow."""
    return name in _DECLARED


ARCHIVED = frozenset({"closed", "cancelled"})
"""Case states whose cases leave memory for the archive (``domain.ARCHIVED_STATES``)."""


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()
"""``Op.expect`` default: write whatever is there."""


@dataclass(frozen=True, slots=True)
class Op:
    """Put ``doc`` at ``table[key]``, or delete the key when ``doc`` is None.

    ``expect`` guards the write (optimistic concurrency): ``None`` means the key
    must be absent, an int means the stored document's ``version`` must equal it.
    A failed guard fails the whole commit with :class:`VersionConflict`.

    An engine stores a copy of ``doc`` (parsed back from its JSON: exactly what
    a replay sees). ``handed_over`` skips that copy: the caller hands the
    document to the store, promises it is plain JSON (dicts with string keys,
    lists, strings, numbers, booleans, None: as ``json.loads`` made it) and
    never changes it afterwards. The in-memory engine checks the promise.
    """

    table: str
    key: str
    doc: Doc | None
    expect: Any = ANY
    handed_over: bool = False


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """What list views need of an archived case without loading it."""

    number: int
    state: str
    owner: str | None
    customer_id: str
    updated_at: str
    kind: str


class StorageError(Exception):
    """The store cannot do what was asked (unwritable disk, corrupt file, second owner)."""


class VersionConflict(Exception):
    """A guarded write found the document changed since it was read."""

    def __init__(self, table: str, key: str) -> None:
        super().__init__(f"{table}/{key} changed since it was read")
        self.table = table
        self.key = key


def check_expectations(ops: Sequence[Op], peek: Callable[[str, str], Doc | None]) -> None:
    """Raise :class:`VersionConflict` unless every guarded op still matches the store."""
    for op in ops:
        if op.expect is ANY:
            continue
        current = peek(op.table, op.key)
        if op.expect is None:
            if current is not None:
                raise VersionConflict(op.table, op.key)
        elif current is None or current.get("version", 0) != op.expect:
            raise VersionConflict(op.table, op.key)


def _same_json(parsed: Any, doc: Any) -> bool:
    """``doc`` is exactly what ``json.loads`` made of it (types included: no tuples, int keys)."""
    if type(parsed) is not type(doc):
        return False
    if isinstance(doc, dict):
        return parsed.keys() == doc.keys() and all(_same_json(parsed[k], doc[k]) for k in doc)
    if isinstance(doc, list):
        return len(parsed) == len(doc) and all(map(_same_json, parsed, doc))
    return bool(parsed == doc)


def summarize(doc: Doc) -> CaseSummary:
    return CaseSummary(
        number=int(doc["number"]),
        state=doc["state"],
        owner=doc.get("owner"),
        customer_id=doc["customer_id"],
        updated_at=doc.get("updated_at") or doc["created_at"],
        kind=doc["kind"],
    )


_DIGEST = re.compile(r"[0-9a-f]{64}")


def blob_digest(data: bytes) -> str:
    """The name a blob is kept under: the SHA-256 of its bytes, 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """``digest`` if it is a blob's name (64 lowercase hex digits); ValueError otherwise.

    Every engine checks a name before using it, so a name from a request can never
    be a path, an SQL fragment or another blob's name.
    """
    if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
        raise ValueError("a blob is named by the SHA-256 of its bytes (64 hex digits)")
    return digest


class Engine(abc.ABC):
    """The small contract every storage backend implements.

    Besides the tables of documents, an engine keeps **blobs**: bytes by their
    SHA-256 (:meth:`put_blob`, :meth:`get_blob`, :meth:`has_blob`), e.g. an
    attachment's file. A blob is written, durably, *before* the document that
    names it is committed: a crash between the two leaves a blob nobody names
    (harmless: the next upload of the same bytes reuses it), never a document
    naming a blob that is not there. Blobs are immutable (their name is their
    content) and never deleted by the engine. Each engine keeps them where every
    process using the store can read them: in memory, in files beside the TinyDB
    store, in a ``bytea`` table of the PostgreSQL database.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, fn: Listener) -> None:
        """Call ``fn(table, key, old, new)`` whenever a document of :meth:`view` changes.

        Called synchronously, after the change is applied in memory: for every
        committed op, for every op undone when a write fails, and (``new`` None)
        when a finished case leaves memory for the archive. Listeners keep
        secondary indexes; they must be quick and must not raise.
        """
        self._listeners.append(fn)

    def _notify(self, table: str, key: str, old: Doc | None, new: Doc | None) -> None:
        for fn in getattr(self, "_listeners", ()):
            fn(table, key, old, new)

    def archived_counts(self) -> dict[str, int]:
        """How many archived cases there are per state (engines may keep this cheaper)."""
        counts: dict[str, int] = {}
        for summary in self.archived():
            counts[summary.state] = counts.get(summary.state, 0) + 1
        return counts

    async def claim(self, table: str, key: str, lease: float) -> bool:
        """Claim ``table[key]`` (a queued request) for ``lease`` seconds before working it.

        False when another process holds an unexpired claim on it, or it is gone.
        A store with one owner (memory, TinyDB) has nobody to share with: its
        claims succeed while the document exists. The PostgreSQL engine claims
        in the database (several replicas, docs/architecture.md "Replicas").
        """
        return self.peek(table, key) is not None

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def put_blob(self, digest: str, data: bytes) -> None:
        """Keep ``data`` as blob ``digest`` (:func:`blob_digest` of it); durable on return.

        Idempotent: a blob already kept is left as it is. ValueError when ``digest``
        is not a blob name or not the SHA-256 of ``data``.
        """

    @abc.abstractmethod
    async def get_blob(self, digest: str) -> bytes | None:
        """The bytes of blob ``digest``, or None when it is not kept."""

    @abc.abstractmethod
    async def has_blob(self, digest: str) -> bool:
        """Whether blob ``digest`` is kept (whole: a partly written one is not)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def get(self, table: str, key: str) -> Doc | None:
        """A copy of the document, or None."""

    async def get_many(self, table: str, keys: Sequence[str]) -> dict[str, Doc]:
        """Copies of the documents of ``keys`` that exist, by key (engines that read the
        archive from a server read it in one query)."""
        out = {}
        for key in keys:
            doc = await self.get(table, key)
            if doc is not None:
                out[key] = doc
        return out

    @abc.abstractmethod
    async def scan(self, table: str) -> list[Doc]:
        """Copies of every document of a table (for ``cases``: the live ones)."""

    @abc.abstractmethod
    async def commit(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` atomically; when this returns they survive a crash.

        Guards (``Op.expect``) are checked and the ops applied without yielding
        to the event loop, so two writers can never both pass the same guard.
        """

    @abc.abstractmethod
    def peek(self, table: str, key: str) -> Doc | None:
        """The stored document itself (not a copy; do not mutate), without waiting."""

    @abc.abstractmethod
    def archived(self) -> Iterable[CaseSummary]:
        """Summaries of the archived cases (not in ``scan('cases')``)."""

    @abc.abstractmethod
    def health(self) -> dict[str, Any]:
        """Backend, location, and the last write error if writes are failing."""

    @abc.abstractmethod
    def view(self, table: str) -> dict[str, Doc]:
        """The in-memory documents of a table, read-only (for ``cases``: not the archive)."""


class MemoryEngine(Engine):
    """Dictionaries in memory: fast tests, nothing survives the process."""

    def __init__(self, tables: Iterable[str] | None = None) -> None:
        super().__init__()
        names = known_tables() if tables is None else (*CORE_TABLES, *tables)
        self.tables: dict[str, dict[str, Doc]] = {t: {} for t in names}
        self.blobs: dict[str, bytes] = {}

    def _table(self, name: str) -> dict[str, Doc]:
        return declared_table(self.tables, name)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def put_blob(self, digest: str, data: bytes) -> None:
        if blob_digest(data) != check_digest(digest):
            raise ValueError("the blob's name is not the SHA-256 of its bytes")
        self.blobs.setdefault(digest, bytes(data))

    async def get_blob(self, digest: str) -> bytes | None:
        return self.blobs.get(check_digest(digest))

    async def has_blob(self, digest: str) -> bool:
        return check_digest(digest) in self.blobs

    async def get(self, table: str, key: str) -> Doc | None:
        doc = self._table(table).get(key)
        return copy.deepcopy(doc) if doc is not None else None

    async def scan(self, table: str) -> list[Doc]:
        docs = self._table(table).values()
        if table == "cases":
            return [copy.deepcopy(d) for d in docs if d["state"] not in ARCHIVED]
        return [copy.deepcopy(d) for d in docs]

    def peek(self, table: str, key: str) -> Doc | None:
        try:
            return self.tables[table].get(key)
        except KeyError:
            return self._table(table).get(key)

    async def commit(self, ops: Sequence[Op]) -> None:
        for op in ops:
            if op.table not in self.tables:
                self._table(op.table)  # StorageError for a table nobody declared
        check_expectations(ops, self.peek)
        # Stored as the durable engine stores them: JSON (a Decimal fails here too).
        docs = [None if op.doc is None else json.loads(json.dumps(op.doc)) for op in ops]
        for op, doc in zip(ops, docs, strict=True):
            if op.handed_over and not _same_json(doc, op.doc):
                raise TypeError(f"{op.table}/{op.key} was handed over but is not plain JSON")
        docs = [op.doc if op.handed_over else doc for op, doc in zip(ops, docs, strict=True)]
        for op, doc in zip(ops, docs, strict=True):
            table = self.tables[op.table]
            old = table.get(op.key)
            if doc is None:
                table.pop(op.key, None)
            else:
                table[op.key] = doc
            if old is not None or doc is not None:
                self._notify(op.table, op.key, old, doc)

    def archived(self) -> Iterable[CaseSummary]:
        return [summarize(d) for d in self.tables["cases"].values() if d["state"] in ARCHIVED]

    def health(self) -> dict[str, Any]:
        return {"backend": "memory", "ok": True}

    def view(self, table: str) -> dict[str, Doc]:
        try:
            return self.tables[table]
        except KeyError:
            return self._table(table)
