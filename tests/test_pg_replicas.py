"""Several replicas on one PostgreSQL database (issue 22; docs/architecture.md, "Replicas").

Each test opens two engines on one fresh database of the session's throw-away server
(``pg_url``), as two ``serve`` replicas would: claims of queued requests with a lease,
dedupe keys and guards checked by the database, and memory following the other's commits.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.clock import FakeClock
from bot.config import configured_user
from bot.domain import Conflict, Customer
from bot.kernel.model import Reply
from bot.kernel.runtime import Kernel, mailbox_key
from bot.kernel.scheduler import notify_op
from bot.storage import PostgresEngine, StorageError, Store, StoreLocked, open_store
from bot.storage.pg_engine import LOCK_TIMEOUT_SECONDS
from tests.harness import make_settings
from tests.pg.cluster import restart, running_cluster
from tests.processes import ROOT, Serve, bot_env
from tests.test_pg import sql
from tests.test_server import QUESTION
from tests.test_storage_contract import AGENT, builder, close_case

LEASE = 1.0  # seconds: the claim lease in these tests (60 s in production)


async def replica(url: str) -> Store:
    store = Store(PostgresEngine(url, shared=True))
    await store.open()
    return store


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
    opened: list[Store] = []

    async def open_one() -> Store:
        opened.append(await replica(pg_url))
        return opened[-1]

    yield open_one
    for store in opened:
        await store.close()


def kernel(store: Store, done: list[tuple[str, Any]], name: str) -> Kernel:
    k = Kernel(make_settings(claim_lease_seconds=LEASE), store)

    async def handle(payload: dict[str, Any]) -> None:
        done.append((name, payload["n"]))

    k.request_handlers["test"] = handle
    return k


def item(n: int) -> dict[str, Any]:
    return {"channel": "test", "payload": {"n": n}, "received": "2026-12-02T10:00:00+00:00"}


# ---- (a) queued requests are claimed in the database, with a lease ---------------------------
async def test_a_claim_holds_for_its_lease_then_is_taken_over(
    replicas: Callable[[], Awaitable[Store]],
) -> None:
    a = await replicas()
    await a.commit([Store.queued_request_op("req-1", item(1))])
    b = await replicas()
    assert b.queued_request("req-1") is not None
    assert await a.claim_request("req-1", LEASE)
    assert not await b.claim_request("req-1", LEASE)  # a holds it
    assert await a.claim_request("req-1", LEASE)  # a's own retry keeps it
    await asyncio.sleep(LEASE + 0.3)  # a died: its lease ran out
    assert await b.claim_request("req-1", LEASE)
    assert not await a.claim_request("req-1", LEASE)
    await b.commit([Store.queued_request_op("req-1", None)])  # b did it
    assert not await a.claim_request("req-1", LEASE)  # gone: it left a's memory too
    assert a.queued_request("req-1") is None


async def test_a_dead_replicas_request_is_done_once_by_the_other_after_the_lease(
    replicas: Callable[[], Awaitable[Store]],
) -> None:
    done: list[tuple[str, Any]] = []
    a = await replicas()
    await a.commit([Store.queued_request_op(f"req-{n}", item(n)) for n in (1, 2)])
    assert await a.claim_request("req-1", LEASE)  # a claimed req-1, then was killed
    b = await replicas()
    kb = kernel(b, done, "b")
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(kb.drain_requests(), 10)
    waited = asyncio.get_running_loop().time() - started
    assert sorted(done) == [("b", 1), ("b", 2)]  # each once, req-1 after a's lease
    assert waited >= LEASE * 0.8
    assert b.queued_request_count() == 0
    assert await asyncio.wait_for(kb.drain_requests(), 5) == 0


async def test_two_replicas_draining_one_queue_do_every_request_once(
    replicas: Callable[[], Awaitable[Store]],
) -> None:
    done: list[tuple[str, Any]] = []
    a = await replicas()
    await a.commit([Store.queued_request_op(f"req-{n:03}", item(n)) for n in range(40)])
    b = await replicas()
    ka, kb = kernel(a, done, "a"), kernel(b, done, "b")
    await asyncio.wait_for(asyncio.gather(ka.drain_requests(), kb.drain_requests()), 30)
    assert sorted(n for _who, n in done) == list(range(40))  # none twice, none lost


# ---- (b) dedupe keys and guards are checked by the database ---------------------------------
async def test_a_retry_reaching_the_other_replica_is_queued_once(
    replicas: Callable[[], Awaitable[Store]],
) -> None:
    """The event id is the primary key of ``events``: b's memory does not know it, the
    database refuses it. An unrelated request queued behind the duplicate is not lost."""
    a, b = await replicas(), await replicas()
    done: list[tuple[str, Any]] = []
    ka, kb = kernel(a, done, "a"), kernel(b, done, "b")
    assert await ka.enqueue("test", {"n": 1}, dedupe="slack|Ev1")
    retry, other = await asyncio.gather(
        kb.enqueue("test", {"n": 1}, dedupe="slack|Ev1"),
        kb.enqueue("test", {"n": 2}, dedupe="slack|Ev2"),
    )
    assert (retry, other) == (False, True)
    assert b.was_seen("slack|Ev1")  # the conflict re-read the key
    assert not await kb.enqueue("test", {"n": 1}, dedupe="slack|Ev1")
    await asyncio.wait_for(asyncio.gather(ka.drain_requests(), kb.drain_requests()), 10)
    assert sorted(n for _who, n in done) == [1, 2]


async def test_case_numbers_stay_unique_and_gapless_across_replicas(
    replicas: Callable[[], Awaitable[Store]], now: datetime
) -> None:
    a, b = await replicas(), await replicas()
    first = await a.create_case(builder(now))
    second = await b.create_case(builder(now))  # b's counter was stale: it takes the next
    both = await asyncio.gather(a.create_case(builder(now)), b.create_case(builder(now)))
    numbers = [first.number, second.number, *(c.number for c in both)]
    assert sorted(numbers) == [1, 2, 3, 4]


async def test_a_stale_write_from_another_replica_is_refused_then_sees_the_change(
    replicas: Callable[[], Awaitable[Store]], now: datetime
) -> None:
    a = await replicas()
    created = await a.create_case(builder(now))
    b = await replicas()
    on_a = await a.get_case(created.number)
    on_b = await b.get_case(created.number)
    assert on_a is not None and on_b is not None
    on_a.start(AGENT, now)
    await a.save_case(on_a)
    on_b.add_note("stale card", AGENT, now)
    with pytest.raises(Conflict):
        await b.save_case(on_b)
    fresh = await b.get_case(created.number)  # the conflict re-read the row
    assert fresh is not None and fresh.state == on_a.state and fresh.version == on_a.version
    fresh.add_note("now on the current case", AGENT, now)
    await b.save_case(fresh)


# ---- (c) memory follows the other replicas' commits -----------------------------------------
async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the other replica never saw it"
        await asyncio.sleep(0.02)


async def test_a_replica_sees_the_others_commits_and_deletes(
    replicas: Callable[[], Awaitable[Store]], now: datetime
) -> None:
    a, b = await replicas(), await replicas()
    await a.save_customer(Customer("contoso", "Contoso Ltd"))
    created = await a.create_case(builder(now))
    await a.commit([Store.queued_request_op("req-1", item(1))])
    await eventually(lambda: b.queued_request("req-1") is not None)
    await eventually(lambda: b.customer_now("contoso") is not None)
    job = {"type": "notify", "user_id": "alice", "text": "hi", "due": now.isoformat()}
    await a.commit([Store.job_op("notify:x", job)])
    await eventually(lambda: b.job("notify:x") is not None)
    assert [k for k, _j in await b.due_jobs(now)] == ["notify:x"]  # b's indexes follow too
    assert b.counter_value("case") == created.number
    on_b = await b.get_case(created.number)
    assert on_b is not None and on_b.version == created.version
    await a.commit([Store.queued_request_op("req-1", None)])
    await eventually(lambda: b.queued_request("req-1") is None)
    # A case closed on a leaves b's memory for the archive, and b still reads it.
    case = await a.get_case(created.number)
    assert case is not None
    await close_case(a, case, now)
    await eventually(lambda: b.engine.peek("cases", str(created.number)) is None)
    archived = await b.get_case(created.number)
    assert archived is not None and archived.state == case.state
    assert b.case_counts() == a.case_counts()


async def test_a_change_logged_without_a_notification_is_read_by_polling(
    replicas: Callable[[], Awaitable[Store]], pg_url: str
) -> None:
    """A notification lost (the listener reconnecting) is covered by reading the log each second:
    here another process writes a row and its log entry in SQL and notifies nobody."""
    b = await replicas()
    assert isinstance(b.engine, PostgresEngine)

    async def write(conn: Any) -> None:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO customers (key, id, name, version) VALUES ('fabrikam', 'fabrikam', "
                "'Fabrikam', 1)"
            )
            await conn.execute(
                "INSERT INTO store_changes (tbl, key, origin) VALUES ('customers', 'fabrikam', 'x')"
            )

    await sql(pg_url, write)
    await eventually(lambda: b.customer_now("fabrikam") is not None, timeout=3)
    found = await b.find_customer("Fabrikam")
    assert found is not None and found.name == "Fabrikam"
    assert await b.engine.catch_up() == 0  # nothing new since
    c = await replicas()  # one opened later loads it
    assert c.customer_now("fabrikam") is not None


# ---- (d) replicas share the database; an exclusive owner (store copy) still excludes them ------
async def test_replicas_share_the_database_and_an_exclusive_owner_excludes_them(
    pg_url: str,
) -> None:
    first, second = open_store(pg_url), open_store(pg_url)
    await first.open()
    await second.open()
    try:
        with pytest.raises(StoreLocked, match="in use by another billing-bot"):
            await PostgresEngine(pg_url).open()  # e.g. ``store copy``: alone or not at all
    finally:
        await first.close()
        await second.close()
    alone = PostgresEngine(pg_url)
    await alone.open()
    try:
        with pytest.raises(StoreLocked):
            await open_store(pg_url).open()
    finally:
        await alone.close()


def healthz(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body


def test_two_serves_and_a_chat_share_one_postgresql_database(pg_url: str) -> None:
    serves = [Serve(Path(pg_url), BOT_DB=pg_url) for _ in range(2)]
    for serve in serves:
        serve.start()  # the second is no longer refused
    try:
        env = bot_env(Path(pg_url)) | {"BOT_DB": pg_url}
        proc = subprocess.run(
            [sys.executable, "-m", "bot", "chat", "--as", "alice"],
            input=QUESTION,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Connected to the billing-bot" not in proc.stdout  # the database, directly
        assert "BILL-1 is closed." in proc.stdout
        deadline = time.monotonic() + 10
        while True:  # both serves' memory followed the chat's commits
            seen = [healthz(s.url)["storage"] for s in serves]
            if all(h["archived_cases"] == 1 and h["live_cases"] == 0 for h in seen):
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.1)
    finally:
        results = [serve.stop() for serve in serves]
    for code, err in results:
        assert code == 0 and "Traceback" not in err, err


# ---- the database restarted under two replicas -------------------------------------------------
async def test_replicas_recover_by_themselves_when_the_database_restarts(now: datetime) -> None:
    """``pg_ctl restart -m fast`` drops every connection: writes fail with a StorageError while
    it is away (a 503 to Slack and Teams, who retry), then work again, and each replica follows
    the other's commits again, without being restarted."""
    with running_cluster() as url:
        a, b = await replica(url), await replica(url)
        try:
            await a.save_customer(Customer("before", "Before"))
            await eventually(lambda: b.customer_now("before") is not None)
            await asyncio.to_thread(restart, url)
            failures = 0
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                try:
                    await a.save_customer(Customer("after", "After"))
                    break
                except StorageError:
                    failures += 1  # a connection from before the restart: dropped, then anew
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.2)
            assert failures <= 3
            await eventually(lambda: b.customer_now("after") is not None, timeout=15)
            created = await b.create_case(builder(now))
            await eventually(lambda: a.counter_value("case") == created.number, timeout=15)
            assert a.health()["ok"] and b.health()["ok"]
        finally:
            await a.close()
            await b.close()


