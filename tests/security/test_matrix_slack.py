"""The authorization matrix on Slack: signed requests to the real app, the fake Web API records.

Staff write in the partner's own channel; the customer of tenant A is a user
of the Contoso workspace in the Slack Connect channel mapped to Contoso, the
customer of tenant B one of Fabrikam's in Fabrikam's channel; the person
without a role is a user of a workspace nobody mapped, in a partner channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.clock import FakeClock
from bot.config import CustomerConfig
from bot.server import RUNTIME, build_app
from bot.storage import open_store
from tests.security.drivers import SLACK_TEAMS, SlackDriver, clear_forms
from tests.security.matrix import Cell, cells, ids, run_cell, seed_world
from tests.slack.slackfake import START, TENANT_A, TENANT_B, FakeSlack, make_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")


class MatrixSlack(FakeSlack):
    """The fake Web API, knowing the matrix's people and their workspaces."""

    def m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = str(args["user"])
        if uid not in SLACK_TEAMS:
            return super().m_users_info(args)
        name = uid[1:].title()
        return {
            "user": {
                "id": uid,
                "team_id": SLACK_TEAMS[uid],
                "name": name.lower(),
                "real_name": name,
                "tz": "Europe/Berlin",
                "locale": "en-US",
                "profile": {"display_name": name, "real_name": name, "team": SLACK_TEAMS[uid]},
            }
        }


def slack_settings(api_url: str) -> Any:
    return make_settings(
        api_url,
        customers=(
            CustomerConfig(
                name="Contoso", tenant_id=TENANT_A, owner="lena", slack_channels=("CCONTOSO",)
            ),
            CustomerConfig(
                name="Fabrikam", tenant_id=TENANT_B, owner="lena", slack_channels=("CFABRIKAM",)
            ),
        ),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driver() -> AsyncIterator[SlackDriver]:
    fake = MatrixSlack()
    fake_server = TestServer(fake.app, host="127.0.0.1")
    await fake_server.start_server()
    fake.url = str(fake_server.make_url("")).rstrip("/")
    settings = slack_settings(f"{fake.url}/api/")
    app = build_app(settings, open_store(":memory:"), FakeClock(START, speed=1.0))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        runtime = app[RUNTIME]
        await seed_world(runtime)
        yield SlackDriver(runtime, client, fake)
    await fake_server.close()


@pytest.mark.parametrize("cell", cells(), ids=ids)
async def test_cell(driver: SlackDriver, cell: Cell) -> None:
    try:
        await run_cell(driver, cell)
    finally:
        await clear_forms(driver.runtime)
