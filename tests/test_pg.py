"""PostgreSQL: the schema's migrations, the typed tables, one owner, /healthz and doctor.

The storage contract (tests/test_storage_contract.py) runs on PostgreSQL too; this
file holds what only the PostgreSQL engine promises. Every test gets a fresh
database on the session's throw-away server (tests/conftest.py, ``pg_url``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app.doctor import check, postgres_schema
from bot.app.server import build_app
from bot.domain import Customer, Dispute
from bot.money import Money
from bot.storage import (
    COLLECTIONS_TABLES,
    Op,
    PostgresEngine,
    Store,
    StoreLocked,
    declare_tables,
    open_store,
)
from bot.storage.pg_migrate import SCHEMA_VERSION, SchemaTooNew, known_migrations
from bot.storage.pg_schema import SPECS
from tests.harness import make_settings
from tests.processes import ROOT, bot_env
from tests.test_storage_contract import AGENT, builder, close_case

declare_tables(*COLLECTIONS_TABLES)


async def sql(url: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await fn(conn)
    finally:
        await conn.close()


async def opened(url: str) -> Store:
    store = Store(PostgresEngine(url))
    await store.open()
    return store


def migrate_cli(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "migrate", *args],
        env=bot_env(Path(url)) | {"BOT_DB": url},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ---- migrations ------------------------------------------------------------------


async def test_two_processes_migrating_at_once_apply_each_migration_once(pg_url: str) -> None:
    procs = [migrate_cli(pg_url) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(out for out, _err in outs)
    assert "up to date" in said[1] and "applied 0001_initial" in said[0], said
    rows = await sql(pg_url, lambda c: c.fetch("SELECT version, name FROM schema_migrations"))
    assert [(r["version"], r["name"]) for r in rows] == [
        (m.version, m.name) for m in known_migrations()
    ]
    # A serve starting on it applies nothing more, and says which version it runs on.
    store = await opened(pg_url)
    try:
        assert store.health()["schema_version"] == SCHEMA_VERSION
    finally:
        await store.close()


async def test_engines_opening_at_once_migrate_once(pg_url: str) -> None:
    stores = [Store(PostgresEngine(pg_url)) for _ in range(2)]
    results = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
    # One owns the database; the other is refused as a second owner, not by a half migration.
    assert sum(r is None for r in results) == 1, results
    assert [type(r) for r in results if r is not None] == [StoreLocked]
    for s, r in zip(stores, results, strict=True):
        if r is None:
            await s.close()
    count = await sql(pg_url, lambda c: c.fetchval("SELECT count(*) FROM schema_migrations"))
    assert count == len(known_migrations())


async def test_migrate_dry_run_applies_nothing(pg_url: str) -> None:
    proc = migrate_cli(pg_url, "--dry-run")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "would apply 0001_initial" in out and "nothing applied" in out
    assert "postgresql://" in out
    assert await sql(pg_url, lambda c: c.fetchval("SELECT to_regclass('cases')")) is None
    proc = migrate_cli(pg_url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and f"schema version 0 -> {SCHEMA_VERSION}" in out, (out, err)
    assert "0002_blobs" in out  # the attachments' bytes (issue 20)
    assert await sql(pg_url, lambda c: c.fetchval("SELECT to_regclass('blobs')")) == "blobs"


def test_migrate_refuses_a_tinydb_store(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "migrate"],
        env=bot_env(tmp_path / "db.json"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "TinyDB store" in proc.stderr


async def test_a_schema_one_version_newer_serves_more_is_refused(pg_url: str) -> None:
    store = await opened(pg_url)
    await store.close()

    async def newer(version: int) -> None:
        await sql(
            pg_url,
            lambda c: c.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')",
                version,
            ),
        )

    await newer(SCHEMA_VERSION + 1)  # a rolling deploy: the new version migrated first
    store = await opened(pg_url)
    try:
        assert store.health()["schema_version"] == SCHEMA_VERSION + 1
    finally:
        await store.close()
    await newer(SCHEMA_VERSION + 2)
    with pytest.raises(SchemaTooNew, match="newer billing-bot") as info:
        await opened(pg_url)
    assert f"schema version {SCHEMA_VERSION + 2}" in str(info.value)
    doctor = postgres_schema(pg_url)
    assert doctor.level == "error" and "newer billing-bot" in doctor.what
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", "0"],
        env=bot_env(Path(pg_url)) | {"BOT_DB": pg_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "newer billing-bot" in proc.stderr and "Traceback" not in proc.stderr


async def test_the_migrated_schema_has_every_typed_column(pg_url: str) -> None:
    store = await opened(pg_url)
    await store.close()
    rows = await sql(
        pg_url,
        lambda c: c.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        ),
    )
    columns = {(r["table_name"], r["column_name"]): r["data_type"] for r in rows}
    pg_types = {"bigint": "bigint", "timestamptz": "timestamp with time zone"}
    for spec in SPECS.values():
        for c in spec.columns:
            want = pg_types.get(c.kind, c.kind)
            assert columns.get((spec.sql, c.name)) == want, (spec.sql, c.name)
        for child in spec.children:
            for c in child.columns:
                assert columns.get((child.sql, c.name)) == pg_types.get(c.kind, c.kind)


# ---- typed rows -------------------------------------------------------------------


async def test_money_and_times_are_typed_columns(pg_url: str, now: datetime) -> None:
    store = await opened(pg_url)
    try:
        dispute = Dispute("INV-7", Money(Decimal("1234567.10"), "EUR"), "double charge")
        case = await store.create_case(builder(now, dispute=dispute))
        case.add_note("called them", AGENT, now)
        await store.save_case(case)
        await store.commit(
            [
                Store.receivable_op(
                    "inv-7",
                    {
                        "invoice": "INV-7",
                        "customer_id": "contoso",
                        "amount": {"amount": "99.90", "currency": "USD"},
                        "due_date": "2026-12-01",
                        "amount_paid": "0",
                    },
                )
            ]
        )
    finally:
        await store.close()
    row = await sql(
        pg_url,
        lambda c: c.fetchrow(
            "SELECT dispute_amount, dispute_currency, created_at, state, doc FROM cases"
        ),
    )
    assert row["dispute_amount"] == Decimal("1234567.10") and row["dispute_currency"] == "EUR"
    assert str(row["dispute_amount"]) == "1234567.10"
    assert row["created_at"] == now and row["state"] == "open"
    assert "dispute_amount" not in row["doc"] and '"1234567.10"' not in row["doc"]
    audit = await sql(pg_url, lambda c: c.fetch("SELECT pos, action FROM case_audit"))
    assert [(r["pos"], r["action"]) for r in audit] == [(0, "created"), (1, "noted")]
    notes = await sql(pg_url, lambda c: c.fetch("SELECT text FROM case_notes"))
    assert [r["text"] for r in notes] == ["called them"]
    receivable = await sql(
        pg_url, lambda c: c.fetchrow("SELECT amount, currency, due_date FROM receivables")
    )
    assert receivable["amount"] == Decimal("99.90") and receivable["currency"] == "USD"
    assert str(receivable["due_date"]) == "2026-12-01"
    plans = await sql(
        pg_url,
        lambda c: c.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ),
    )
    names = {r["indexname"] for r in plans}
    assert {
        "cases_by_number",
        "cases_by_owner_state",
        "cases_by_customer",
        "jobs_by_due",
        "receivables_by_customer_due",
    } <= names


ODD_DOCS: list[dict[str, Any]] = [
    {"due": "2026-11-24T10:00:00+01:00", "type": None},  # another offset stays as written
    {"due": "2026-11-24T09:00:00Z", "n": 1e100, "neg": -0.0, "f": 2.5},
    {"type": "x\x00y", "channel": "\ud800", "deep": {"a": [1, {"b": None}]}},
    {"amount": {"amount": "1E+2", "currency": "EUR"}, "due_date": "20261124"},
    {"amount": {"amount": "-0.00", "currency": 5}, "due_date": None, "version": "7"},
    {},
]


async def test_odd_documents_read_back_exactly(pg_url: str) -> None:
    store = await opened(pg_url)
    try:
        ops = [Op("jobs", f"j{i}", d) for i, d in enumerate(ODD_DOCS)]
        ops += [Op("receivables", f"r{i}", d) for i, d in enumerate(ODD_DOCS)]
        ops += [Op("collections", f"c{i}", d) for i, d in enumerate(ODD_DOCS)]
        await store.commit(ops)
        await store.commit([Op("cases", "x", {"number": 1, "state": "open", "audit": []})])
    finally:
        await store.close()
    again = await opened(pg_url)
    try:
        engine = again.engine
        for i, d in enumerate(ODD_DOCS):
            for table, key in (
                ("jobs", f"j{i}"),
                ("receivables", f"r{i}"),
                ("collections", f"c{i}"),
            ):
                got = engine.peek(table, key)
                assert _same(got, d), (table, key, got)
        assert engine.peek("cases", "x") == {"number": 1, "state": "open", "audit": []}
    finally:
        await again.close()


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types and float signs (``-0.0 == 0.0`` is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return repr(a) == repr(b)


async def test_another_processs_write_is_a_version_conflict(pg_url: str, now: datetime) -> None:
    """The guard is checked in SQL too: a row changed behind this process fails the commit,
    which is undone in memory with the commits queued after it that touch its rows (not the
    others: with replicas a conflict is routine); the row is then re-read from the database."""
    store = await opened(pg_url)
    try:
        case = await store.create_case(builder(now))
        await sql(pg_url, lambda c: c.execute("UPDATE cases SET version = 9"))
        case.start(AGENT, now)
        from bot.domain import Conflict

        results = await asyncio.gather(
            store.save_case(case),
            store.save_customer(Customer("after", "After")),
            return_exceptions=True,
        )
        assert isinstance(results[0], Conflict), results
        assert results[1] is None  # not built on the failed commit: written
        current = store.engine.peek("cases", str(case.number))
        assert current is not None and current["state"] == "open" and current["version"] == 9
        assert store.customer_now("after") is not None
        await sql(pg_url, lambda c: c.execute("UPDATE cases SET version = 20"))
        key = str(case.number)
        results = await asyncio.gather(
            store.commit([Op("cases", key, {**current, "version": 10}, expect=9)]),
            store.commit([Op("cases", key, {**current, "version": 11}, expect=10)]),  # on it
            store.save_customer(Customer("later", "Later")),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == ["VersionConflict"] * 2 + ["NoneType"]
        current = store.engine.peek("cases", key)
        assert current is not None and current["version"] == 20
        assert store.health()["ok"] is True  # a conflict is not a storage failure
    finally:
        await store.close()


async def test_archived_cases_leave_memory_and_come_back(pg_url: str, now: datetime) -> None:
    store = await opened(pg_url)
    try:
        live = await store.create_case(builder(now))
        done = await close_case(store, await store.create_case(builder(now)), now)
        assert set(store.engine.view("cases")) == {str(live.number)}
        got = await store.get_case(done.number)
        assert got is not None and got == done and len(got.audit) == 5
        got.reopen("customer disagrees", AGENT, now)
        await store.save_case(got)
        assert set(store.engine.view("cases")) == {str(live.number), str(done.number)}
    finally:
        await store.close()
    again = await opened(pg_url)
    try:
        reopened = await again.get_case(done.number)
        assert reopened is not None and reopened.version == 3 and len(reopened.audit) == 6
        assert again.case_counts()["reopened"] == 1
    finally:
        await again.close()


async def test_a_batch_of_unguarded_case_writes_reads_back_after_reopen(
    pg_url: str, now: datetime
) -> None:
    """One commit of unguarded writes to one table goes as one batch (store copy's path):
    a new case, one whose audit trail grew, one replaced by a shorter trail."""
    store = await opened(pg_url)
    try:
        grown = await store.create_case(builder(now))
        shrunk = await store.create_case(builder(now))
        shrunk.start(AGENT, now)
        shrunk.add_note("checked", AGENT, now)
        shrunk = await store.save_case(shrunk)
        grown.start(AGENT, now)
        replaced = builder(now, description="replaced")(shrunk.number)
        new = builder(now, customer="fabrikam")(99)
        docs = {str(c.number): c.to_doc() for c in (grown, replaced, new)}
        await store.engine.commit([Op("cases", key, doc) for key, doc in docs.items()])
    finally:
        await store.close()
    assert len(replaced.audit) < len(shrunk.audit) and not replaced.notes
    again = await opened(pg_url)
    try:
        for key, doc in docs.items():
            assert await again.engine.get("cases", key) == doc
        rows = await sql(
            pg_url,
            lambda c: c.fetch("SELECT case_key, count(*) AS n FROM case_audit GROUP BY case_key"),
        )
        assert {r["case_key"]: r["n"] for r in rows} == {
            k: len(d["audit"]) for k, d in docs.items()
        }
    finally:
        await again.close()


# ---- /healthz and doctor ------------------------------------------------------------


async def test_healthz_and_doctor_give_the_schema_version(pg_url: str) -> None:
    settings = make_settings(db_path=pg_url)
    app = build_app(settings, open_store(pg_url))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        body = await (await client.get("/healthz")).json()
        assert body["status"] == "ok"
        storage = body["storage"]
        assert storage["backend"] == "postgresql" and storage["schema_version"] == SCHEMA_VERSION
        findings = {f.what: f.level for f in check(settings)}
        known = f"schema version {SCHEMA_VERSION} (knows {SCHEMA_VERSION})"
        assert findings[f"store {pg_url}: PostgreSQL, {known}"] == "ok"


def test_without_postgresql_the_tests_fail_and_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No skip for want of a database: the cluster helper raises with the reason."""
    from tests.pg.cluster import ClusterError, running_cluster

    monkeypatch.setenv("BOT_PG_BIN", str(tmp_path))  # no initdb there
    with pytest.raises(ClusterError, match="initdb failed"), running_cluster():
        pass
