"""The typed store every flow and adapter uses, on top of a storage :class:`Engine`.

One small async interface for cases, customers, users, conversation state,
conversation references, scheduled jobs, processed-event ids and counters.
Two engines implement it: :class:`MemoryEngine` (tests) and
:class:`TinyDBEngine` (durable, the default); the contract tests in
``tests/test_storage_contract.py`` run unchanged against both.
"""

from __future__ import annotations

import asyncio
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


class Store:
    """Typed access to the billing desk's data; every write is atomic and durable."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._create_lock = asyncio.Lock()

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
    async def create_case(self, build: Callable[[int], Case], extra_ops: Sequence[Op] = ()) -> Case:
        """Give the next case number to ``build`` and store the case it returns, atomically.

        The number and the case are written in one commit: a number shown to a
        user always belongs to a stored case, and a crash never reuses one.
        """
        async with self._create_lock:
            number, counter_op = self._counter_op("case")
            case = build(number)
            case.version = 1
            await self.engine.commit(
                [counter_op, Op("cases", str(number), case.to_doc(), expect=None), *extra_ops]
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
        return [Case.from_doc(d) for d in await self.engine.scan("cases")]

    def archived_summaries(self) -> list[CaseSummary]:
        return list(self.engine.archived())

    async def list_cases(
        self,
        *,
        predicate: Callable[[Case], bool] | None = None,
        include_archived: bool = False,
        summary_predicate: Callable[[CaseSummary], bool] | None = None,
        limit: int | None = None,
    ) -> tuple[list[Case], int]:
        """Cases matching, newest activity first, and how many matched in all.

        Live cases are filtered in memory; archived ones by their summary first,
        so only the page shown is read from the archive.
        """
        live = [c for c in await self.live_cases() if predicate is None or predicate(c)]
        keyed: list[tuple[str, int, Case | None]] = [
            ((c.updated_at or c.created_at).isoformat(), c.number, c) for c in live
        ]
        if include_archived:
            for s in self.engine.archived():
                if summary_predicate is None or summary_predicate(s):
                    keyed.append((s.updated_at, s.number, None))
        keyed.sort(key=lambda t: (t[0], t[1]), reverse=True)
        total = len(keyed)
        page = keyed if limit is None else keyed[:limit]
        out: list[Case] = []
        for _ts, number, case in page:
            if case is None:
                case = await self.get_case(number)
                if case is None or (predicate is not None and not predicate(case)):
                    continue
            out.append(case)
        return out, total

    def case_counts(self) -> dict[str, int]:
        """Cases per state (live from memory, archived from the index)."""
        counts: dict[str, int] = {s.value: 0 for s in State}
        for doc in self._live_docs():
            counts[doc["state"]] += 1
        for summary in self.engine.archived():
            counts[summary.state] += 1
        return counts

    def _live_docs(self) -> list[Doc]:
        return [
            d
            for d in self.engine.view("cases").values()
            if State(d["state"]) not in ARCHIVED_STATES
        ]

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
        docs = await self.engine.scan("customers")
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
        return [User.from_doc(d) for d in await self.engine.scan("users")]

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
        """Jobs whose ``due`` time (ISO UTC) has come, oldest first."""
        stamp = now.isoformat()
        due = [(k, d) for k, d in await self.jobs() if d.get("due", "") <= stamp]
        due.sort(key=lambda kv: kv[1].get("due", ""))
        return due

    # ---- processed events (idempotency) ---------------------------------
    async def remember_event(self, key: str, now: datetime, ttl: timedelta) -> bool:
        """True the first time ``key`` is seen within ``ttl``; False for a repeat."""
        current = self.engine.peek("events", key)
        if current is not None and current.get("expires", "") > now.isoformat():
            return False
        version = current.get("version", 0) if current else None
        doc = {"expires": (now + ttl).isoformat(), "version": (version or 0) + 1}
        try:
            await self.engine.commit([Op("events", key, doc, expect=version)])
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
