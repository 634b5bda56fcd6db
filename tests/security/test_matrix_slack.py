"""The authorization matrix on Slack: signed requests to the real app, the fake Web API records.

Staff write in the partner's own channel; the customer of tenant A is a user
of the Contoso workspace in the Slack Connect channel mapped to Contoso, the
customer of tenant B one of Fabrikam's in Fabrikam's channel; the person
without a role is a user of a workspace nobody mapped, in a partner channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.security.drivers import SlackDriver, clear_forms, slack_driver
from tests.security.matrix import Cell, cells, ids, run_cell

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driver() -> AsyncIterator[SlackDriver]:
    async with slack_driver() as built:
        yield built


@pytest.mark.parametrize("cell", cells(), ids=ids)
async def test_cell(driver: SlackDriver, cell: Cell) -> None:
    try:
        await run_cell(driver, cell)
    finally:
        await clear_forms(driver.runtime)
