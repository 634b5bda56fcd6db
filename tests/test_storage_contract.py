"""The storage contract: one suite, run unchanged against every engine.

The second half holds what only the durable TinyDB engine promises: reopening,
compaction into the archive, the process lock, refusing damaged files, and
surviving a failing disk.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain import (
    Actor,
    Attachment,
    Case,
    Category,
    Conflict,
    Customer,
    Dispute,
    InformedVia,
    Kind,
    Outcome,
    Role,
    State,
    User,
    customer_key,
)
from bot.money import Money
from bot.storage import (
    COLLECTIONS_TABLES,
    WEB_TABLES,
    Engine,
    MemoryEngine,
    Op,
    PostgresEngine,
    StorageError,
    Store,
    StoreLocked,
    TinyDBEngine,
    VersionConflict,
    declare_tables,
    known_tables,
)
from bot.storage.tinydb_engine import open_tinydb

# What the collections flow declares when its module is imported (its Store methods need it).
declare_tables(*COLLECTIONS_TABLES)
declare_tables(*WEB_TABLES)  # what the web page declares (its chat transcripts)

AGENT = Actor(user_id="u-ana", role=Role.AGENT, channel="local", display_name="Ana")
TTL = timedelta(hours=1)


# ---- helpers ---------------------------------------------------------------


def builder(
    now: datetime,
    *,
    customer: str = "contoso",
    dispute: Dispute | None = None,
    description: str = "Why is the invoice higher this month?",
) -> Callable[[int], Case]:
    def build(number: int) -> Case:
        return Case.new(
            number,
            kind=Kind.DISPUTE if dispute else Kind.QUESTION,
            customer_id=customer,
            category=Category.CHARGES if dispute else Category.INVOICE,
            description=description,
            actor=AGENT,
            now=now,
            invoice=dispute.invoice if dispute else None,
            dispute=dispute,
        )

    return build


async def close_case(store: Store, case: Case, now: datetime) -> Case:
    """Walk a question case through the state machine to ``closed``."""
    case.start(AGENT, now)
    case.resolve("Explained the proration.", AGENT, now)
    case.mark_informed(InformedVia.EMAIL, "Sent the explanation.", AGENT, now)
    case.close(AGENT, now)
    return await store.save_case(case)


async def cancel_case(store: Store, case: Case, now: datetime) -> Case:
    case.cancel("duplicate", AGENT, now)
    return await store.save_case(case)


def durable_copy(src: Path, dst_dir: Path) -> Path:
    """Copy a store's files as they are on disk right now (a crash image), lock excluded."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    stem = src.with_suffix("").name
    for f in src.parent.iterdir():
        if f.name.startswith(stem + ".") and not f.name.endswith(".lock"):
            shutil.copy2(f, dst_dir / f.name)
    return dst_dir / src.name


# ---- the contract, for every engine -----------------------------------------


