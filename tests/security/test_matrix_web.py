"""The authorization matrix on the web page: its real HTTP routes, one server for all cells."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.security.drivers import WebDriver, clear_forms, web_driver
from tests.security.matrix import Cell, cells, ids, run_cell

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driver() -> AsyncIterator[WebDriver]:
    async with web_driver() as built:
        yield built


@pytest.mark.parametrize("cell", cells(), ids=ids)
async def test_cell(driver: WebDriver, cell: Cell) -> None:
    try:
        await run_cell(driver, cell)
    finally:
        await clear_forms(driver.runtime)