# ---- scheduler jobs: claimed in the database by a guarded write ---------------------------------
async def test_two_replicas_ticking_at_once_send_a_due_message_once(
    replicas: Callable[[], Awaitable[Store]], now: datetime
) -> None:
    settings = make_settings()
    a = await replicas()
    alice = next(u for u in settings.users if u.name == "alice")
    await a.save_user(configured_user(alice, "UTC"))
    for n in range(10):
        await a.commit([notify_op(f"notify:t{n}", "alice", f"message {n}", None, now)])
    b = await replicas()
    clock = FakeClock(now)
    ka, kb = Kernel(settings, a, clock), Kernel(settings, b, clock)
    await asyncio.gather(ka.scheduler.tick(), kb.scheduler.tick())
    sent = sorted(s["key"] for s in (*ka.scheduler.sent, *kb.scheduler.sent))
    assert sent == sorted(f"notify:t{n}" for n in range(10))  # each once, by one or the other
    await eventually(lambda: not b.engine.view("jobs") and not a.engine.view("jobs"))
    # Both replicas put messages in alice's mailbox at once: none of them is lost.
    await eventually(lambda: a.engine.peek("conversations", mailbox_key("alice")) is not None)
    mailbox = await ka.take_mailbox("alice")
    assert sorted(i["text"] for i in mailbox) == sorted(f"message {n}" for n in range(10))


