"""The typed store every flow and adapter uses, on top of a storage :class:`Engine`.

One small async interface for cases, customers, users, conversation state,
conversation references, scheduled jobs, processed-event ids and counters.
Two engines implement it: :class:`MemoryEngine` (tests) and
:class:`TinyDBEngine` (durable, the default); the contract tests in
``tests/test_storage_contract.py`` run unchanged against both.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.domain import ARCHIVED_STATES, Case, Conflict, Customer, State, User, customer_key
from bot.i18n import _
from bot.storage.engine import (
    ANY,
    CaseSummary,
    Doc,
    Engine,
    MemoryEngine,
    Op,
    StorageError,
    VersionConflict,
)
from bot.storage.tinydb_engine import StoreLocked, TinyDBEngine

__all__ = [
    "ANY",
    "CaseSummary",
    "Doc",
    "Engine",
    "MemoryEngine",
    "Op",
    "Store",
    "StorageError",
    "StoreLocked",
    "TinyDBEngine",
    "VersionConflict",
    "open_store",
]


_LIVE = frozenset(s.value for s in State) - frozenset(s.value for s in ARCHIVED_STATES)


def _due(job: Doc) -> str:
    due = job.get("due", "")
    return due if isinstance(due, str) else ""


class _Indexes:
    """Secondary indexes over the engine's in-memory data, kept current by its listener.

    Built on first use (after the engine has loaded), then updated per change:
    live cases by owner (``None``: unassigned), jobs sorted by ``due``, and
    every user's display name by id (rebuilt after any change to a user).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._owners: dict[str | None, set[str]] | None = None
        self._due: list[tuple[str, str]] | None = None
        self._names: dict[str, str] | None = None
        engine.listen(self._changed)

    def names(self) -> dict[str, str]:
        if self._names is None:
            self._names = {
                key: str(doc.get("display_name", ""))
                for key, doc in self.engine.view("users").items()
            }
        return self._names

    def owners(self) -> dict[str | None, set[str]]:
        if self._owners is None:
            owners: dict[str | None, set[str]] = {}
            for key, doc in self.engine.view("cases").items():
                if doc["state"] in _LIVE:
                    owners.setdefault(doc.get("owner"), set()).add(key)
            self._owners = owners
        return self._owners

    def due(self) -> list[tuple[str, str]]:
        if self._due is None:
            self._due = sorted((_due(doc), key) for key, doc in self.engine.view("jobs").items())
        return self._due

    def _changed(self, table: str, key: str, old: Doc | None, new: Doc | None) -> None:
        if table == "cases" and self._owners is not None:
            if old is not None and old["state"] in _LIVE:
                keys = self._owners.get(old.get("owner"))
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._owners[old.get("owner")]
            if new is not None and new["state"] in _LIVE:
                self._owners.setdefault(new.get("owner"), set()).add(key)
        elif table == "jobs" and self._due is not None:
            if old is not None:
                entry = (_due(old), key)
                i = bisect.bisect_left(self._due, entry)
                if i < len(self._due) and self._due[i] == entry:
                    del self._due[i]
            if new is not None:
                bisect.insort(self._due, (_due(new), key))
        elif table == "users":
            self._names = None


