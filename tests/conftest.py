"""Shared, generic test fixtures (storage, a fixed clock instant, a staff actor)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain import Actor, Role
from bot.storage import MemoryEngine, Store, TinyDBEngine

# Shared assertion helpers (e.g. assert_same_case) keep pytest's detailed failure output.
pytest.register_assert_rewrite("tests.harness")


@pytest.fixture
def now() -> datetime:
    """A fixed instant (a Tuesday morning, UTC) for tests that need a clock value."""
    return datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def agent() -> Actor:
    return Actor(user_id="u-ana", role=Role.AGENT, channel="local", display_name="Ana")


@pytest.fixture
async def memory_store() -> AsyncIterator[Store]:
    store = Store(MemoryEngine())
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a durable store lives in a test (a fresh temp dir per test)."""
    return tmp_path / "billing.json"


@pytest.fixture
async def tinydb_store(db_path: Path) -> AsyncIterator[Store]:
    store = Store(TinyDBEngine(db_path))
    await store.open()
    yield store
    await store.close()
