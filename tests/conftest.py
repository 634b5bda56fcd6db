"""Shared, generic test fixtures: a fixed clock instant, a store path, a fake Partner Center."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
