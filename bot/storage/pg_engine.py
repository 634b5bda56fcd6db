"""The PostgreSQL engine: ``BOT_DB=postgresql://user@host/db`` (asyncpg).

The tables are real SQL tables (``migrations/``, mapped by :mod:`bot.storage.pg_schema`).
Like the TinyDB engine, everything requests touch is in memory: the live data
is loaded at open, and finished cases (closed, cancelled) stay in the database,
with their list summaries in memory; ``get`` reads one when asked for. Each
:meth:`PostgresEngine.commit` is checked against memory and applied there at
once (without yielding, as the contract asks), then written as **one
transaction** by a single writer, in commit order; it returns when that
transaction has committed. Its guards are checked again in SQL (``UPDATE …
WHERE version = $expect``, ``INSERT … ON CONFLICT DO NOTHING``): a write that
another process got in first fails with :class:`VersionConflict`, and so do the
commits queued behind it that touch its rows (built on top of it); its rows are
then re-read from the database. Any other failed transaction undoes its commit
in memory, and every commit queued after it fails too, as with the TinyDB
engine's journal.

Several processes (``serve`` replicas, CLI commands) share a database
(``shared=True``, what :func:`bot.storage.open_store` opens; docs/architecture.md,
"Replicas"): each holds the owner lock *shared*, logs every write transaction's
rows in ``store_changes`` and re-reads the rows the others wrote (LISTEN/NOTIFY,
and the log read every second); queued requests are claimed in the database with a
lease (:meth:`PostgresEngine.claim`). An engine not shared (``store copy``) holds
the lock alone: refused while replicas run, and refusing them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.storage import pg_schema
from bot.storage.engine import (
    ANY,
    ARCHIVED,
    CORE_TABLES,
    CaseSummary,
    Doc,
    Engine,
    Op,
    StorageError,
    VersionConflict,
    blob_digest,
    check_digest,
    declared_table,
    known_tables,
    summarize,
)
from bot.storage.pg_migrate import (
    SCHEMA_VERSION,
    check_version,
    migrate,
    safe_url,
)
from bot.storage.pg_schema import FLOW_DOCS, TableSpec, spec_for
from bot.storage.tinydb_engine import StoreLocked, StoreUnavailable

log = logging.getLogger(__name__)

OWNER_LOCK = 0x6269_6C6D  # the session advisory lock of the process that owns the database

# The change log (migration 0002): every write transaction appends the rows it wrote and
# notifies CHANNEL; the other replicas re-read those rows (PostgresEngine.catch_up).
CHANNEL = "billing_bot_changes"
_LOG_CHANGES = (
    "WITH logged AS (INSERT INTO store_changes (tbl, key, origin) "
    "SELECT t, k, $3 FROM unnest($1::text[], $2::text[]) AS u(t, k) RETURNING 1) "
    f"SELECT pg_notify('{CHANNEL}', $3)"
)
POLL_SECONDS = 1.0  # the log is read this often even without a notification (one lost)
GAP_SECONDS = 10.0  # a missing sequence number is waited for this long (commits out of order)
KEEP_CHANGES_SECONDS = 3600.0  # log entries older than this are dropped
LOCK_TIMEOUT_SECONDS = 5.0  # a row lock held elsewhere stalls this replica's writes at most this
_WRITE_SETTINGS = {
    "idle_in_transaction_session_timeout": str(int(GAP_SECONDS * 1000)),
    "lock_timeout": str(int(LOCK_TIMEOUT_SECONDS * 1000)),
}

# A queued request is claimed in the database before its work (several replicas): taken only
# when nobody holds an unexpired claim on it (or this replica does), never waiting on a row
# another replica is claiming right now. The lease is timed by the database's clock.
_CLAIM = (
    "UPDATE inbox SET claimed_by = $2, claimed_until = now() + make_interval(secs => $3) "
    "WHERE key = (SELECT key FROM inbox WHERE key = $1 AND (claimed_until IS NULL "
    "OR claimed_until < now() OR claimed_by = $2) FOR UPDATE SKIP LOCKED) RETURNING key"
)


class _SqlConflict(Exception):
    def __init__(self, table: str, key: str) -> None:
        self.table, self.key = table, key


@dataclass(frozen=True)
class _Sql:
    select: str
    select_one: str
    upsert: str
    insert_new: str
    update_guarded: str
    delete: str
    delete_guarded: str
    exists: str
    # field -> insert, delete all of cases ($1: text[]), delete from, load
    children: dict[str, tuple[str, str, str, str]]


def _q(name: str) -> str:
    return f'"{name}"'


def _build_sql(spec: TableSpec) -> _Sql:
    keys = ["tbl", "key"] if spec.flow else ["key"]
    cols = [*keys, *spec.names, "doc", "doc_text"]
    params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    names = ", ".join(map(_q, cols))
    table = _q(spec.sql)
    where_key = " AND ".join(f"{_q(k)} = ${i}" for i, k in enumerate(keys, 1))
    nk = len(keys)
    sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in cols[nk:])
    seq = "nextval('store_change_seq')"
    select = f"SELECT {names} FROM {table}"
    if spec.flow:
        select += " WHERE tbl = $1"
    children = {}
    for child in spec.children:
        ccols = ["case_key", "pos", *(c.name for c in child.columns), "doc", "doc_text"]
        cparams = ", ".join(f"${i}" for i in range(1, len(ccols) + 1))
        children[child.field] = (
            f"INSERT INTO {_q(child.sql)} ({', '.join(map(_q, ccols))}) VALUES ({cparams})",
            f"DELETE FROM {_q(child.sql)} WHERE case_key = ANY($1::text[])",
            f"DELETE FROM {_q(child.sql)} WHERE case_key = $1 AND pos >= $2",
            f"SELECT {', '.join(map(_q, ccols))} FROM {_q(child.sql)}",
        )
    return _Sql(
        select=select,
        select_one=f"SELECT {names} FROM {table} WHERE {where_key}",
        upsert=(
            f"INSERT INTO {table} ({names}, change_seq) VALUES ({params}, {seq}) "
            f"ON CONFLICT ({', '.join(map(_q, keys))}) DO UPDATE SET {sets}, "
            "change_seq = EXCLUDED.change_seq"
        ),
        insert_new=(
            f"INSERT INTO {table} ({names}, change_seq) VALUES ({params}, {seq}) "
            f"ON CONFLICT ({', '.join(map(_q, keys))}) DO NOTHING"
        ),
        update_guarded=(
            f"UPDATE {table} SET "
            + ", ".join(f"{_q(c)} = ${i}" for i, c in enumerate(cols, 1) if i > nk)
            + f", change_seq = {seq} WHERE {where_key} "
            f"AND coalesce(version, 0) = ${len(cols) + 1}"
        ),
        delete=f"DELETE FROM {table} WHERE {where_key}",
        delete_guarded=(
            f"DELETE FROM {table} WHERE {where_key} AND coalesce(version, 0) = ${nk + 1}"
        ),
        exists=f"SELECT 1 FROM {table} WHERE {where_key}",
        children=children,
    )


@dataclass
class _Commit:
    ops: list[tuple[Op, Doc | None, Doc | None, bool]]  # op, stored doc, old doc, old known
    future: asyncio.Future[None]
    keys: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _Archived:
    summary: CaseSummary
    version: int


class PostgresEngine(Engine):
    """Durable storage in PostgreSQL; see the module docstring."""

    def __init__(
        self, url: str, *, tables: Iterable[str] | None = None, shared: bool = False
    ) -> None:
        super().__init__()
        self.url = url
        # Shared: one of several replicas on the database (they share the owner lock; one
        # not shared, e.g. ``store copy``, holds it alone: refused while replicas run).
        self.shared = shared
        lock = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        self._lock_sql = f"SELECT {lock}($1)"
        self._tables = known_tables() if tables is None else (*CORE_TABLES, *tables)
        self.hot: dict[str, dict[str, Doc]] = {t: {} for t in self._tables}
        self._archived: dict[str, _Archived] = {}
        self._archived_states: dict[str, int] = {}
        self._sql: dict[str, _Sql] = {}
        self._queue: collections.deque[_Commit] = collections.deque()
        self._dirty: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pool: Any = None
        self._conn: Any = None
        self._closing = False
        self.schema_version = 0
        self.last_error: str | None = None
        # Who this engine is among the replicas of a database (claims, the change log).
        self.replica_id = uuid.uuid4().hex
        # Keys being re-read from the database -> a flag per reader, set by a local commit
        # of the key meanwhile (the row read may then be older than memory: read again).
        self._refreshing: dict[tuple[str, str], list[list[bool]]] = {}
        # Following the change log: everything up to the watermark is applied; seen entries
        # above it (after a gap), when each gap was noticed, keys to re-read once settled here.
        self._watermark = 0
        self._seen: set[int] = set()
        self._gaps: dict[int, float] = {}
        self._later: set[tuple[str, str]] = set()
        self._changed: asyncio.Event | None = None
        self._follower: asyncio.Task[None] | None = None
        self._pruned_at = 0.0

    @property
    def where(self) -> str:
        return safe_url(self.url)

    def _sql_of(self, spec: TableSpec) -> _Sql:
        sql = self._sql.get(spec.name)
        if sql is None:
            sql = self._sql[spec.name] = _build_sql(spec)
        return sql

    # ---- open / close ---------------------------------------------------
    async def open(self) -> None:
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=4,
                command_timeout=60,
                server_settings=_WRITE_SETTINGS,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise StoreUnavailable(f"cannot open the store {self.where}: {exc}") from exc
        try:
            conn = await self._pool.acquire()
            self._conn = conn
            _before, _applied = await migrate(conn, self.where)
            self.schema_version = await self._current_schema(conn)
            if not await conn.fetchval(self._lock_sql, OWNER_LOCK):
                info = await self.owner_info(conn)
                raise StoreLocked(
                    f"the store {self.where} is in use by another billing-bot "
                    f"(pid {info.get('pid', '?')}); stop it first, or use BOT_DB to point at "
                    "another store",
                    info=info,
                )
            await self._set_owner(conn, {})
            # Read before the data: a change committed while loading is applied again after.
            self._watermark = await conn.fetchval(
                "SELECT coalesce((SELECT min(seq) - 1 FROM store_changes WHERE at > "
                "clock_timestamp() - make_interval(secs => $1)), "
                "(SELECT max(seq) FROM store_changes), 0)",
                GAP_SECONDS,
            )
            await self._load(conn)
        except BaseException as exc:
            await self._close_pool()
            if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                raise StoreUnavailable(f"cannot open the store {self.where}: {exc}") from exc
            raise
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name="pg-writer")
        self._changed = asyncio.Event()
        self._follower = asyncio.create_task(self._follow(), name="pg-follower")

    # ---- other processes' commits (several replicas) ----------------------
    async def _follow(self) -> None:
        """Keep memory true to other processes' commits: LISTEN, and read the log each second."""
        import asyncpg

        assert self._changed is not None
        listener: Any = None
        try:
            while True:
                try:
                    if listener is None or listener.is_closed():
                        listener = await asyncpg.connect(self.url, timeout=15)
                        await listener.add_listener(CHANNEL, self._on_notify)
                    # asyncio.wait, not wait_for: wait_for may swallow the cancel of close()
                    # when its timeout fires at the same moment (Python 3.11).
                    waiter = asyncio.ensure_future(self._changed.wait())
                    try:
                        await asyncio.wait({waiter}, timeout=POLL_SECONDS)
                    finally:
                        waiter.cancel()
                    self._changed.clear()
                    await self.catch_up()
                except Exception as exc:  # noqa: BLE001 - the database is away: try again
                    log.warning("following the other replicas' changes failed: %s", exc)
                    if listener is not None:
                        with contextlib.suppress(Exception):
                            await listener.close()
                    listener = None
                    await asyncio.sleep(POLL_SECONDS)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(listener.close(), 5)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, origin: object) -> None:
        if origin != self.replica_id and self._changed is not None:
            self._changed.set()

    async def catch_up(self) -> int:
        """Re-read the rows other processes wrote since the last look; how many were re-read.

        The log's sequence numbers are taken before commit, so they may become
        visible out of order: the watermark (all applied up to it) stops at a
        missing number for up to ``GAP_SECONDS`` (no write transaction lasts that
        long), after which the number is taken as rolled back.
        """
        if self._pool is None:
            return 0
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT seq, tbl, key, origin FROM store_changes WHERE seq > $1 "
                "ORDER BY seq LIMIT 5000",
                self._watermark,
            )
            todo: dict[tuple[str, str], None] = {}
            for seq, table, key, origin in rows:
                if seq in self._seen:
                    continue
                self._seen.add(seq)
                if origin != self.replica_id:
                    todo[(table, key)] = None
            for key in list(self._later):
                if key not in self._dirty:
                    self._later.discard(key)
                    todo[key] = None
            self._advance()
            await self._refresh(conn, list(todo))
            if len(rows) == 5000 and self._changed is not None:
                self._changed.set()  # more to read
            if time.monotonic() - self._pruned_at > KEEP_CHANGES_SECONDS / 10:
                self._pruned_at = time.monotonic()
                await conn.execute(
                    "DELETE FROM store_changes WHERE at < clock_timestamp() - "
                    "make_interval(secs => $1)",
                    KEEP_CHANGES_SECONDS,
                )
        return len(todo)

    def _advance(self) -> None:
        now = time.monotonic()
        while self._seen:
            nxt = self._watermark + 1
            if nxt not in self._seen:
                since = self._gaps.setdefault(nxt, now)
                if now - since < GAP_SECONDS:
                    return
            self._seen.discard(nxt)
            self._gaps.pop(nxt, None)
            self._watermark = nxt

    async def _current_schema(self, conn: Any) -> int:
        from bot.storage.pg_migrate import schema_version

        version = await schema_version(conn)
        check_version(version, self.where)
        return version

    @staticmethod
    async def owner_info(conn: Any) -> dict[str, Any]:
        raw = await conn.fetchval("SELECT info FROM store_owner WHERE id = 1")
        info = json.loads(raw) if raw else {}
        return info if isinstance(info, dict) else {}

    async def _set_owner(self, conn: Any, info: dict[str, Any]) -> None:
        await conn.execute(
            "INSERT INTO store_owner (id, info) VALUES (1, $1) "
            "ON CONFLICT (id) DO UPDATE SET info = EXCLUDED.info, since = now()",
            json.dumps({"pid": os.getpid(), "replica": self.replica_id, **info}),
        )

    async def set_owner_info(self, info: dict[str, Any]) -> None:
        """Record who owns the store (pid, and the serve URL for ``billing-bot chat``)."""
        if self._pool is not None:
            async with self._pool.acquire() as conn:
                await self._set_owner(conn, info)

    async def _load(self, conn: Any) -> None:
        for name in list(self.hot):
            self._table(name)
        flow_tables = [r["tbl"] for r in await conn.fetch(f"SELECT DISTINCT tbl FROM {FLOW_DOCS}")]
        for name in flow_tables:  # kept even when this process did not declare them
            self.hot.setdefault(name, {})
        for name in list(self.hot):
            spec = spec_for(name)
            sql = self._sql_of(spec)
            if name == "cases":
                await self._load_cases(conn, spec, sql)
                continue
            args = (name,) if spec.flow else ()
            nk = 2 if spec.flow else 1
            docs = self.hot[name]
            for row in await conn.fetch(sql.select, *args):
                docs[row[nk - 1]] = self._decode(spec, row, nk)

    @staticmethod
    def _decode(
        spec: TableSpec, row: Sequence[Any], nk: int, children: dict[str, Any] | None = None
    ) -> Doc:
        n = len(spec.columns)
        return pg_schema.decode(spec, row[nk : nk + n], row[nk + n], row[nk + n + 1], children)

    async def _load_cases(self, conn: Any, spec: TableSpec, sql: _Sql) -> None:
        live = "state IS NULL OR state NOT IN ('closed', 'cancelled')"
        kids: dict[str, dict[str, list[Any]]] = {}
        for child in spec.children:
            _ins, _dall, _dfrom, load = sql.children[child.field]
            rows = await conn.fetch(
                f"{load} WHERE case_key IN (SELECT key FROM cases WHERE {live}) "
                "ORDER BY case_key, pos"
            )
            n = len(child.columns)
            for r in rows:
                kids.setdefault(r[0], {}).setdefault(child.field, []).append(
                    (r[2 : 2 + n], r[2 + n], r[3 + n])
                )
        docs = self.hot["cases"]
        for row in await conn.fetch(f"{sql.select} WHERE {live}"):
            docs[row[0]] = self._decode(spec, row, 1, kids.get(row[0]))
        for row in await conn.fetch(f"{sql.select} WHERE NOT ({live})"):
            doc = self._decode(spec, row, 1)
            self._set_archived(row[0], doc)

    def _set_archived(self, key: str, doc: Doc | None) -> None:
        previous = self._archived.pop(key, None)
        if previous is not None:
            self._archived_states[previous.summary.state] -= 1
        if doc is not None:
            entry = _Archived(summarize(doc), int(doc.get("version", 0) or 0))
            self._archived[key] = entry
            state = entry.summary.state
            self._archived_states[state] = self._archived_states.get(state, 0) + 1

    async def close(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            await asyncio.wait({follower}, timeout=10)
            if not follower.done():
                log.warning("the change follower did not stop; closing without it")
            elif not follower.cancelled() and follower.exception() is not None:
                log.warning("the change follower failed: %s", follower.exception())
        if self._writer is not None:
            self._closing = True
            while self._queue:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._queue[-1].future)
            assert self._wake is not None
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        conn, self._conn = self._conn, None
        if pool is None:
            return
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.execute(
                    "DELETE FROM store_owner WHERE id = 1 AND info->>'replica' = $1",
                    self.replica_id,
                )
            with contextlib.suppress(Exception):
                await pool.release(conn)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 10)

    # ---- blobs (the ``blobs`` table, migration 0002) ---------------------
    async def _blob_call(self, what: str, sql: str, *args: Any) -> Any:
        import asyncpg

        if self._pool is None:
            raise StorageError(f"the store {self.where} is not open")
        try:
            async with self._pool.acquire() as conn:
                return await conn.fetchval(sql, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageError(f"cannot {what} a file in {self.where}: {exc}") from exc

    async def put_blob(self, digest: str, data: bytes) -> None:
        if blob_digest(data) != check_digest(digest):
            raise ValueError("the blob's name is not the SHA-256 of its bytes")
        # Its own transaction, committed when this returns: before the document naming it.
        await self._blob_call(
            "write",
            "INSERT INTO blobs (sha256, size, data) VALUES ($1, $2, $3) "
            "ON CONFLICT (sha256) DO NOTHING",
            digest,
            len(data),
            bytes(data),
        )

    async def get_blob(self, digest: str) -> bytes | None:
        data = await self._blob_call(
            "read", "SELECT data FROM blobs WHERE sha256 = $1", check_digest(digest)
        )
        return bytes(data) if data is not None else None

    async def has_blob(self, digest: str) -> bool:
        found = await self._blob_call(
            "read", "SELECT 1 FROM blobs WHERE sha256 = $1", check_digest(digest)
        )
        return found is not None

    # ---- reads ----------------------------------------------------------
    def _table(self, name: str) -> dict[str, Doc]:
        return declared_table(self.hot, name)

    async def get(self, table: str, key: str) -> Doc | None:
        dirty = self._dirty.get((table, key))
        if dirty is not None and not dirty.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(dirty)  # never answer from a write not committed yet
        doc = self._table(table).get(key)
        if doc is not None:
            return json.loads(json.dumps(doc))
        if table == "cases" and key in self._archived:
            return (await self._read_cases([key])).get(key)
        return None

    async def get_many(self, table: str, keys: Sequence[str]) -> dict[str, Doc]:
        """Archived cases in one query per table (``store copy`` reads 100,000 of them)."""
        archived = [
            k
            for k in keys
            if table == "cases"
            and k in self._archived
            and k not in self.hot["cases"]
            and ("cases", k) not in self._dirty
        ]
        out = await self._read_cases(archived) if archived else {}
        for key in keys:
            if key not in out:
                doc = await self.get(table, key)
                if doc is not None:
                    out[key] = doc
        return {k: out[k] for k in keys if k in out}

    async def _read_cases(self, keys: Sequence[str]) -> dict[str, Doc]:
        """The stored cases of ``keys`` (each with its notes and audit trail), by key."""
        spec = pg_schema.SPECS["cases"]
        sql = self._sql_of(spec)
        if self._pool is None:
            raise StorageError(f"the store {self.where} is not open")
        keys = list(keys)
        kids: dict[str, dict[str, list[Any]]] = {}
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(f"{sql.select} WHERE key = ANY($1::text[])", keys)
            for child in spec.children:
                load = sql.children[child.field][3]
                n = len(child.columns)
                for r in await conn.fetch(
                    f"{load} WHERE case_key = ANY($1::text[]) ORDER BY case_key, pos", keys
                ):
                    kids.setdefault(r[0], {}).setdefault(child.field, []).append(
                        (r[2 : 2 + n], r[2 + n], r[3 + n])
                    )
        return {row[0]: self._decode(spec, row, 1, kids.get(row[0])) for row in rows}

    async def _read_row(self, conn: Any, table: str, key: str) -> Doc | None:
        """``table[key]`` as the database holds it now (a case with its notes and audit)."""
        spec = spec_for(table)
        sql = self._sql_of(spec)
        keyargs = (table, key) if spec.flow else (key,)
        row = await conn.fetchrow(sql.select_one, *keyargs)
        if row is None:
            return None
        kids: dict[str, list[Any]] = {}
        for child in spec.children:
            load = sql.children[child.field][3]
            n = len(child.columns)
            kids[child.field] = [
                (r[2 : 2 + n], r[2 + n], r[3 + n])
                for r in await conn.fetch(f"{load} WHERE case_key = $1 ORDER BY pos", key)
            ]
        return self._decode(spec, row, len(keyargs), kids)

    async def _refresh(self, conn: Any, keys: Iterable[tuple[str, str]]) -> None:
        """Re-read ``keys`` from the database into memory (another process wrote them).

        A key this process is writing now is left alone: its own commit either
        lands (and is newer) or conflicts and is re-read then. A key written here
        while it was being read is read again.
        """
        for table, key in keys:
            for _attempt in range(5):
                if (table, key) in self._dirty:
                    self._later.add((table, key))  # re-read once this process's write settles
                    break
                flag = [False]
                self._refreshing.setdefault((table, key), []).append(flag)
                try:
                    doc = await self._read_row(conn, table, key)
                finally:
                    readers = self._refreshing[(table, key)]
                    readers.remove(flag)
                    if not readers:
                        del self._refreshing[(table, key)]
                if flag[0] or (table, key) in self._dirty:
                    continue  # written here meanwhile: what was read may be older
                self._apply_remote(table, key, doc)
                break
            else:
                self._later.add((table, key))

    def _apply_remote(self, table: str, key: str, doc: Doc | None) -> None:
        """Memory takes the database's ``table[key]`` (None: deleted), listeners told."""
        hot = self.hot.get(table)
        if hot is None:
            hot = self.hot[table] = {}  # a flow table this process did not declare
        old = hot.get(key)
        if table == "cases":
            if doc is not None and doc["state"] in ARCHIVED:
                self._set_archived(key, doc)
                if old is not None:
                    del hot[key]
                    self._notify(table, key, old, None)
                return
            self._set_archived(key, None)
        if doc is None:
            hot.pop(key, None)
        else:
            hot[key] = doc
        if old is not None or doc is not None:
            self._notify(table, key, old, doc)

    def peek(self, table: str, key: str) -> Doc | None:
        """The stored document itself; for ``cases`` a live one (a finished one: :meth:`get`)."""
        try:
            return self.hot[table].get(key)
        except KeyError:
            return self._table(table).get(key)

    async def scan(self, table: str) -> list[Doc]:
        docs = self._table(table).values()
        if table == "cases":
            return [json.loads(json.dumps(d)) for d in docs if d["state"] not in ARCHIVED]
        return [json.loads(json.dumps(d)) for d in docs]

    def archived(self) -> Iterable[CaseSummary]:
        hot = self.hot["cases"]
        for key, entry in self._archived.items():
            if key not in hot:
                yield entry.summary
        for doc in hot.values():
            if doc["state"] in ARCHIVED:
                yield summarize(doc)

    def archived_counts(self) -> dict[str, int]:
        counts = {state: n for state, n in self._archived_states.items() if n}
        for key, doc in self.hot["cases"].items():  # the live data: small
            entry = self._archived.get(key)
            if entry is not None:  # written since it was archived, not settled yet
                counts[entry.summary.state] -= 1
            if doc["state"] in ARCHIVED:
                counts[doc["state"]] = counts.get(doc["state"], 0) + 1
        return {state: n for state, n in counts.items() if n}

    def view(self, table: str) -> dict[str, Doc]:
        return self._table(table)

    def health(self) -> dict[str, Any]:
        return {
            "backend": "postgresql",
            "url": self.where,
            "ok": self.last_error is None,
            "error": self.last_error,
            "schema_version": self.schema_version,
            "schema_known": SCHEMA_VERSION,
            "live_cases": sum(1 for d in self.hot["cases"].values() if d["state"] not in ARCHIVED),
            "archived_cases": len(self._archived),
        }

    async def claim(self, table: str, key: str, lease: float) -> bool:
        """Claim a queued request in the database for ``lease`` seconds (see ``_CLAIM``).

        False when another replica holds an unexpired claim, or the item is gone
        (done by another replica: it then leaves memory too).
        """
        if table != "inbox":
            raise StorageError(f"only queued requests are claimed, not {table}")
        if self._pool is None:
            raise StorageError(f"the store {self.where} is not open")
        async with self._pool.acquire() as conn:
            if await conn.fetchval(_CLAIM, key, self.replica_id, float(lease)) is not None:
                return True
            if await conn.fetchval(self._sql_of(spec_for(table)).exists, key) is None:
                await self._refresh(conn, [(table, key)])
        return False

    # ---- writes ---------------------------------------------------------
    def _version(self, table: str, key: str) -> tuple[bool, Any]:
        """Whether ``table[key]`` exists, and its version (as the guards compare it)."""
        doc = self.hot[table].get(key)
        if doc is not None:
            return True, doc.get("version", 0)
        if table == "cases":
            entry = self._archived.get(key)
            if entry is not None:
                return True, entry.version
        return False, None

    async def commit(self, ops: Sequence[Op]) -> None:
        if self._writer is None or self._wake is None or self._writer.done() or self._closing:
            raise StorageError(f"the store {self.where} is not open")
        if not ops:
            return
        for op in ops:
            if op.table not in self.hot:
                self._table(op.table)  # StorageError for a table nobody declared
        for op in ops:
            if op.expect is ANY:
                continue
            exists, version = self._version(op.table, op.key)
            if (op.expect is None and exists) or (
                op.expect is not None and (not exists or version != op.expect)
            ):
                raise VersionConflict(op.table, op.key)
        docs = [
            op.doc if op.doc is None or op.handed_over else json.loads(json.dumps(op.doc))
            for op in ops
        ]
        future = asyncio.get_running_loop().create_future()
        item = _Commit([], future)
        for op, doc in zip(ops, docs, strict=True):
            table = self.hot[op.table]
            old = table.get(op.key)
            known = old is not None or not (op.table == "cases" and op.key in self._archived)
            item.ops.append((op, doc, old, known))
            if doc is None:
                table.pop(op.key, None)
            else:
                table[op.key] = doc
            item.keys.add((op.table, op.key))
            self._dirty[(op.table, op.key)] = future
            for flag in self._refreshing.get((op.table, op.key), ()):
                flag[0] = True
            if old is not None or doc is not None:
                self._notify(op.table, op.key, old, doc)
        self._queue.append(item)
        self._wake.set()
        await asyncio.shield(future)

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                item = self._queue[0]
                try:
                    await self._write(item)
                except _SqlConflict as exc:
                    await self._conflict(VersionConflict(exc.table, exc.key))
                except Exception as exc:  # noqa: BLE001 - any database failure fails the write
                    self.last_error = f"cannot write to {self.where}: {exc}"
                    log.error("storage write failed: %s", exc)
                    await self._drop_connection()
                    self._fail(StorageError(self.last_error))
                else:
                    self.last_error = None
                    self._queue.popleft()
                    self._settle(item, None)
            if self._closing:
                return

    async def _connection(self) -> Any:
        if self._conn is not None and self._conn_lost():
            await self._drop_connection()  # the database went away meanwhile (a restart)
        if self._conn is None:
            if self._pool is None:
                raise StorageError(f"the store {self.where} is not open")
            conn = await self._pool.acquire()
            try:
                locked = await conn.fetchval(self._lock_sql, OWNER_LOCK)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._pool.release(conn)
                raise
            if not locked:
                await self._pool.release(conn)
                raise StorageError(f"the store {self.where} was taken over by another process")
            self._conn = conn
        return self._conn

    def _conn_lost(self) -> bool:
        """The writer's connection closed (its pool then took it back), e.g. by a restart."""
        try:
            return bool(self._conn.is_closed())
        except Exception:  # noqa: BLE001 - asyncpg: "released back to the pool"
            return True

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    async def _write(self, item: _Commit) -> None:
        conn = await self._connection()
        async with conn.transaction():
            ops = item.ops
            i = 0
            while i < len(ops):
                end = self._unguarded_run(ops, i)
                if end - i > 1:
                    await self._upsert_many(conn, ops[i:end])
                    i = end
                else:
                    await self._write_op(conn, *ops[i])
                    i += 1
            tables, keys = zip(*item.keys, strict=True)
            await conn.execute(_LOG_CHANGES, list(tables), list(keys), self.replica_id)

    @staticmethod
    def _unguarded_run(ops: Sequence[tuple[Op, Doc | None, Doc | None, bool]], start: int) -> int:
        """Where the run of unguarded writes (``expect`` ANY, a document) of one table that
        begins at ``start`` ends: distinct keys, so they can go as one batch, in any order."""
        first = ops[start][0]
        keys: set[str] = set()
        end = start
        while end < len(ops):
            op, doc = ops[end][0], ops[end][1]
            if op.table != first.table or op.expect is not ANY or doc is None or op.key in keys:
                break
            keys.add(op.key)
            end += 1
        return end

    async def _upsert_many(
        self, conn: Any, run: Sequence[tuple[Op, Doc | None, Doc | None, bool]]
    ) -> None:
        """Unguarded writes of one table, distinct keys: one pipelined statement per table
        (``store copy`` writes its batches so)."""
        spec = spec_for(run[0][0].table)
        sql = self._sql_of(spec)
        written = []
        args = []
        for op, doc, old, known in run:
            assert doc is not None
            row = pg_schema.encode(spec, doc)
            keyargs = (op.table, op.key) if spec.flow else (op.key,)
            args.append((*keyargs, *row.values, row.doc, row.doc_text))
            written.append((op, doc, old, known, row))
        await conn.executemany(sql.upsert, args)
        await self._write_children(conn, spec, sql, written)

    async def _write_op(
        self, conn: Any, op: Op, doc: Doc | None, old: Doc | None, known: bool
    ) -> None:
        spec = spec_for(op.table)
        sql = self._sql_of(spec)
        keyargs: tuple[str, ...] = (op.table, op.key) if spec.flow else (op.key,)
        if doc is None:
            if op.expect is ANY:
                await conn.execute(sql.delete, *keyargs)
            elif op.expect is None:
                if await conn.fetchval(sql.exists, *keyargs):
                    raise _SqlConflict(op.table, op.key)
            elif await conn.execute(sql.delete_guarded, *keyargs, op.expect) == "DELETE 0":
                raise _SqlConflict(op.table, op.key)
            return
        row = pg_schema.encode(spec, doc)
        args = (*keyargs, *row.values, row.doc, row.doc_text)
        if op.expect is ANY:
            await conn.execute(sql.upsert, *args)
        elif op.expect is None:
            if await conn.execute(sql.insert_new, *args) == "INSERT 0 0":
                raise _SqlConflict(op.table, op.key)
        elif await conn.execute(sql.update_guarded, *args, op.expect) == "UPDATE 0":
            raise _SqlConflict(op.table, op.key)
        await self._write_children(conn, spec, sql, [(op, doc, old, known, row)])

    async def _write_children(
        self,
        conn: Any,
        spec: TableSpec,
        sql: _Sql,
        written: Sequence[tuple[Op, Doc, Doc | None, bool, pg_schema.Row]],
    ) -> None:
        """The child rows (notes, audit trail) of documents just written: the new entries
        only when a list just grew, else all of them after deleting the old ones."""
        for child in spec.children:
            insert, delete_all, _delete_from, _load = sql.children[child.field]
            cleared: list[str] = []
            inserts: list[tuple[Any, ...]] = []
            for op, doc, old, known, row in written:
                start = self._children_kept(child.field, doc, old, known, op)
                if start is None:
                    cleared.append(op.key)
                    start = 0
                rows = row.children.get(child.field, [])
                inserts += [
                    (op.key, pos, *v, d, t) for pos, (v, d, t) in enumerate(rows[start:], start)
                ]
            if cleared:
                await conn.execute(delete_all, cleared)
            if inserts:
                await conn.executemany(insert, inserts)

    @staticmethod
    def _children_kept(name: str, doc: Doc, old: Doc | None, known: bool, op: Op) -> int | None:
        """How many stored child rows stay as they are (None: delete them all first).

        An audit trail only grows: a case write then inserts just its new entries.
        """
        if old is None:
            return 0 if known and op.expect is None else None  # a new document: no rows yet
        before = pg_schema.child_list(old.get(name))
        if before is None:
            return 0
        after = pg_schema.child_list(doc.get(name))
        if after is not None and after[: len(before)] == before:
            return len(before)
        return None

    async def _conflict(self, err: VersionConflict) -> None:
        """The head of the queue lost a guard in SQL (another process wrote first).

        It fails, and so do the commits queued behind it that touch one of its
        keys (they were built on top of it), transitively; the others are written
        as usual: with replicas a conflict is routine, and an unrelated commit
        failing with it would be taken for a duplicate (an enqueue: acked, lost).
        The keys are then re-read from the database before the callers hear of the
        conflict, so their retry works on the current rows.
        """
        head = self._queue.popleft()
        failed, kept = [head], collections.deque[_Commit]()
        keys = set(head.keys)
        for item in self._queue:
            if item.keys & keys:
                failed.append(item)
                keys |= item.keys
            else:
                kept.append(item)
        self._queue = kept
        self._undo(failed)
        for item in failed:
            for key in item.keys:
                if self._dirty.get(key) is item.future:
                    del self._dirty[key]
        try:
            await self._refresh(await self._connection(), sorted(keys))
        except Exception as exc:  # noqa: BLE001 - the conflict is reported all the same
            log.warning("re-reading rows after a write conflict failed: %s", exc)
            await self._drop_connection()
        for item in failed:
            self._settle(item, err)

    def _undo(self, failed: list[_Commit]) -> None:
        """Put memory back as it was before ``failed`` (newest first), listeners told."""
        for item in reversed(failed):
            for op, _doc, old, _known in reversed(item.ops):
                table = self.hot[op.table]
                current = table.get(op.key)
                if old is None:
                    table.pop(op.key, None)
                else:
                    table[op.key] = old
                if current is not None or old is not None:
                    self._notify(op.table, op.key, current, old)

    def _fail(self, err: Exception) -> None:
        """The head of the queue failed: undo it and every commit after it, newest first."""
        failed = list(self._queue)
        self._queue.clear()
        self._undo(failed)
        for item in failed:
            self._settle(item, err)

    def _settle(self, item: _Commit, err: Exception | None) -> None:
        fut = item.future
        for key in item.keys:
            if self._dirty.get(key) is fut:
                del self._dirty[key]
            if key in self._later and self._changed is not None:
                self._changed.set()
        if err is None:
            for op, doc, _old, _known in item.ops:
                if op.table == "cases":
                    self._after_case_write(op.key, doc)
        if not fut.done():
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)
                fut.exception()  # mark retrieved: waiters that gave up must not warn

    def _after_case_write(self, key: str, doc: Doc | None) -> None:
        """A committed case write: a finished case leaves memory for the archive index."""
        hot = self.hot["cases"]
        if doc is None:
            self._set_archived(key, None)
            return
        if doc["state"] not in ARCHIVED:
            if key in self._archived and hot.get(key) is doc:
                self._set_archived(key, None)
            return
        if hot.get(key) is doc and (("cases", key) not in self._dirty):
            self._set_archived(key, doc)
            del hot[key]
            self._notify("cases", key, doc, None)
