"""The authorization matrix on the local channel (:meth:`Runtime.handle`), one runtime for all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.clock import FakeClock
from bot.runtime import Runtime
from bot.storage import MemoryEngine, Store
from tests.harness import START, make_settings
from tests.security.drivers import LocalDriver, clear_forms
from tests.security.matrix import Cell, cells, ids, run_cell, seed_world

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driver() -> AsyncIterator[LocalDriver]:
    store = Store(MemoryEngine())
    await store.open()
    runtime = Runtime(make_settings(), store, FakeClock(START))
    await seed_world(runtime)
    yield LocalDriver(runtime)
    await runtime.close()
    await store.close()


@pytest.mark.parametrize("cell", cells(), ids=ids)
async def test_cell(driver: LocalDriver, cell: Cell) -> None:
    try:
        await run_cell(driver, cell)
    finally:
        await clear_forms(driver.runtime)
