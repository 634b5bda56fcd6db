"""The authorization matrix on Teams: activities to the real app, the fake Bot Connector records.

Staff write in their personal chat with the bot; the customer of tenant A is
a Contoso user @mentioning the bot in the shared channel mapped to Contoso,
the customer of tenant B a Fabrikam user in Fabrikam's; the person without a
role is a user of an unmapped tenant in a personal chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.security.drivers import TeamsDriver, clear_forms, teams_driver
from tests.security.matrix import Cell, cells, ids, run_cell

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driver() -> AsyncIterator[TeamsDriver]:
    async with teams_driver() as built:
        yield built


@pytest.mark.parametrize("cell", cells(), ids=ids)
async def test_cell(driver: TeamsDriver, cell: Cell) -> None:
    try:
        await run_cell(driver, cell)
    finally:
        await clear_forms(driver.runtime)
