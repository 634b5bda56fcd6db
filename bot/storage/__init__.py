"""The typed store every flow and adapter uses, on top of a storage :class:`Engine`.

One small async interface for cases, customers, users, conversation state,
conversation references, scheduled jobs, processed-event ids, the request
queue and counters, and for the tables of the collections flow (receivables,
collections state, audit). Three engines implement it: :class:`MemoryEngine`
(tests), :class:`TinyDBEngine` (durable, the default) and :class:`PostgresEngine`
(``BOT_DB=postgresql://…``); the contract tests in ``tests/test_storage_contract.py``
run unchanged against all three.

Flows and adapters go through the typed, named methods of :class:`Store` only:
no table name and no ``store.engine`` outside this package (``tests/test_layers.py``).
A flow that needs tables of its own declares them with :func:`declare_tables`
when its module is imported (the collections flow declares
:data:`COLLECTIONS_TABLES`, the web page :data:`WEB_TABLES`); the store's own tables
are ``CORE_TABLES``.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.domain import ARCHIVED_STATES, Case, Conflict, Customer, State, User, customer_key
from bot.i18n import _
from bot.storage.engine import (
    ANY,
    CORE_TABLES,
    CaseSummary,
    Doc,
    Engine,
    MemoryEngine,
    Op,
    StorageError,
    VersionConflict,
    blob_digest,
    check_digest,
    declare_tables,
    known_tables,
)
from bot.storage.pg_engine import PostgresEngine
from bot.storage.pg_migrate import is_postgres_url
from bot.storage.tinydb_engine import StoreLocked, TinyDBEngine

__all__ = [
    "ANY",
    "COLLECTIONS_TABLES",
    "CORE_TABLES",
    "CaseSummary",
    "Doc",
    "Engine",
    "MemoryEngine",
    "Op",
    "PostgresEngine",
    "Store",
    "StorageError",
    "StoreLocked",
    "TinyDBEngine",
    "VersionConflict",
    "WEB_TABLES",
    "blob_digest",
    "declare_tables",
    "is_postgres_url",
    "known_tables",
    "open_store",
]

_CASE_COUNTER = "case"  # the counter that numbers cases

# The collections flow's tables (declared by ``conversations.collections`` at import):
_AUDIT = "audit"  # append-only entries, keyed so that they sort by time
_RECEIVABLES = "receivables"  # one document per invoice, keyed by ``invoice_key``
_COLLECTIONS = "collections"  # ``customer:<id>`` states, ``op:<id>`` suspend/reactivate ops
COLLECTIONS_TABLES = (_AUDIT, _RECEIVABLES, _COLLECTIONS)
"""What the collections flow declares (with :func:`declare_tables`) to use its methods."""


# The web page's table (declared by ``adapters.web`` at import): each person's chat transcript,
# one document per turn (``turn|<user>|<n>``) and an index of the numbers kept (``index|<user>``),
# so that a new turn writes one small document, not the whole transcript.
_WEB_CHAT = "web_chat"
WEB_TABLES = (_WEB_CHAT,)
"""What the web page declares (with :func:`declare_tables`) to keep its chat transcripts."""


def _web_chat_key(user_id: str, number: int | None = None) -> str:
    """The index of ``user_id``'s transcript, or (``number``) one of its turns."""
    return f"index|{user_id}" if number is None else f"turn|{user_id}|{number}"


def _collections_state_key(customer_id: str) -> str:
    return f"customer:{customer_id}"


_STATE_PREFIX = _collections_state_key("")