async def test_a_job_claimed_by_a_dead_replica_runs_after_the_claim_timeout(
    replicas: Callable[[], Awaitable[Store]], now: datetime
) -> None:
    settings = make_settings()
    a = await replicas()
    alice = next(u for u in settings.users if u.name == "alice")
    await a.save_user(configured_user(alice, "UTC"))
    await a.commit([notify_op("notify:x", "alice", "hello", None, now)])
    b = await replicas()
    dead = Kernel(settings, a, FakeClock(now))
    job = a.job("notify:x")
    assert job is not None
    claimed_until = now + timedelta(minutes=settings.reminders.claim_timeout_minutes)
    await a.commit(  # a claimed it, then died before sending
        [
            Store.job_op(
                "notify:x", {**job, "claimed_until": claimed_until.isoformat(), "version": 1}
            )
        ]
    )
    await eventually(lambda: (b.job("notify:x") or {}).get("claimed_until") is not None)
    survivor = Kernel(settings, b, FakeClock(now + timedelta(minutes=1)))
    assert await survivor.scheduler.tick() == 0  # the claim holds
    later = Kernel(settings, b, FakeClock(claimed_until + timedelta(seconds=1)))
    assert await later.scheduler.tick() == 1  # taken over after it
    assert not dead.scheduler.sent