class Store:
    """Typed access to the billing desk's data; every write is atomic and durable."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._create_lock = asyncio.Lock()
        self._indexes = _Indexes(engine)
        # Live cases as Case objects, for predicates, valid while the stored doc is
        # the very same object (engines replace documents, never change them).
        self._case_cache: dict[str, tuple[Doc, Case]] = {}

    async def open(self) -> None:
        await self.engine.open()

    async def close(self) -> None:
        await self.engine.close()

    def health(self) -> dict[str, Any]:
        return self.engine.health()

    async def commit(self, ops: Sequence[Op]) -> None:
        """Write raw ops atomically (for callers that combine several records)."""
        await self.engine.commit(ops)

    # ---- counters -------------------------------------------------------
    def _counter_op(self, name: str) -> tuple[int, Op]:
        current = self.engine.peek("counters", name)
        value = int(current["value"]) + 1 if current else 1
        version = current.get("version", 0) if current else None
        doc = {"value": value, "version": (version or 0) + 1}
        return value, Op("counters", name, doc, expect=version)

    async def next_number(self, name: str) -> int:
        """A durable counter: never returns the same number twice, even after a crash."""
        while True:
            value, op = self._counter_op(name)
            try:
                await self.engine.commit([op])
                return value
            except VersionConflict:
                continue

    # ---- cases ----------------------------------------------------------
    async def create_case(
        self,
        build: Callable[[int], Case],
        extra_ops: Sequence[Op] | Callable[[Case], Sequence[Op]] = (),
    ) -> Case:
        """Give the next case number to ``build`` and store the case it returns, atomically.

        The number and the case are written in one commit: a number shown to a
        user always belongs to a stored case, and a crash never reuses one.
        """
        async with self._create_lock:
            number, counter_op = self._counter_op("case")
            case = build(number)
            case.version = 1
            extra = extra_ops(case) if callable(extra_ops) else extra_ops
            await self.engine.commit(
                [counter_op, Op("cases", str(number), case.to_doc(), expect=None), *extra]
            )
            return case

    async def get_case(self, number: int) -> Case | None:
        doc = await self.engine.get("cases", str(number))
        return Case.from_doc(doc) if doc else None

    async def save_case(self, case: Case, extra_ops: Sequence[Op] = ()) -> Case:
        """Store ``case`` if nobody changed it since it was read; bumps its version.

        Raises :class:`Conflict` (a readable domain error) when it changed.
        """
        expected = case.version
        doc = case.to_doc()
        doc["version"] = expected + 1
        try:
            await self.engine.commit(
                [Op("cases", str(case.number), doc, expect=expected), *extra_ops]
            )
        except VersionConflict as exc:
            raise Conflict(
                _("{case} changed while you were working on it; here is its current state.").format(
                    case=case.id
                )
            ) from exc
        case.version = expected + 1
        return case

    async def live_cases(self) -> list[Case]:
        return [Case.from_doc(d) for d in self._live_docs()]

    def archived_summaries(self) -> list[CaseSummary]:
        return list(self.engine.archived())

    def _cached_case(self, key: str, doc: Doc) -> Case:
        """A shared Case for ``doc`` (for predicates only: never handed out, never mutated)."""
        hit = self._case_cache.get(key)
        if hit is not None and hit[0] is doc:
            return hit[1]
        case = Case.from_doc(doc)
        self._case_cache[key] = (doc, case)
        return case

    async def list_cases(
        self,
        *,
        predicate: Callable[[Case], bool] | None = None,
        include_archived: bool = False,
        summary_predicate: Callable[[CaseSummary], bool] | None = None,
        limit: int | None = None,
        owner: Any = ANY,
    ) -> tuple[list[Case], int]:
        """Cases matching, newest activity first, and how many matched in all.

        ``owner`` (a user id, or None for unassigned) narrows the live cases through
        an index first. Live cases are filtered in memory (``predicate`` must not
        change the case it is given); archived ones by their summary first (and
        ``owner`` if given), so only the page shown is read from the archive.
        """
        view = self.engine.view("cases")
        if owner is ANY:
            live = [(k, d) for k, d in view.items() if d["state"] in _LIVE]
        else:
            keys = self._indexes.owners().get(owner, ())
            live = [(k, view[k]) for k in keys if k in view]
        keyed: list[tuple[str, int, Doc | None]] = []
        for key, doc in live:
            if predicate is None or predicate(self._cached_case(key, doc)):
                keyed.append((doc.get("updated_at") or doc["created_at"], int(doc["number"]), doc))
        if len(self._case_cache) > 2 * len(view) + 100:
            self._case_cache = {k: v for k, v in self._case_cache.items() if view.get(k) is v[0]}
        if include_archived:
            for s in self.engine.archived():
                if (summary_predicate is None or summary_predicate(s)) and (
                    owner is ANY or s.owner == owner
                ):
                    keyed.append((s.updated_at, s.number, None))
        total = len(keyed)
        if limit is None:
            keyed.sort(key=lambda t: (t[0], t[1]), reverse=True)
            page = keyed
        else:
            page = heapq.nlargest(limit, keyed, key=lambda t: (t[0], t[1]))
        out: list[Case] = []
        for _ts, number, live_doc in page:
            if live_doc is None:
                case = await self.get_case(number)
                if case is None or (predicate is not None and not predicate(case)):
                    continue
            else:
                case = Case.from_doc(live_doc)
            out.append(case)
        return out, total

    def case_counts(self) -> dict[str, int]:
        """Cases per state (live from memory, archived from the engine's counts)."""
        counts: dict[str, int] = {s.value: 0 for s in State}
        for doc in self._live_docs():
            counts[doc["state"]] += 1
        for state, n in self.engine.archived_counts().items():
            counts[state] += n
        return counts

    def _live_docs(self) -> list[Doc]:
        return [d for d in self.engine.view("cases").values() if d["state"] in _LIVE]

    # ---- customers ------------------------------------------------------
    async def get_customer(self, customer_id: str) -> Customer | None:
        doc = await self.engine.get("customers", customer_id)
        return Customer.from_doc(doc) if doc else None

    async def find_customer(self, name: str) -> Customer | None:
        return await self.get_customer(customer_key(name))

    async def customer_by_tenant(self, tenant_id: str) -> Customer | None:
        for doc in await self.engine.scan("customers"):
            if doc.get("tenant_id") == tenant_id:
                return Customer.from_doc(doc)
        return None

    async def save_customer(self, customer: Customer) -> None:
        await self.engine.commit([Op("customers", customer.id, customer.to_doc())])

    async def customers(self) -> list[Customer]:
        # from_doc copies every field, so the stored documents need no defensive copy first
        # (a JSON round trip of every customer cost more than the rest of a `list`).
        docs = self.engine.view("customers").values()
        return sorted((Customer.from_doc(d) for d in docs), key=lambda c: c.name.casefold())

    # ---- users ----------------------------------------------------------
    async def get_user(self, user_id: str) -> User | None:
        doc = await self.engine.get("users", user_id)
        return User.from_doc(doc) if doc else None

    async def user_by_identity(self, channel: str, external_id: str) -> User | None:
        link = await self.engine.get("identities", f"{channel}:{external_id}")
        return await self.get_user(link["user_id"]) if link else None

    async def find_user(self, name: str) -> User | None:
        """A user by id or display name (case-insensitive), for ``assign`` and config."""
        user = await self.get_user(name)
        if user:
            return user
        wanted = name.strip().lstrip("@").casefold()
        for doc in await self.engine.scan("users"):
            if doc["display_name"].casefold() == wanted or doc["id"].casefold() == wanted:
                return User.from_doc(doc)
        return None

    async def save_user(self, user: User) -> None:
        ops = [Op("users", user.id, user.to_doc())]
        for channel, external in user.identities.items():
            ops.append(Op("identities", f"{channel}:{external}", {"user_id": user.id}))
        await self.engine.commit(ops)

    async def users(self) -> list[User]:
        return [User.from_doc(d) for d in self.engine.view("users").values()]  # from_doc copies

    def user_names(self) -> dict[str, str]:
        """Every user's display name by user id (from an index: no pass over the users)."""
        return dict(self._indexes.names())

    # ---- conversation state --------------------------------------------
    async def get_conversation(self, key: str) -> Doc | None:
        return await self.engine.get("conversations", key)

    def conversation_op(self, key: str, state: Doc | None) -> Op:
        return Op("conversations", key, state)

    async def save_conversation(self, key: str, state: Doc | None) -> None:
        await self.engine.commit([self.conversation_op(key, state)])

    # ---- conversation references ---------------------------------------
    async def save_reference(self, user_id: str, channel: str, reference: Doc) -> None:
        await self.engine.commit([Op("references", f"{user_id}|{channel}", reference)])

    async def references(self, user_id: str) -> dict[str, Doc]:
        """Every stored reference of a user, by channel."""
        out: dict[str, Doc] = {}
        for channel in ("slack", "teams", "local", "web"):
            doc = await self.engine.get("references", f"{user_id}|{channel}")
            if doc:
                out[channel] = doc
        return out

    # ---- scheduled jobs -------------------------------------------------
    def job_op(self, job_id: str, job: Doc | None) -> Op:
        return Op("jobs", job_id, job)

    async def save_job(self, job_id: str, job: Doc | None) -> None:
        await self.engine.commit([self.job_op(job_id, job)])

    async def get_job(self, job_id: str) -> Doc | None:
        return await self.engine.get("jobs", job_id)

    async def jobs(self) -> list[tuple[str, Doc]]:
        return [(k, dict(v)) for k, v in self.engine.view("jobs").items()]

    async def due_jobs(self, now: datetime) -> list[tuple[str, Doc]]:
        """Jobs whose ``due`` time (ISO UTC) has come, oldest first (from an index)."""
        index = self._indexes.due()
        end = bisect.bisect_right(index, now.isoformat(), key=lambda entry: entry[0])
        view = self.engine.view("jobs")
        return [(k, json.loads(json.dumps(view[k]))) for _due, k in index[:end] if k in view]

    # ---- processed events (idempotency) ---------------------------------
    def event_op(self, key: str, now: datetime, ttl: timedelta) -> Op | None:
        """The op recording ``key`` as seen for ``ttl``; None if it was seen within its ttl.

        Guarded by the stored version: of two concurrent commits of it, the
        second fails with :class:`VersionConflict` (a repeat, too).
        """
        current = self.engine.peek("events", key)
        if current is not None and current.get("expires", "") > now.isoformat():
            return None
        version = current.get("version", 0) if current else None
        doc = {"expires": (now + ttl).isoformat(), "version": (version or 0) + 1}
        return Op("events", key, doc, expect=version)

    async def remember_event(self, key: str, now: datetime, ttl: timedelta) -> bool:
        """True the first time ``key`` is seen within ``ttl``; False for a repeat."""
        op = self.event_op(key, now, ttl)
        if op is None:
            return False
        try:
            await self.engine.commit([op])
        except VersionConflict:
            return False
        return True

    async def purge_events(self, now: datetime) -> int:
        stamp = now.isoformat()
        events = self.engine.view("events")
        stale = [k for k, d in events.items() if d.get("expires", "") <= stamp]
        if stale:
            await self.engine.commit([Op("events", k, None) for k in stale])
        return len(stale)


def open_store(path: str | Path | None) -> Store:
    """A store on TinyDB files at ``path``, or in memory when ``path`` is ``:memory:``/None."""
    if path is None or str(path) == ":memory:":
        return Store(MemoryEngine())
    return Store(TinyDBEngine(path))


async def open_store_or_serve(path: str | Path) -> tuple[Store | None, str | None]:
    """The store at ``path`` opened by this process — or the URL of the serve that owns it.

    One process owns a store: commands that change data (``chat``, ``receivables
    import``, ``demo-data``) talk to a running ``serve`` over loopback and open
    the store themselves only when there is none. Raises :class:`StorageError`
    with a message for the person when neither is possible.
    """
    from bot.storage.tinydb_engine import lock_path_for, read_lock_info

    store = open_store(path)
    try:
        await store.open()
    except StoreLocked as exc:
        info = read_lock_info(lock_path_for(path))
        url = info.get("url")
        if not url:
            raise StorageError(
                f"the store {path} is in use by pid {info.get('pid', '?')}, "
                "which is not a serve I can talk to"
            ) from exc
        return None, str(url)
    return store, None