def _collections_operation_key(op_id: str) -> str:
    return f"op:{op_id}"


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

    async def set_owner_info(self, info: dict[str, Any]) -> None:
        """Tell other processes who owns a durable store (``serve`` adds its URL); else nothing."""
        if isinstance(self.engine, TinyDBEngine):
            self.engine.set_lock_info(info)
        elif isinstance(self.engine, PostgresEngine):
            await self.engine.set_owner_info(info)

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

    def counter_value(self, name: str) -> int | None:
        """The last number counter ``name`` gave out; None if it never gave one."""
        doc = self.engine.peek("counters", name)
        return None if doc is None else int(doc["value"])

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
        user always belongs to a stored case, and a crash never reuses one. When
        another process (a replica) took that number first, the commit conflicts
        on the counter and the next number is tried.
        """
        async with self._create_lock:
            while True:
                number, counter_op = self._counter_op(_CASE_COUNTER)
                case = build(number)
                case.version = 1
                extra = extra_ops(case) if callable(extra_ops) else extra_ops
                try:
                    await self.engine.commit(
                        [counter_op, Op("cases", str(number), case.to_doc(), expect=None), *extra]
                    )
                except VersionConflict as exc:
                    if (exc.table, exc.key) == ("counters", _CASE_COUNTER):
                        continue  # the number went elsewhere: the engine re-read the counter
                    raise
                return case

    async def get_case(self, number: int) -> Case | None:
        doc = await self.engine.get("cases", str(number))
        return Case.from_doc(doc) if doc else None

    async def save_case(self, case: Case, extra_ops: Sequence[Op] = ()) -> Case:
        """Store ``case`` if nobody changed it since it was read; bumps its version.

        Raises :class:`Conflict` (a readable domain error) when it changed.
        """
        expected = case.version
        try:
            await self.engine.commit([Store.case_op(case), *extra_ops])
        except VersionConflict as exc:
            raise Conflict(
                _("{case} changed while you were working on it; here is its current state.").format(
                    case=case.id
                )
            ) from exc
        case.version = expected + 1
        return case

    @staticmethod
    def case_op(case: Case) -> Op:
        """The guarded write of ``case`` (as :meth:`save_case` does it), for a combined commit."""
        doc = case.to_doc()
        doc["version"] = case.version + 1
        return Op("cases", str(case.number), doc, expect=case.version)

    def case_numbers_given(self) -> int | None:
        """The last case number given out (even if its case is gone); None before the first."""
        return self.counter_value(_CASE_COUNTER)

    def cases_held(self) -> int:
        """How many cases the store holds: those in memory plus the archived ones."""
        return len(self.engine.view("cases")) + sum(self.engine.archived_counts().values())

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
        offset: int = 0,
    ) -> tuple[list[Case], int]:
        """Cases matching, newest activity first, and how many matched in all.

        ``offset`` and ``limit`` give one page of them: the order (last activity, then
        case number) is total, so pages neither repeat nor skip a case.

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
            page = keyed[offset:]
        else:
            page = heapq.nlargest(offset + limit, keyed, key=lambda t: (t[0], t[1]))[offset:]
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
        await self.engine.commit([Store.customer_op(customer)])

    @staticmethod
    def customer_op(customer: Customer) -> Op:
        """The write of ``customer``, for a combined commit."""
        return Op("customers", customer.id, customer.to_doc())

    def customer_now(self, customer_id: str) -> Customer | None:
        """A customer as stored right now, without waiting for a write in flight."""
        doc = self.engine.peek("customers", customer_id)
        return Customer.from_doc(doc) if doc else None

    def customer_count(self) -> int:
        return len(self.engine.view("customers"))

    def tenant_holders(self) -> dict[str, str]:
        """Customer id by tenant id, of every customer with a tenant id."""
        return {
            doc["tenant_id"]: key
            for key, doc in self.engine.view("customers").items()
            if doc.get("tenant_id")
        }

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

    def user_role(self, user_id: str) -> str | None:
        """The stored role (its value) of a user; None for a user not stored."""
        doc = self.engine.peek("users", user_id)
        return doc.get("role") if doc else None

    async def users(self) -> list[User]:
        return [User.from_doc(d) for d in self.engine.view("users").values()]  # from_doc copies

    def user_names(self) -> dict[str, str]:
        """Every user's display name by user id (from an index: no pass over the users)."""
        return dict(self._indexes.names())

    # ---- conversation state --------------------------------------------
    async def get_conversation(self, key: str) -> Doc | None:
        return await self.engine.get("conversations", key)

    def conversation_op(self, key: str, state: Doc | None, expect: Any = ANY) -> Op:
        """Write (None: drop) conversation ``key``, guarded by ``expect`` as :class:`Op` says."""
        return Op("conversations", key, state, expect=expect)

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

    # ---- posted case cards: a reply in a card's thread is about its case ----------
    @staticmethod
    def _card_key(channel: str, message: str) -> str:
        return f"card|{channel}|{message}"

    async def save_card_message(self, channel: str, message: str, case_number: int) -> None:
        """The bot posted ``case_number``'s card as ``message`` on ``channel`` (Slack: the
        channel and ``ts``; Teams: the conversation and activity id): replies to it add to
        the case. Kept with the conversation references."""
        key = self._card_key(channel, message)
        known = self.engine.peek("references", key)
        if known is None or known.get("case") != case_number:
            await self.engine.commit([Op("references", key, {"case": case_number})])

    async def card_message_case(self, channel: str, message: str) -> int | None:
        """The case whose card is ``message`` on ``channel``, or None (not a card of ours)."""
        doc = await self.engine.get("references", self._card_key(channel, message))
        return int(doc["case"]) if doc and isinstance(doc.get("case"), int) else None

    # ---- scheduled jobs -------------------------------------------------
    @staticmethod
    def job_op(job_id: str, job: Doc | None, expect: Any = ANY) -> Op:
        """Write (None: delete) a job, guarded by ``expect`` as :class:`Op` says."""
        return Op("jobs", job_id, job, expect=expect)

    def job(self, job_id: str) -> Doc | None:
        """The stored job itself, without waiting (read-only: never change it)."""
        return self.engine.peek("jobs", job_id)

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

    def event(self, key: str) -> Doc | None:
        """The stored record of event ``key`` (read-only), expired or not; None if never seen."""
        return self.engine.peek("events", key)

    def was_seen(self, key: str) -> bool:
        """Whether a record of event ``key`` is stored (expired or not)."""
        return self.engine.peek("events", key) is not None

    @staticmethod
    def event_record_op(key: str, doc: Doc, expect: Any = ANY) -> Op:
        """Record event ``key`` with ``doc`` (which carries its own ``expires``)."""
        return Op("events", key, doc, expect=expect)

    @staticmethod
    def forget_event_op(key: str) -> Op:
        """Drop the record of event ``key``: the same event is new again."""
        return Op("events", key, None)

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

    # ---- files (attachments' bytes, kept by the engine as blobs) -----------------
    async def put_file(self, data: bytes) -> str:
        """Keep ``data`` durably and return its id (SHA-256, hex); the same bytes, the same id.

        Call it *before* committing the record that names the file (a case's attachment):
        a crash in between leaves bytes nobody names, which the next upload reuses.
        """
        digest = blob_digest(data)
        await self.engine.put_blob(digest, data)
        return digest

    async def file_bytes(self, file_id: str) -> bytes | None:
        """The bytes kept under ``file_id``; None when there are none (or it is no file id)."""
        try:
            return await self.engine.get_blob(check_digest(file_id))
        except ValueError:
            return None

    async def has_file(self, file_id: str) -> bool:
        try:
            return await self.engine.has_blob(check_digest(file_id))
        except ValueError:
            return False

    # ---- the request queue (a channel request between its ack and its work) ----
    def queued_requests(self) -> Mapping[str, Doc]:
        """Every queued request by id (ids sort by arrival), live and dead; read-only."""
        return self.engine.view("inbox")

    def queued_request_count(self) -> int:
        return len(self.engine.view("inbox"))

    def is_queued(self, item_id: str) -> bool:
        return item_id in self.engine.view("inbox")

    def queued_request(self, item_id: str) -> Doc | None:
        """One queued request as stored (live or dead), or None once it is done."""
        return self.engine.peek("inbox", item_id)

    async def claim_request(self, item_id: str, lease: float) -> bool:
        """Claim request ``item_id`` for ``lease`` seconds before working it (replicas share
        one queue); False when another process holds it or it is gone (see ``Engine.claim``)."""
        return await self.engine.claim("inbox", item_id, lease)

    @staticmethod
    def queued_request_op(item_id: str, item: Doc | None, *, handed_over: bool = False) -> Op:
        """Queue or update (None: drop) request ``item_id``; ``handed_over`` as :class:`Op`."""
        return Op("inbox", item_id, item, handed_over=handed_over)

    # ---- the collections flow's tables (COLLECTIONS_TABLES) ---------------------
    # Each raises StorageError while nobody declared the tables (the flow is not loaded).
    def audit_entries(self) -> list[Doc]:
        """Every audit entry (read-only), oldest first."""
        return [doc for _key, doc in sorted(self.engine.view(_AUDIT).items())]

    @staticmethod
    def audit_entry_op(key: str, doc: Doc) -> Op:
        """Add an audit entry (``expect=None``: an entry is never overwritten)."""
        return Op(_AUDIT, key, doc, expect=None)

    def receivable_docs(self) -> Mapping[str, Doc]:
        """Every stored receivable by its key (read-only)."""
        return self.engine.view(_RECEIVABLES)

    def receivable_doc(self, key: str) -> Doc | None:
        """The stored receivable ``key`` (``invoice_key(invoice)``; read-only), or None."""
        return self.engine.peek(_RECEIVABLES, key)

    @staticmethod
    def receivable_op(key: str, doc: Doc, expect: Any = ANY) -> Op:
        """Write a receivable, guarded by ``expect`` (None: new; its version otherwise)."""
        return Op(_RECEIVABLES, key, doc, expect=expect)

    def collections_state(self, customer_id: str) -> Doc | None:
        """A customer's collections state (stages fired, status; read-only), or None."""
        return self.engine.peek(_COLLECTIONS, _collections_state_key(customer_id))

    def collections_states(self) -> dict[str, Doc]:
        """Every customer's collections state (read-only) by customer id."""
        cut = len(_STATE_PREFIX)
        return {
            key[cut:]: doc
            for key, doc in self.engine.view(_COLLECTIONS).items()
            if key.startswith(_STATE_PREFIX)
        }

    @staticmethod
    def collections_state_op(customer_id: str, doc: Doc, expect: Any = ANY) -> Op:
        return Op(_COLLECTIONS, _collections_state_key(customer_id), doc, expect=expect)

    def collections_operation(self, op_id: str) -> Doc | None:
        """A suspend / reactivate operation's record (read-only), or None."""
        return self.engine.peek(_COLLECTIONS, _collections_operation_key(op_id))

    @staticmethod
    def collections_operation_op(op_id: str, doc: Doc, expect: Any = ANY) -> Op:
        return Op(_COLLECTIONS, _collections_operation_key(op_id), doc, expect=expect)

    # ---- the web page's table (WEB_TABLES) ------------------------------------------
    # Each raises StorageError while nobody declared the table (the web page is not loaded).
    def web_chat(self, user_id: str) -> list[Doc]:
        """``user_id``'s web chat turns (read-only), oldest first."""
        index = self.engine.peek(_WEB_CHAT, _web_chat_key(user_id))
        if not index:
            return []
        turns = (
            self.engine.peek(_WEB_CHAT, _web_chat_key(user_id, n))
            for n in range(int(index["first"]), int(index["next"]))
        )
        return [t for t in turns if t is not None]

    async def add_web_chat_turn(self, user_id: str, turn: Doc, keep: int) -> None:
        """Append a turn to ``user_id``'s web chat, keeping only the last ``keep`` turns."""
        key = _web_chat_key(user_id)
        keep = max(1, keep)
        while True:
            index = self.engine.peek(_WEB_CHAT, key)
            first = int(index["first"]) if index else 0
            number = int(index["next"]) if index else 0
            version = int(index.get("version", 0)) if index else None
            ops = [Op(_WEB_CHAT, _web_chat_key(user_id, number), turn)]
            while number + 1 - first > keep:
                ops.append(Op(_WEB_CHAT, _web_chat_key(user_id, first), None))
                first += 1
            new_index = {"first": first, "next": number + 1, "version": (version or 0) + 1}
            ops.append(Op(_WEB_CHAT, key, new_index, expect=version))
            try:
                await self.engine.commit(ops)
                return
            except VersionConflict:
                continue