@pytest.fixture(params=["memory", "tinydb", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    engine: Engine
    if request.param == "memory":
        engine = MemoryEngine()
    elif request.param == "tinydb":
        engine = TinyDBEngine(tmp_path / "s.json")
    else:
        engine = PostgresEngine(request.getfixturevalue("pg_url"))
    s = Store(engine)
    await s.open()
    yield s
    await s.close()


async def test_case_numbers_are_unique_and_increasing(store: Store, now: datetime) -> None:
    numbers = [(await store.create_case(builder(now))).number for _ in range(5)]
    assert numbers == [1, 2, 3, 4, 5]


async def test_concurrent_creations_get_distinct_numbers(store: Store, now: datetime) -> None:
    await store.create_case(builder(now))
    cases = await asyncio.gather(*(store.create_case(builder(now)) for _ in range(50)))
    numbers = [c.number for c in cases]
    assert sorted(numbers) == list(range(2, 52))
    assert len(set(numbers)) == 50
    for c in cases:
        stored = await store.get_case(c.number)
        assert stored is not None and stored.number == c.number and stored.version == 1
    assert await store.next_number("case") == 52


async def test_create_case_commits_extra_ops_atomically(store: Store, now: datetime) -> None:
    def remind(case: Case) -> list[Op]:
        return [
            store.job_op(f"remind:{case.number}", {"due": now.isoformat(), "case": case.number})
        ]

    case = await store.create_case(builder(now), extra_ops=remind)
    assert await store.get_job(f"remind:{case.number}") == {
        "due": now.isoformat(),
        "case": case.number,
    }
    await store.commit([Op("inbox", "taken", {"version": 1}, expect=None)])
    with pytest.raises(VersionConflict):
        await store.create_case(
            builder(now), extra_ops=[Op("inbox", "taken", {"version": 1}, expect=None)]
        )
    assert await store.get_case(case.number + 1) is None  # nothing written, no number used
    assert (await store.create_case(builder(now))).number == case.number + 1


async def test_get_case_roundtrip_keeps_money_exact(store: Store, now: datetime) -> None:
    dispute = Dispute("INV-2026-11-0042", Money(Decimal("1234567.10"), "EUR"), "double charge")
    created = await store.create_case(builder(now, dispute=dispute))
    got = await store.get_case(created.number)
    assert got is not None
    assert got == created
    assert got.dispute is not None
    assert got.dispute.amount.amount == Decimal("1234567.10")
    assert str(got.dispute.amount.amount) == "1234567.10"  # trailing zero kept: not a float
    assert got.created_at == now and got.created_at.tzinfo is not None
    # Resolved with a partial credit, the credit is exact too.
    got.start(AGENT, now)
    got.resolve(
        "Partial credit",
        AGENT,
        now,
        outcome=Outcome.PARTIAL_CREDIT,
        credited=Money(Decimal("0.30"), "EUR"),
    )
    await store.save_case(got)
    again = await store.get_case(created.number)
    assert again is not None and again.dispute is not None
    assert again.dispute.credited == Money(Decimal("0.30"), "EUR")
    assert str(again.dispute.credited.amount) == "0.30"
    assert await store.get_case(999) is None


async def test_save_case_detects_a_concurrent_change(store: Store, now: datetime) -> None:
    created = await store.create_case(builder(now))
    first = await store.get_case(created.number)
    second = await store.get_case(created.number)
    assert first is not None and second is not None
    first.start(AGENT, now)
    await store.save_case(first)
    assert first.version == 2
    second.add_note("Called the customer", AGENT, now)
    with pytest.raises(Conflict, match=created.id):
        await store.save_case(second)
    assert second.version == 1  # unchanged by the failed save
    current = await store.get_case(created.number)
    assert current is not None
    assert current.state == State.IN_PROGRESS and current.version == 2
    assert current.notes == []
    # Re-read and redo: nothing is lost.
    current.add_note("Called the customer", AGENT, now)
    await store.save_case(current)
    final = await store.get_case(created.number)
    assert final is not None
    assert final.state == State.IN_PROGRESS and [n.text for n in final.notes] == [
        "Called the customer"
    ]
    assert final.version == 3
    assert [a.action for a in final.audit] == ["created", "started", "noted"]


async def test_concurrent_saves_from_one_read_let_exactly_one_win(
    store: Store, now: datetime
) -> None:
    created = await store.create_case(builder(now))
    copies = [await store.get_case(created.number) for _ in range(10)]
    for i, c in enumerate(copies):
        assert c is not None
        c.add_note(f"note {i}", AGENT, now)
    results = await asyncio.gather(
        *(store.save_case(c) for c in copies if c is not None), return_exceptions=True
    )
    assert sum(1 for r in results if isinstance(r, Case)) == 1
    assert sum(1 for r in results if isinstance(r, Conflict)) == 9
    final = await store.get_case(created.number)
    assert final is not None and len(final.notes) == 1 and final.version == 2


async def test_live_and_archived_cases(store: Store, now: datetime) -> None:
    open_case = await store.create_case(builder(now))
    to_close = await store.create_case(builder(now))
    to_cancel = await store.create_case(builder(now))
    await close_case(store, to_close, now)
    await cancel_case(store, to_cancel, now)
    live = await store.live_cases()
    assert [c.number for c in live] == [open_case.number]
    archived = {s.number: s.state for s in store.archived_summaries()}
    assert archived == {to_close.number: "closed", to_cancel.number: "cancelled"}
    closed = await store.get_case(to_close.number)
    assert closed is not None and closed.state == State.CLOSED
    cancelled = await store.get_case(to_cancel.number)
    assert cancelled is not None and cancelled.cancel_reason == "duplicate"


async def test_get_many_reads_live_archived_and_missing_alike(store: Store, now: datetime) -> None:
    """``Engine.get_many`` (store copy reads the archive a batch at a time) is ``get`` per key."""
    live = await store.create_case(builder(now))
    closed = await close_case(store, await store.create_case(builder(now)), now)
    cancelled = await cancel_case(store, await store.create_case(builder(now)), now)
    engine = store.engine
    keys = [str(cancelled.number), "999", str(live.number), str(closed.number)]
    got = await engine.get_many("cases", keys)
    assert list(got) == [str(cancelled.number), str(live.number), str(closed.number)]
    for key, doc in got.items():
        assert doc == await engine.get("cases", key)
    assert Case.from_doc(got[str(closed.number)]) == closed
    got[str(closed.number)]["state"] = "open"  # a copy: the store is unchanged
    again = await store.get_case(closed.number)
    assert again is not None and again.state == State.CLOSED
    await store.save_customer(Customer("contoso", "Contoso", "t-1", "u-ana", now))
    assert list(await engine.get_many("customers", ["nobody", customer_key("contoso")])) == [
        customer_key("contoso")
    ]


async def test_list_cases_orders_filters_and_pages(store: Store, now: datetime) -> None:
    cases = []
    for i in range(6):
        c = await store.create_case(builder(now + timedelta(minutes=i), customer=f"c{i % 2}"))
        cases.append(c)
    # Activity on case 1 makes it the newest; cases 3 and 4 are finished.
    c1 = cases[0]
    c1.add_note("bump", AGENT, now + timedelta(hours=2))
    await store.save_case(c1)
    await close_case(store, cases[2], now + timedelta(minutes=30))
    await cancel_case(store, cases[3], now + timedelta(minutes=40))

    live, total = await store.list_cases()
    assert [c.number for c in live] == [1, 6, 5, 2]
    assert total == 4
    everything, total = await store.list_cases(include_archived=True)
    assert [c.number for c in everything] == [1, 4, 3, 6, 5, 2]
    assert total == 6
    page, total = await store.list_cases(include_archived=True, limit=3)
    assert [c.number for c in page] == [1, 4, 3]
    assert total == 6
    mine, total = await store.list_cases(
        predicate=lambda c: c.customer_id == "c0",
        summary_predicate=lambda s: s.customer_id == "c0",
        include_archived=True,
    )
    assert [c.number for c in mine] == [1, 3, 5]
    assert total == 3
    assert all(isinstance(c, Case) for c in everything)


async def test_list_cases_by_owner(store: Store, now: datetime) -> None:
    cases = [await store.create_case(builder(now + timedelta(minutes=i))) for i in range(6)]
    for c, owner in zip(cases, ["u-ana", "u-bo", "u-ana", "u-bo", "u-ana"], strict=False):
        c.set_owner(owner, AGENT, now + timedelta(minutes=10 + c.number))
        await store.save_case(c)
    mine, total = await store.list_cases(owner="u-ana")
    assert [c.number for c in mine] == [5, 3, 1] and total == 3
    unassigned, total = await store.list_cases(owner=None)
    assert [c.number for c in unassigned] == [6] and total == 1
    # Moving a case to someone else, and finishing one, show up at once.
    cases[0].set_owner("u-bo", AGENT, now + timedelta(hours=1))
    await store.save_case(cases[0])
    await close_case(store, cases[2], now + timedelta(hours=2))
    mine, total = await store.list_cases(owner="u-ana")
    assert [c.number for c in mine] == [5] and total == 1
    theirs, _ = await store.list_cases(owner="u-bo", predicate=lambda c: c.number != 4)
    assert [c.number for c in theirs] == [1, 2]
    everything, total = await store.list_cases(owner="u-ana", include_archived=True)
    assert [c.number for c in everything] == [3, 5] and total == 2
    assert (await store.list_cases(owner="u-nobody"))[1] == 0


async def test_listed_cases_are_the_callers_own(store: Store, now: datetime) -> None:
    created = await store.create_case(builder(now))
    listed, _ = await store.list_cases(predicate=lambda c: True)
    listed[0].add_note("mine only", AGENT, now)  # changing a listed case changes nothing stored
    again, _ = await store.list_cases(predicate=lambda c: True)
    assert again[0].notes == [] and again[0] is not listed[0]
    assert (await store.live_cases())[0].notes == []
    got = await store.get_case(created.number)
    assert got is not None and got.notes == []


async def test_indexes_agree_with_a_full_scan(store: Store, now: datetime) -> None:
    await random_writes_against_full_scans(store, now)


async def test_indexes_survive_compactions_and_reopen(db_path: Path, now: datetime) -> None:
    store = await open_db(db_path, compact_every=3)
    try:
        await random_writes_against_full_scans(store, now)
    finally:
        await store.close()
    store = await open_db(db_path)
    try:
        await random_writes_against_full_scans(store, now)
    finally:
        await store.close()


async def random_writes_against_full_scans(store: Store, now: datetime) -> None:
    """Random writes; the owner and due indexes must give what a full scan gives."""
    import random

    rng = random.Random(5)
    owners = ["u-a", "u-b", "u-c", None]
    numbers: list[int] = []
    for step in range(150):
        r = rng.random()
        if r < 0.25 or not numbers:
            numbers.append((await store.create_case(builder(now))).number)
        elif r < 0.55:
            case = await store.get_case(rng.choice(numbers))
            assert case is not None
            owner = rng.choice(["u-a", "u-b", "u-c"])
            if case.is_live and case.owner != owner:
                case.set_owner(owner, AGENT, now + timedelta(seconds=step))
                await store.save_case(case)
            elif case.state == State.OPEN:
                await close_case(store, case, now + timedelta(seconds=step))
        else:
            key = f"job{rng.randrange(30)}"
            if rng.random() < 0.25:
                await store.save_job(key, None)
            else:
                due = (now + timedelta(minutes=rng.randrange(-60, 60))).isoformat()
                await store.save_job(key, {"due": due, "n": step})
        if step % 10 == 0:
            live = await store.live_cases()
            for who in owners:
                got, _ = await store.list_cases(owner=who)
                want = sorted(
                    (c for c in live if c.owner == who),
                    key=lambda c: ((c.updated_at or c.created_at).isoformat(), c.number),
                    reverse=True,
                )
                assert [c.number for c in got] == [c.number for c in want]
            at = now + timedelta(minutes=rng.randrange(-70, 70))
            jobs = await store.jobs()
            want_jobs = sorted((d["due"], k) for k, d in jobs if d["due"] <= at.isoformat())
            got_jobs = await store.due_jobs(at)
            assert [(d["due"], k) for k, d in got_jobs] == want_jobs


async def test_case_counts(store: Store, now: datetime) -> None:
    cases = [await store.create_case(builder(now)) for _ in range(5)]
    cases[0].start(AGENT, now)
    await store.save_case(cases[0])
    await close_case(store, cases[1], now)
    await cancel_case(store, cases[2], now)
    counts = store.case_counts()
    assert counts["open"] == 2
    assert counts["in_progress"] == 1
    assert counts["closed"] == 1
    assert counts["cancelled"] == 1
    assert sum(counts.values()) == 5
    assert set(counts) == {s.value for s in State}


async def test_customers(store: Store, now: datetime) -> None:
    contoso = Customer(customer_key("Contoso  Ltd"), "Contoso Ltd", "tenant-c", "u-ana", now)
    fabrikam = Customer(customer_key("Fabrikam"), "Fabrikam", "tenant-f", None, now)
    await store.save_customer(contoso)
    await store.save_customer(fabrikam)
    assert await store.find_customer("  contoso LTD ") == contoso
    assert await store.find_customer("CONTOSO   ltd") == contoso
    assert await store.find_customer("Northwind") is None
    assert await store.get_customer(contoso.id) == contoso
    assert await store.customer_by_tenant("tenant-f") == fabrikam
    assert await store.customer_by_tenant("tenant-x") is None
    assert [c.name for c in await store.customers()] == ["Contoso Ltd", "Fabrikam"]
    contoso.owner = "u-bo"
    await store.save_customer(contoso)
    found = await store.find_customer("contoso ltd")
    assert found is not None and found.owner == "u-bo"


async def test_users_and_identities(store: Store) -> None:
    ana = User("u-ana", "Ana", Role.AGENT, identities={"slack": "U01", "teams": "29:abc"})
    lee = User("u-lee", "Lee Park", Role.LEAD, time_zone="Europe/Berlin", locale="de")
    await store.save_user(ana)
    await store.save_user(lee)
    assert await store.user_by_identity("slack", "U01") == ana
    assert await store.user_by_identity("teams", "29:abc") == ana
    assert await store.user_by_identity("slack", "U99") is None
    assert await store.get_user("u-lee") == lee
    assert await store.find_user("lee park") == lee
    assert await store.find_user("@ANA") == ana
    assert await store.find_user("u-lee") == lee
    assert await store.find_user("nobody") is None
    assert {u.id for u in await store.users()} == {"u-ana", "u-lee"}


async def test_conversation_state(store: Store) -> None:
    key = "slack:U01:D01"
    assert await store.get_conversation(key) is None
    state = {"flow": "new_case", "step": "amount", "data": {"amount": "12.50"}}
    await store.save_conversation(key, state)
    assert await store.get_conversation(key) == state
    got = await store.get_conversation(key)
    assert got is not None
    got["step"] = "mutated"  # a copy: the store is not changed behind its back
    assert await store.get_conversation(key) == state
    await store.save_conversation(key, None)
    assert await store.get_conversation(key) is None


async def test_references(store: Store) -> None:
    assert await store.references("u-ana") == {}
    slack = {"channel": "D01", "team": "T1"}
    teams = {"conversation": {"id": "a:1"}, "serviceUrl": "https://smba.example/"}
    await store.save_reference("u-ana", "slack", slack)
    await store.save_reference("u-ana", "teams", teams)
    await store.save_reference("u-bo", "slack", {"channel": "D02"})
    assert await store.references("u-ana") == {"slack": slack, "teams": teams}


async def test_posted_case_cards(store: Store) -> None:
    """A card the bot posted, by channel and message: a reply to it adds to its case."""
    assert await store.card_message_case("slack", "CCONTOSO:1700000000.000001") is None
    await store.save_card_message("slack", "CCONTOSO:1700000000.000001", 7)
    await store.save_card_message("teams", "19:shared@thread.tacv2|1777", 8)
    await store.save_card_message("slack", "CCONTOSO:1700000000.000001", 7)  # shown again
    assert await store.card_message_case("slack", "CCONTOSO:1700000000.000001") == 7
    assert await store.card_message_case("teams", "19:shared@thread.tacv2|1777") == 8
    assert await store.card_message_case("teams", "CCONTOSO:1700000000.000001") is None
    await store.save_reference("u-ana", "slack", {"channel": "D01"})
    assert await store.references("u-ana") == {"slack": {"channel": "D01"}}


async def test_jobs(store: Store, now: datetime) -> None:
    def at(minutes: int) -> str:
        return (now + timedelta(minutes=minutes)).isoformat()

    await store.save_job("remind:3", {"kind": "remind", "case": 3, "due": at(10)})
    await store.save_job("remind:1", {"kind": "remind", "case": 1, "due": at(-5)})
    await store.save_job("remind:2", {"kind": "remind", "case": 2, "due": at(0)})
    await store.save_job("digest", {"kind": "digest", "due": at(60)})
    assert await store.get_job("remind:3") == {"kind": "remind", "case": 3, "due": at(10)}
    assert await store.get_job("missing") is None
    due = await store.due_jobs(now)
    assert [k for k, _ in due] == ["remind:1", "remind:2"]
    due = await store.due_jobs(now + timedelta(minutes=30))
    assert [k for k, _ in due] == ["remind:1", "remind:2", "remind:3"]
    await store.save_job("remind:1", None)
    assert await store.get_job("remind:1") is None
    assert [k for k, _ in await store.due_jobs(now)] == ["remind:2"]
    assert {k for k, _ in await store.jobs()} == {"remind:2", "remind:3", "digest"}


async def test_remember_event(store: Store, now: datetime) -> None:
    assert await store.remember_event("slack:Ev1", now, TTL) is True
    assert await store.remember_event("slack:Ev1", now + timedelta(minutes=5), TTL) is False
    assert await store.remember_event("slack:Ev2", now, TTL) is True
    later = now + TTL + timedelta(seconds=1)
    assert await store.remember_event("slack:Ev1", later, TTL) is True
    assert await store.remember_event("slack:Ev1", later, TTL) is False


async def test_remember_event_concurrently_once(store: Store, now: datetime) -> None:
    results = await asyncio.gather(
        *(store.remember_event("slack:EvX", now, TTL) for _ in range(20))
    )
    assert results.count(True) == 1
    assert results.count(False) == 19


async def test_purge_events(store: Store, now: datetime) -> None:
    await store.remember_event("old1", now - timedelta(hours=3), TTL)
    await store.remember_event("old2", now - timedelta(hours=2), TTL)
    await store.remember_event("fresh", now, TTL)
    assert await store.purge_events(now) == 2
    assert await store.purge_events(now) == 0
    assert await store.remember_event("fresh", now, TTL) is False
    assert await store.remember_event("old1", now, TTL) is True


async def test_next_number(store: Store) -> None:
    assert [await store.next_number("sr") for _ in range(3)] == [1, 2, 3]
    assert await store.next_number("other") == 1
    many = await asyncio.gather(*(store.next_number("sr") for _ in range(30)))
    assert sorted(many) == list(range(4, 34))


async def test_guarded_raw_commit(store: Store) -> None:
    await store.commit([Op("inbox", "m1", {"text": "hi", "version": 1}, expect=None)])
    with pytest.raises(VersionConflict):
        await store.commit([Op("inbox", "m1", {"text": "again", "version": 1}, expect=None)])
    with pytest.raises(VersionConflict):
        # One failing guard fails the whole commit: the first op is not applied either.
        await store.commit(
            [
                Op("inbox", "m2", {"text": "new"}, expect=None),
                Op("inbox", "m1", {"text": "x", "version": 2}, expect=5),
            ]
        )
    assert await store.engine.get("inbox", "m2") is None
    await store.commit([Op("inbox", "m1", {"text": "edited", "version": 2}, expect=1)])
    assert await store.engine.get("inbox", "m1") == {"text": "edited", "version": 2}


async def test_health_reports_ok(store: Store) -> None:
    health = store.health()
    assert health["ok"] is True
    assert health["backend"] in ("memory", "tinydb", "postgresql")


# ---- the typed reads and ops flows use (no table names outside bot/storage) ----


async def test_jobs_read_and_written_through_typed_methods(store: Store, now: datetime) -> None:
    assert store.job("loop:1") is None
    await store.commit([store.job_op("loop:1", {"type": "loop", "due": now.isoformat()})])
    job = store.job("loop:1")
    assert job is not None and job["type"] == "loop"
    with pytest.raises(VersionConflict):
        await store.commit([Store.job_op("loop:1", {"type": "x", "version": 1}, expect=None)])
    await store.commit([Store.job_op("loop:1", {"type": "loop", "version": 1})])
    await store.commit([Store.job_op("loop:1", {"type": "loop", "version": 2}, expect=1)])
    assert await store.get_job("loop:1") == {"type": "loop", "version": 2}
    await store.commit([Store.job_op("loop:1", None)])
    assert store.job("loop:1") is None


async def test_event_records(store: Store, now: datetime) -> None:
    assert store.event("applied:m1") is None and not store.was_seen("applied:m1")
    doc = {"case": 7, "expires": (now + TTL).isoformat()}
    await store.commit([store.event_record_op("applied:m1", doc, expect=None)])
    assert store.event("applied:m1") == doc and store.was_seen("applied:m1")
    with pytest.raises(VersionConflict):
        await store.commit([store.event_record_op("applied:m1", doc, expect=None)])
    # A record written as remember_event writes it counts as seen too.
    assert await store.remember_event("slack:event:E1", now, TTL) is True
    assert store.was_seen("slack:event:E1")
    await store.commit([store.forget_event_op("slack:event:E1")])
    assert not store.was_seen("slack:event:E1")
    assert await store.remember_event("slack:event:E1", now, TTL) is True


async def test_the_request_queue(store: Store) -> None:
    assert dict(store.queued_requests()) == {} and store.queued_request_count() == 0
    item = {"channel": "slack", "payload": {"n": 1}, "attempts": 0}
    await store.commit(
        [
            store.queued_request_op("0002-b", {**item, "payload": {"n": 2}}),
            store.queued_request_op("0001-a", item, handed_over=True),
        ]
    )
    assert sorted(store.queued_requests()) == ["0001-a", "0002-b"]
    assert store.queued_request_count() == 2
    assert store.is_queued("0001-a") and not store.is_queued("0003-c")
    await store.commit([store.queued_request_op("0001-a", {**item, "dead": True})])
    assert store.queued_requests()["0001-a"]["dead"] is True
    await store.commit([store.queued_request_op("0001-a", None)])
    assert list(store.queued_requests()) == ["0002-b"]


async def test_customers_users_and_counts_without_waiting(store: Store, now: datetime) -> None:
    assert store.customer_now("contoso") is None and store.customer_count() == 0
    assert store.cases_held() == 0 and store.case_numbers_given() is None
    contoso = Customer("contoso", "Contoso", "tenant-c", "u-ana", now)
    await store.commit([store.customer_op(contoso)])
    await store.save_customer(Customer("fabrikam", "Fabrikam", None, None, now))
    found = store.customer_now("contoso")
    assert found is not None and found.name == "Contoso" and found.tenant_id == "tenant-c"
    assert store.customer_count() == 2
    assert store.tenant_holders() == {"tenant-c": "contoso"}
    assert store.user_role("u-ana") is None
    await store.save_user(User("u-ana", "Ana", role=Role.LEAD))
    assert store.user_role("u-ana") == "lead"
    case = await store.create_case(builder(now))
    await cancel_case(store, await store.create_case(builder(now)), now)
    assert store.cases_held() >= 2 and store.case_numbers_given() == 2
    assert store.counter_value("case") == 2 and store.counter_value("nothing") is None
    case.add_note("from a combined commit", AGENT, now)
    await store.commit([Store.case_op(case)])
    stored = await store.get_case(case.number)
    assert stored is not None and stored.version == 2
    with pytest.raises(VersionConflict):
        await store.commit([Store.case_op(case)])  # still version 1 in hand: stale


async def test_the_collections_flows_tables(store: Store, now: datetime) -> None:
    assert store.audit_entries() == [] and dict(store.receivable_docs()) == {}
    await store.commit(
        [
            Store.audit_entry_op("2026-01-02|b", {"subject": "b"}),
            Store.audit_entry_op("2026-01-01|a", {"subject": "a"}),
        ]
    )
    assert [e["subject"] for e in store.audit_entries()] == ["a", "b"]
    with pytest.raises(VersionConflict):  # an entry is never overwritten
        await store.commit([Store.audit_entry_op("2026-01-01|a", {"subject": "x"})])
    invoice = {"invoice": "INV-1", "version": 1}
    await store.commit([store.receivable_op("inv-1", invoice, expect=None)])
    assert store.receivable_doc("inv-1") == invoice and store.receivable_doc("inv-2") is None
    assert dict(store.receivable_docs()) == {"inv-1": invoice}
    with pytest.raises(VersionConflict):
        await store.commit([store.receivable_op("inv-1", {**invoice, "version": 2}, expect=7)])
    state = {"customer": "contoso", "stages": {}, "version": 1}
    operation = {"customer": "contoso", "state": "proposed", "version": 1}
    await store.commit(
        [
            store.collections_state_op("contoso", state, expect=None),
            store.collections_operation_op("op1", operation, expect=None),
        ]
    )
    assert store.collections_state("contoso") == state
    assert store.collections_state("fabrikam") is None
    assert store.collections_operation("op1") == operation
    assert store.collections_operation("contoso") is None  # a state is not an operation
    assert store.collections_states() == {"contoso": state}  # operations left out
    with pytest.raises(VersionConflict):
        await store.commit([store.collections_operation_op("op1", operation, expect=5)])


async def test_web_chat_turns_are_kept_per_person_in_order_and_bounded(store: Store) -> None:
    assert store.web_chat("u-ana") == []
    for n in range(7):
        await store.add_web_chat_turn("u-ana", {"echo": f"ana {n}"}, keep=5)
    await store.add_web_chat_turn("u-bo", {"echo": "bo 0"}, keep=5)
    await asyncio.gather(  # concurrent turns of one person: none lost
        *(store.add_web_chat_turn("u-bo", {"echo": f"bo {n}"}, keep=5) for n in (1, 2))
    )
    assert [t["echo"] for t in store.web_chat("u-ana")] == [f"ana {n}" for n in range(2, 7)]
    assert sorted(t["echo"] for t in store.web_chat("u-bo")) == ["bo 0", "bo 1", "bo 2"]
    # The old turns are gone, not just hidden: the table holds 5 + 3 turns and 2 indexes.
    assert len(store.engine.view(WEB_TABLES[0])) == 10
    # A person whose id looks like another's key is still someone else.
    assert store.web_chat("u-ana|6") == [] and store.web_chat("u-an") == []


# ---- declared tables -----------------------------------------------------------


async def test_a_table_declared_after_the_engine_was_made_is_usable(store: Store) -> None:
    name = declare_tables("contract_late_table")[0]
    await store.commit([Op(name, "k", {"a": 1})])
    assert store.engine.peek(name, "k") == {"a": 1}
    assert store.engine.view(name) == {"k": {"a": 1}}
    assert name in known_tables()


async def test_an_undeclared_table_is_refused(store: Store) -> None:
    with pytest.raises(StorageError):
        await store.commit([Op("never_declared_table", "k", {"a": 1})])
    with pytest.raises(StorageError):
        store.engine.view("never_declared_table")
    with pytest.raises(ValueError):
        declare_tables("not a name")


PDF_BYTES = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


async def test_files_are_kept_by_their_content(store: Store) -> None:
    file_id = await store.put_file(PDF_BYTES)
    assert file_id == hashlib.sha256(PDF_BYTES).hexdigest()
    assert await store.has_file(file_id)
    assert await store.file_bytes(file_id) == PDF_BYTES
    assert await store.put_file(PDF_BYTES) == file_id  # the same bytes again: kept once
    assert await store.file_bytes(file_id) == PDF_BYTES
    other = hashlib.sha256(b"never stored").hexdigest()
    assert not await store.has_file(other) and await store.file_bytes(other) is None
    for bad in ("../../etc/passwd", file_id.upper(), file_id[:-1], "", "x" * 64):
        assert await store.file_bytes(bad) is None and not await store.has_file(bad)
    with pytest.raises(ValueError):
        await store.engine.put_blob(other, PDF_BYTES)  # a name that is not its content's


async def test_attachments_travel_with_their_case(store: Store, now: datetime) -> None:
    case = await store.create_case(builder(now))
    file_id = await store.put_file(PDF_BYTES)
    stored = Attachment(
        file_id,
        "invoice.pdf",
        len(PDF_BYTES),
        "application/pdf",
        "u-ana",
        now,
        "web",
        True,
        stored=True,
    )
    linked = Attachment(
        "slack:F0123",
        "remit.png",
        2048,
        "image/png",
        "u-cus",
        now,
        "slack",
        False,
        link="https://acme.slack.com/files/U1/F0123/remit.png",
    )
    assert case.attach(stored, AGENT, now) and case.attach(linked, AGENT, now)
    assert not case.attach(stored, AGENT, now)  # a duplicate delivery: attached once
    await store.save_case(case)
    again = await store.get_case(case.number)
    assert again is not None and again.attachments == [stored, linked]
    assert [a.action for a in again.audit[-2:]] == ["attached_internal", "attached"]
    assert await store.file_bytes(again.attachments[0].id) == PDF_BYTES
    again.cancel("duplicate of BILL-1", AGENT, now)  # archived: its files stay listed
    await store.save_case(again)
    archived = await store.get_case(case.number)
    assert archived is not None and archived.attachments == [stored, linked]


# ---- the durable engine only ------------------------------------------------


async def test_files_lie_beside_the_store_and_survive_a_reopen(db_path: Path) -> None:
    store = await open_db(db_path)
    file_id = await store.put_file(PDF_BYTES)
    await store.close()
    path = db_path.with_name("billing.files") / file_id
    assert path.read_bytes() == PDF_BYTES
    # A crash while a file was written leaves a temp file: removed at the next open.
    temp = path.with_name(".tmp-" + file_id + "-1-ab")
    temp.write_bytes(PDF_BYTES[:10])
    again = await open_db(db_path)
    try:
        assert not temp.exists()
        assert await again.file_bytes(file_id) == PDF_BYTES
        path.write_bytes(PDF_BYTES[:-1] + b"X")  # damaged on disk: refused, not served
        with pytest.raises(StorageError):
            await again.file_bytes(file_id)
    finally:
        await again.close()


async def open_db(path: Path, **kwargs: int) -> Store:
    s = Store(TinyDBEngine(path, **kwargs))
    await s.open()
    return s


async def fill(store: Store, now: datetime) -> dict[str, int]:
    """A bit of everything; returns the numbers of the interesting cases."""
    await store.save_customer(Customer("contoso", "Contoso", "tenant-c", "u-ana", now))
    await store.save_user(User("u-ana", "Ana", identities={"slack": "U01"}))
    await store.save_conversation("slack:U01", {"flow": "x"})
    await store.save_reference("u-ana", "teams", {"conversation": {"id": "a:1"}})
    await store.save_job("remind:1", {"due": now.isoformat()})
    await store.remember_event("ev1", now, TTL)
    dispute = Dispute("INV-1", Money(Decimal("99.90"), "USD"), "wrong seats")
    live = await store.create_case(builder(now, dispute=dispute))
    closed = await close_case(store, await store.create_case(builder(now)), now)
    cancelled = await cancel_case(store, await store.create_case(builder(now)), now)
    return {"live": live.number, "closed": closed.number, "cancelled": cancelled.number}


async def check_filled(store: Store, numbers: dict[str, int], now: datetime) -> None:
    assert await store.find_customer("CONTOSO") is not None
    ana = await store.user_by_identity("slack", "U01")
    assert ana is not None and ana.display_name == "Ana"
    assert await store.get_conversation("slack:U01") == {"flow": "x"}
    assert await store.references("u-ana") == {"teams": {"conversation": {"id": "a:1"}}}
    assert [k for k, _ in await store.due_jobs(now)] == ["remind:1"]
    assert await store.remember_event("ev1", now, TTL) is False
    live = await store.get_case(numbers["live"])
    assert live is not None and live.dispute is not None
    assert live.dispute.amount == Money(Decimal("99.90"), "USD")
    closed = await store.get_case(numbers["closed"])
    assert closed is not None and closed.state == State.CLOSED and closed.version == 2
    assert len(closed.audit) == 5
    cancelled = await store.get_case(numbers["cancelled"])
    assert cancelled is not None and cancelled.state == State.CANCELLED
    assert [c.number for c in await store.live_cases()] == [numbers["live"]]
    assert await store.next_number("case") == max(numbers.values()) + 1


async def test_reopen_sees_everything(db_path: Path, now: datetime) -> None:
    store = await open_db(db_path)
    numbers = await fill(store, now)
    await store.close()
    again = await open_db(db_path)
    try:
        await check_filled(again, numbers, now)
    finally:
        await again.close()


async def test_crash_image_without_compaction_recovers_from_journal(
    db_path: Path, tmp_path: Path, now: datetime
) -> None:
    store = await open_db(db_path)
    numbers = await fill(store, now)
    image = durable_copy(db_path, tmp_path / "crash")  # what a kill -9 now would leave
    await store.close()
    assert image.with_suffix(".journal").stat().st_size > 0
    recovered = await open_db(image)
    try:
        await check_filled(recovered, numbers, now)
    finally:
        await recovered.close()


async def test_close_compacts_and_archives_finished_cases(db_path: Path, now: datetime) -> None:
    store = await open_db(db_path)
    numbers = await fill(store, now)
    await store.close()
    engine = TinyDBEngine(db_path)
    assert engine.journal_path.stat().st_size == 0
    archive = engine.archive_path.read_text().splitlines()
    assert {json.loads(line)["number"] for line in archive} == {
        numbers["closed"],
        numbers["cancelled"],
    }
    again = Store(engine)
    await again.open()
    try:
        assert set(engine.view("cases")) == {str(numbers["live"])}  # the archive is not in memory
        assert {s.number for s in again.archived_summaries()} == {
            numbers["closed"],
            numbers["cancelled"],
        }
        closed = await again.get_case(numbers["closed"])
        assert closed is not None and closed.state == State.CLOSED
        page, total = await again.list_cases(include_archived=True)
        assert total == 3 and {c.number for c in page} == set(numbers.values())
        counts = again.case_counts()
        assert (counts["closed"], counts["cancelled"], counts["open"]) == (1, 1, 1)
        assert again.health()["archived_cases"] == 2
    finally:
        await again.close()


async def test_reopening_an_archived_case_makes_it_live(db_path: Path, now: datetime) -> None:
    store = await open_db(db_path)
    numbers = await fill(store, now)
    await store.close()

    store = await open_db(db_path)
    closed = await store.get_case(numbers["closed"])
    assert closed is not None
    stale = await store.get_case(numbers["closed"])
    closed.reopen("customer disagrees", AGENT, now)
    await store.save_case(closed)
    assert stale is not None
    stale.reopen("twice", AGENT, now)
    with pytest.raises(Conflict):
        await store.save_case(stale)  # the archived version is the guard
    assert {c.number for c in await store.live_cases()} == {numbers["live"], numbers["closed"]}
    assert numbers["closed"] not in {s.number for s in store.archived_summaries()}
    assert store.case_counts()["reopened"] == 1
    assert store.case_counts()["closed"] == 0
    await store.close()

    store = await open_db(db_path)
    try:
        case = await store.get_case(numbers["closed"])
        assert case is not None and case.state == State.REOPENED and case.version == 3
        assert numbers["closed"] in {c.number for c in await store.live_cases()}
        assert numbers["closed"] not in {s.number for s in store.archived_summaries()}
        # Closed again, it goes back to the archive with its whole history.
        await close_case(store, case, now)
    finally:
        await store.close()
    store = await open_db(db_path)
    try:
        case = await store.get_case(numbers["closed"])
        assert case is not None and case.state == State.CLOSED and case.version == 4
        assert [s.state for s in store.archived_summaries() if s.number == case.number] == [
            "closed"
        ]
        assert numbers["closed"] not in {c.number for c in await store.live_cases()}
    finally:
        await store.close()


async def test_a_second_owner_is_refused(db_path: Path) -> None:
    first = await open_db(db_path)
    try:
        second = TinyDBEngine(db_path)
        with pytest.raises(StoreLocked) as info:
            await second.open()
        message = str(info.value)
        assert "in use by another billing-bot" in message
        assert str(db_path) in message
        assert "pid" in message
        assert isinstance(info.value, StorageError)
    finally:
        await first.close()
    # Once the owner is gone, the store opens.
    third = await open_db(db_path)
    await third.close()


async def test_a_corrupt_snapshot_is_refused_and_left_alone(db_path: Path) -> None:
    store = await open_db(db_path)
    await store.save_customer(Customer("contoso", "Contoso"))
    await store.close()
    damaged = db_path.read_bytes()[:-7] + b"\x00garbage"
    db_path.write_bytes(damaged)
    with pytest.raises(StorageError, match="damaged") as info:
        await open_db(db_path)
    assert str(db_path) in str(info.value)
    assert db_path.read_bytes() == damaged
    # The lock was released: after a repair the store opens.
    db_path.write_bytes(b'{"customers": {}}')
    repaired = await open_db(db_path)
    await repaired.close()


async def test_a_snapshot_that_is_not_an_object_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"[1, 2, 3]")
    with pytest.raises(StorageError):
        await open_db(db_path)
    assert db_path.read_bytes() == b"[1, 2, 3]"


async def test_a_torn_last_journal_line_is_dropped(
    db_path: Path, tmp_path: Path, now: datetime
) -> None:
    store = await open_db(db_path)
    created = await store.create_case(builder(now))
    image = durable_copy(db_path, tmp_path / "crash")
    await store.close()
    journal = image.with_suffix(".journal")
    good = journal.read_bytes()
    assert good.endswith(b"\n")
    journal.write_bytes(good + b'{"seq": 99, "ops": [["customers", "x", {"na')
    recovered = await open_db(image)
    try:
        assert await recovered.get_case(created.number) is not None
        assert await recovered.get_customer("x") is None
        assert journal.read_bytes() == good  # the torn tail is cut away
        # New writes append after the good part.
        await recovered.save_customer(Customer("y", "Y"))
    finally:
        await recovered.close()
    final = await open_db(image)
    try:
        assert await final.get_customer("y") is not None
        assert await final.get_case(created.number) is not None
    finally:
        await final.close()


async def test_a_complete_but_unterminated_last_line_is_dropped(
    db_path: Path, tmp_path: Path, now: datetime
) -> None:
    store = await open_db(db_path)
    await store.create_case(builder(now))
    image = durable_copy(db_path, tmp_path / "crash")
    await store.close()
    journal = image.with_suffix(".journal")
    good = journal.read_bytes()
    line = json.dumps({"seq": 50, "ops": [["customers", "x", {"id": "x", "name": "X"}]]})
    journal.write_bytes(good + line.encode())  # the newline never made it: not acknowledged
    recovered = await open_db(image)
    try:
        assert await recovered.get_customer("x") is None
    finally:
        await recovered.close()


async def test_a_damaged_middle_journal_line_is_refused(
    db_path: Path, tmp_path: Path, now: datetime
) -> None:
    store = await open_db(db_path)
    for _ in range(3):
        await store.create_case(builder(now))
    image = durable_copy(db_path, tmp_path / "crash")
    await store.close()
    journal = image.with_suffix(".journal")
    lines = journal.read_bytes().split(b"\n")
    assert len(lines) >= 4
    lines[1] = lines[1][: len(lines[1]) // 2]  # half a line, with good lines after it
    damaged = b"\n".join(lines)
    journal.write_bytes(damaged)
    with pytest.raises(StorageError, match="line 2"):
        await open_db(image)
    assert journal.read_bytes() == damaged


async def test_the_snapshot_is_a_plain_tinydb_file(db_path: Path, now: datetime) -> None:
    store = await open_db(db_path)
    numbers = await fill(store, now)
    await store.close()
    db = open_tinydb(db_path)
    try:
        cases = db.table("cases").all()
        assert [d["_key"] for d in cases] == [str(numbers["live"])]
        assert cases[0]["number"] == numbers["live"]
        assert cases[0]["dispute"]["amount"] == {"amount": "99.90", "currency": "USD"}
        customers = db.table("customers").all()
        assert customers[0]["_key"] == "contoso" and customers[0]["name"] == "Contoso"
        assert db.table("identities").all()[0] == {"user_id": "u-ana", "_key": "slack:U01"}
        assert db.table("meta").all()[0]["schema_version"] == 1
    finally:
        db.close()


async def test_the_snapshot_keeps_odd_keys_and_empty_documents(db_path: Path) -> None:
    odd = {'quote"back\\slash': {}, "ünï ✓ 🧾": {"x": "\u2028 \n"}, "_key": {"_key": "inner"}}
    store = await open_db(db_path)
    await store.commit([Op("inbox", k, d) for k, d in odd.items()])
    await store.close()
    db = open_tinydb(db_path)
    try:
        rows = {d["_key"]: {k: v for k, v in d.items() if k != "_key"} for d in db.table("inbox")}
        assert rows == {k: {f: v for f, v in d.items() if f != "_key"} for k, d in odd.items()}
    finally:
        db.close()
    again = await open_db(db_path)
    try:
        for k, d in odd.items():
            want = {f: v for f, v in d.items() if f != "_key"}  # `_key` is the store's own
            assert await again.engine.get("inbox", k) == want
    finally:
        await again.close()


async def test_a_failing_disk_rolls_back_and_recovers(
    db_path: Path, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_db(db_path)
    engine = store.engine
    assert isinstance(engine, TinyDBEngine)
    try:
        created = await store.create_case(builder(now))
        await store.save_customer(Customer("contoso", "Contoso"))

        def no_space(payload: bytes) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(engine, "_append_journal", no_space)
        case = await store.get_case(created.number)
        assert case is not None
        case.start(AGENT, now)
        with pytest.raises(StorageError, match="No space left"):
            await store.save_case(case)
        with pytest.raises(StorageError):
            await store.create_case(builder(now))
        # Two writers in the same batch both fail, and neither stays in memory.
        results = await asyncio.gather(
            store.save_customer(Customer("fabrikam", "Fabrikam")),
            store.save_conversation("k", {"a": 1}),
            return_exceptions=True,
        )
        assert all(isinstance(r, StorageError) for r in results)
        current = await store.get_case(created.number)
        assert current is not None and current.state == State.OPEN and current.version == 1
        assert await store.get_customer("fabrikam") is None
        assert await store.get_conversation("k") is None
        assert await store.get_case(created.number + 1) is None
        assert [k for k, _ in await store.due_jobs(now)] == []
        more = await asyncio.gather(
            store.save_job("j", {"due": now.isoformat()}),
            store.save_case(case),
            return_exceptions=True,
        )
        assert all(isinstance(r, StorageError) for r in more)
        assert [k for k, _ in await store.due_jobs(now)] == []  # the index was rolled back too
        assert (await store.list_cases(owner=None))[1] == 1
        health = store.health()
        assert health["ok"] is False
        assert "No space left" in health["error"]

        monkeypatch.undo()
        case = await store.get_case(created.number)
        assert case is not None
        case.start(AGENT, now)
        await store.save_case(case)
        second = await store.create_case(builder(now))
        assert second.number == created.number + 1  # the failed creation used no number
        assert store.health()["ok"] is True
    finally:
        await store.close()
    again = await open_db(db_path)
    try:
        got = await again.get_case(created.number)
        assert got is not None and got.state == State.IN_PROGRESS and got.version == 2
        assert await again.get_customer("fabrikam") is None
        assert await again.get_case(created.number + 1) is not None
    finally:
        await again.close()


async def test_compaction_in_the_background_keeps_every_write(db_path: Path, now: datetime) -> None:
    store = await open_db(db_path, compact_every=7)
    engine = store.engine
    assert isinstance(engine, TinyDBEngine)
    expected: dict[int, tuple[State, int]] = {}
    try:
        for i in range(60):
            case = await store.create_case(builder(now))
            if i % 3 == 0:
                case = await close_case(store, case, now)
            elif i % 3 == 1:
                case.start(AGENT, now)
                case = await store.save_case(case)
            expected[case.number] = (case.state, case.version)
        assert engine.index  # compaction ran and moved closed cases to the archive
        assert engine.health()["journal_lines"] < 60
    finally:
        await store.close()
    again = await open_db(db_path)
    try:
        for number, (state, version) in expected.items():
            got = await again.get_case(number)
            assert got is not None and (got.state, got.version) == (state, version)
        assert await again.next_number("case") == 61
    finally:
        await again.close()


async def test_compaction_follows_the_journals_bytes(db_path: Path, now: datetime) -> None:
    """Due at ``compact_bytes`` or twice the snapshot, whichever is larger; not before."""
    engine = TinyDBEngine(db_path, compact_bytes=20_000)
    store = Store(engine)
    await store.open()
    try:
        limit = max(20_000, 2 * db_path.stat().st_size)
        limits: list[int] = []
        previous = 0  # the journal before the write ahead of this one
        for _ in range(120):
            before = engine.health()["journal_bytes"]
            await store.create_case(builder(now))
            await asyncio.sleep(0)  # let the flusher's compaction (if due) run
            after = engine.health()["journal_bytes"]
            if after < before:
                # Due once a write crossed the limit, not before; it runs in the background,
                # so the next write may still land first, but no later one.
                assert previous < limit <= before, (previous, before, limit)
                limits.append(limit)
                limit = max(20_000, 2 * db_path.stat().st_size)
            previous = before
        # Both halves of the rule were met: the floor, then twice a grown snapshot.
        assert len(limits) >= 2 and max(limits) > 20_000, limits
    finally:
        await store.close()
    again = await open_db(db_path)
    try:
        assert await again.next_number("case") == 121
    finally:
        await again.close()


async def test_a_handed_over_document_is_kept_and_replayed_alike(store: Store) -> None:
    """Handed over (a request body as parsed): the store keeps it, without a copy."""
    doc = {"kind": "command", "body": {"text": "status BILL-1", "n": [1, 2.5, None, True]}}
    await store.commit([Op("inbox", "i1", doc, handed_over=True)])
    assert store.engine.peek("inbox", "i1") is doc
    await store.commit([Op("inbox", "i2", doc)])  # not handed over: a copy
    copied = store.engine.peek("inbox", "i2")
    assert copied == doc and copied is not doc
    if isinstance(store.engine, TinyDBEngine):
        await store.close()
        again = await open_db(store.engine.path)
        try:
            assert json.dumps(again.engine.peek("inbox", "i1")) == json.dumps(doc)
        finally:
            await again.close()
        await store.open()


@pytest.mark.parametrize(
    "doc", [{"t": (1, 2)}, {"k": {1: "a"}}, {"s": State.OPEN}, {"x": [{"y": ("z",)}]}]
)
async def test_the_memory_engine_refuses_a_handed_over_document_that_is_not_plain_json(
    doc: dict[str, object],
) -> None:
    store = Store(MemoryEngine())
    with pytest.raises(TypeError):
        await store.commit([Op("inbox", "i", doc, handed_over=True)])
    assert store.engine.peek("inbox", "i") is None


# ---- durable engine: damage and failure edge cases ---------------------------


async def test_json_documents_only(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.commit([Op("inbox", "m", {"amount": Decimal("1.10")})])
    assert await store.engine.get("inbox", "m") is None
    await store.commit([Op("inbox", "t", {"pair": (1, 2)})])
    assert await store.engine.get("inbox", "t") == {"pair": [1, 2]}  # stored as JSON would


async def test_writes_after_close_are_refused(db_path: Path) -> None:
    store = await open_db(db_path)
    await store.close()
    with pytest.raises(StorageError):
        await asyncio.wait_for(store.save_customer(Customer("x", "X")), 5)


async def test_a_torn_index_line_does_not_break_later_opens(
    db_path: Path, tmp_path: Path, now: datetime
) -> None:
    store = await open_db(db_path)
    numbers = await fill(store, now)
    await store.close()
    store = await open_db(db_path)
    more = await close_case(store, await store.create_case(builder(now)), now)
    image = durable_copy(db_path, tmp_path / "crash")
    await store.close()
    # The crash came while a compaction appended its index rows.
    index = image.with_name("billing.archive.idx")
    index.write_bytes(index.read_bytes() + b"[99, 12345, 6")
    for _ in range(3):  # open, write, close (compacts, appends to the index), again
        s = await open_db(image)
        try:
            for n in (numbers["closed"], numbers["cancelled"]):
                got = await s.get_case(n)
                assert got is not None and got.state in (State.CLOSED, State.CANCELLED)
            got = await s.get_case(more.number)
            assert got is not None and got.state == State.CLOSED
            await cancel_case(s, await s.create_case(builder(now)), now)
        finally:
            await s.close()


async def test_an_uncovered_archive_tail_is_recovered(
    db_path: Path, tmp_path: Path, now: datetime
) -> None:
    store = await open_db(db_path)
    numbers = await fill(store, now)
    await store.close()
    # A crash after the archive append, before the index append (and before the snapshot).
    engine = TinyDBEngine(db_path)
    index = engine.index_path.read_bytes()
    rows = index.splitlines(keepends=True)
    engine.index_path.write_bytes(rows[0])
    archive = engine.archive_path.read_bytes()
    engine.archive_path.write_bytes(archive + b'{"number": 77, "sta')  # and a torn archive line
    for _ in range(2):
        s = await open_db(db_path)
        try:
            assert {x.number for x in s.archived_summaries()} == {
                numbers["closed"],
                numbers["cancelled"],
            }
            for n in (numbers["closed"], numbers["cancelled"]):
                assert await s.get_case(n) is not None
            assert await s.get_case(77) is None
        finally:
            await s.close()


async def test_a_damaged_index_is_rebuilt_from_the_archive(db_path: Path, now: datetime) -> None:
    store = await open_db(db_path)
    numbers = await fill(store, now)
    await store.close()
    engine = TinyDBEngine(db_path)
    rows = engine.index_path.read_bytes().splitlines(keepends=True)
    engine.index_path.write_bytes(b"[not json\n" + b"".join(rows[1:]))
    s = await open_db(db_path)
    try:
        assert {x.number for x in s.archived_summaries()} == {
            numbers["closed"],
            numbers["cancelled"],
        }
        closed = await s.get_case(numbers["closed"])
        assert closed is not None and closed.state == State.CLOSED
    finally:
        await s.close()


async def test_a_snapshot_with_a_wrong_shape_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b'{"cases": [1, 2]}')
    with pytest.raises(StorageError, match="damaged"):
        await open_db(db_path)
    assert db_path.read_bytes() == b'{"cases": [1, 2]}'


async def test_a_missing_snapshot_with_data_beside_it_is_refused(
    db_path: Path, now: datetime
) -> None:
    store = await open_db(db_path)
    await fill(store, now)
    await store.close()
    db_path.write_bytes(b"")  # emptied by hand, or lost: the archive still has cases
    with pytest.raises(StorageError, match="missing or empty"):
        await open_db(db_path)
    assert db_path.read_bytes() == b""


async def test_a_failed_fsync_does_not_resurrect_after_a_crash(
    db_path: Path, tmp_path: Path, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.storage import tinydb_engine

    store = await open_db(db_path)
    try:
        await store.save_customer(Customer("kept", "Kept"))

        def eio(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(tinydb_engine.os, "fdatasync", eio)
        with pytest.raises(StorageError):
            await store.save_customer(Customer("failed", "Failed"))
        monkeypatch.undo()
        image = durable_copy(db_path, tmp_path / "crash")  # killed before the next write
    finally:
        await store.close()
    recovered = await open_db(image)
    try:
        assert await recovered.get_customer("kept") is not None
        assert await recovered.get_customer("failed") is None  # the caller was told it failed
    finally:
        await recovered.close()


async def test_a_process_that_did_not_declare_a_flows_tables_keeps_them(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written with the collections tables opens, replays, compacts and checks
    in a process that never declared them (e.g. one that did not load the flow)."""
    from bot.storage import engine as engine_module
    from bot.storage.tinydb_engine import check_store

    store = await open_db(db_path)
    await store.commit([Store.receivable_op("inv-1", {"n": 1})])
    await store.close()  # compacted: in the snapshot
    store = await open_db(db_path)
    await store.commit([Store.receivable_op("inv-2", {"n": 2})])  # in the journal only
    image = durable_copy(db_path, tmp_path / "image")
    await store.close()

    monkeypatch.setattr(engine_module, "_DECLARED", dict.fromkeys(engine_module.CORE_TABLES))
    assert "receivables" not in known_tables()
    healthy, report = check_store(image)
    assert healthy, report
    again = Store(TinyDBEngine(image, tables=()))
    await again.open()
    try:
        assert dict(again.receivable_docs()) == {"inv-1": {"n": 1}, "inv-2": {"n": 2}}
        await again.commit([Store.receivable_op("inv-3", {"n": 3})])
    finally:
        await again.close()  # compaction writes the undeclared table back
    third = await open_db(image)
    try:
        assert sorted(third.receivable_docs()) == ["inv-1", "inv-2", "inv-3"]
        assert third.audit_entries() == []  # kept though empty: every table is in a snapshot
        with pytest.raises(StorageError):  # a table neither declared nor stored: refused
            await third.commit([Op("never_declared_table", "k", {"a": 1})])
    finally:
        await third.close()
