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
from aiohttp.test_utils import TestServer

from bot.config import CustomerConfig
from tests.harness import TENANT_A, TENANT_B
from tests.security.drivers import TeamsDriver, clear_forms
from tests.security.matrix import Cell, cells, ids, run_cell, seed_world
from tests.teams.conftest import (
    ALICE,
    CAROL,
    LENA,
    SHARED_CHANNEL,
    BotServer,
    FakeConnector,
    TeamsUser,
    teams_settings,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

FABRIKAM_CHANNEL = "19:fabrikam-shared@thread.tacv2"
FABI = TeamsUser("fabi", "Fabi Fabrikam", "ffffffff-0000-4000-8000-00000000fab1", TENANT_B)
STRANGER = TeamsUser("stranger", "Sam Stranger", "55555555-0000-4000-8000-000000000555",
                     "55555555-0000-4000-8000-00000000000f")  # fmt: skip
PEOPLE = {
    "agent": (ALICE, None, "personal"),
    "lead": (LENA, None, "personal"),
    "customer_a": (CAROL, SHARED_CHANNEL, "channel"),
    "customer_b": (FABI, FABRIKAM_CHANNEL, "channel"),
    "none": (STRANGER, None, "personal"),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driver() -> AsyncIterator[TeamsDriver]:
    connector = FakeConnector()
    server = TestServer(connector.app(), host="127.0.0.1")
    await server.start_server()
    connector.url = str(server.make_url("/")).rstrip("/")
    assert CAROL.tenant == TENANT_A
    settings = teams_settings(
        ":memory:",
        customers=(
            CustomerConfig(
                name="Contoso",
                tenant_id=TENANT_A,
                owner="lena",
                teams_conversations=(SHARED_CHANNEL,),
            ),
            CustomerConfig(
                name="Fabrikam",
                tenant_id=TENANT_B,
                owner="lena",
                teams_conversations=(FABRIKAM_CHANNEL,),
            ),
        ),
    )
    bot = await BotServer(settings, connector).start()
    await seed_world(bot.runtime)
    yield TeamsDriver(bot.runtime, bot, connector, PEOPLE)
    await bot.close()
    await server.close()


@pytest.mark.parametrize("cell", cells(), ids=ids)
async def test_cell(driver: TeamsDriver, cell: Cell) -> None:
    try:
        await run_cell(driver, cell)
    finally:
        await clear_forms(driver.runtime)