def open_store(path: str | Path | None) -> Store:
    """A store in PostgreSQL for a ``postgresql://`` URL (one of any number of replicas on
    it), on TinyDB files at a path (its one owner), or in memory when ``path`` is
    ``:memory:``/None."""
    if path is None or str(path) == ":memory:":
        return Store(MemoryEngine())
    if is_postgres_url(path):
        return Store(PostgresEngine(str(path), shared=True))
    return Store(TinyDBEngine(path))


async def open_store_or_serve(path: str | Path) -> tuple[Store | None, str | None]:
    """The store at ``path`` opened by this process — or the URL of the serve that owns it.

    One process owns a TinyDB store: commands that change data (``chat``,
    ``receivables import``, ``demo-data``) talk to a running ``serve`` over
    loopback and open the store themselves only when there is none. A
    PostgreSQL store takes any number of processes (replicas): they open it
    directly, unless ``store copy`` holds it alone. Raises :class:`StorageError`
    with a message for the person when neither is possible.
    """
    from bot.storage.tinydb_engine import lock_path_for, read_lock_info

    store = open_store(path)
    try:
        await store.open()
    except StoreLocked as exc:
        info = exc.info if is_postgres_url(path) else read_lock_info(lock_path_for(path))
        url = info.get("url")
        if not url:
            raise StorageError(
                f"the store {path} is in use by pid {info.get('pid', '?')}, "
                "which is not a serve I can talk to"
            ) from exc
        return None, str(url)
    return store, None
