"""Shared, generic test fixtures: a fixed clock instant, a store path, a fake Partner Center,
a PostgreSQL server for the session and a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fakes.partner_center import FakePartnerCenter, running_fake_partner_center

# Shared assertion helpers (e.g. assert_same_case) keep pytest's detailed failure output.
pytest.register_assert_rewrite("tests.harness")


@pytest.fixture
def now() -> datetime:
    """A fixed instant (a Tuesday morning, UTC) for tests that need a clock value."""
    return datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a durable store lives in a test (a fresh temp dir per test)."""
    return tmp_path / "billing.json"


@pytest.fixture
async def fake() -> AsyncIterator[FakePartnerCenter]:
    """A fake Partner Center running on 127.0.0.1 (tests/fakes/partner_center.py)."""
    async with running_fake_partner_center() as server:
        yield server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for this test session: ``BOT_TEST_POSTGRES_URL``, else a throw-away
    cluster started now and deleted at the end (tests/pg/cluster.py). Never skipped: when the
    server cannot start, every test that needs it fails with the reason."""
    given = os.environ.get("BOT_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    from tests.pg.cluster import running_cluster

    with running_cluster() as url:
        yield url


def pg_admin(server: str, sql: str) -> None:
    """Run ``sql`` on the server's ``postgres`` database (from any thread or event loop)."""
    import asyncio
    import threading

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(server.rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    errors: list[BaseException] = []

    def thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    if errors:
        raise errors[0]


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """The URL of a new, empty database on the session's server (dropped after the test)."""
    name = "t_" + uuid.uuid4().hex[:16]
    pg_admin(pg_server, f'CREATE DATABASE "{name}"')
    yield pg_server.rsplit("/", 1)[0] + "/" + name
    pg_admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