async def test_two_replicas_filling_one_mailbox_at_once_lose_nothing(
    replicas: Callable[[], Awaitable[Store]],
) -> None:
    a, b = await replicas(), await replicas()
    settings = make_settings()
    ka, kb = Kernel(settings, a), Kernel(settings, b)
    await asyncio.gather(
        *(
            k.add_to_mailbox("alice", [Reply(text=f"{name}{n}")])
            for n in range(5)
            for name, k in (("a", ka), ("b", kb))
        )
    )
    await eventually(
        lambda: (
            len((b.engine.peek("conversations", mailbox_key("alice")) or {}).get("items", [])) == 10
        )
    )
    taken = await kb.take_mailbox("alice")
    assert sorted(i["text"] for i in taken) == sorted(f"{x}{n}" for x in "ab" for n in range(5))
    await eventually(lambda: a.engine.peek("conversations", mailbox_key("alice")) is None)
    assert await ka.take_mailbox("alice") == []


async def test_a_row_lock_held_elsewhere_stalls_writes_only_for_the_lock_timeout(
    replicas: Callable[[], Awaitable[Store]], pg_url: str, now: datetime
) -> None:
    """A long transaction holding one case's row (a stuck replica, a person at psql) makes a
    write of that case fail after ``LOCK_TIMEOUT_SECONDS`` (a 503: retried), not hang; the
    replica's writes go on once it is released."""
    a = await replicas()
    first = await a.create_case(builder(now))
    holder = await asyncpg.connect(pg_url)
    try:
        await holder.execute("BEGIN")
        await holder.execute("SELECT 1 FROM cases WHERE key = $1 FOR UPDATE", str(first.number))
        case = await a.get_case(first.number)
        assert case is not None
        case.add_note("while the row is locked", AGENT, now)
        started = asyncio.get_running_loop().time()
        with pytest.raises(StorageError, match="lock timeout"):
            await a.save_case(case)
        waited = asyncio.get_running_loop().time() - started
        assert LOCK_TIMEOUT_SECONDS * 0.8 <= waited < LOCK_TIMEOUT_SECONDS + 5
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    second = await a.create_case(builder(now))  # the replica writes again
    assert second.number == first.number + 1
