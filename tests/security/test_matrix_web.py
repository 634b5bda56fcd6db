"""The authorization matrix on the web page: its real HTTP routes, one server for all cells."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.clock import FakeClock
from bot.server import RUNTIME, build_app
from bot.storage import open_store
from tests.harness import START, make_settings
from tests.security.drivers import LOCAL_NAMES, WebDriver, clear_forms
from tests.security.matrix import Cell, cells, ids, run_cell, seed_world

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driver() -> AsyncIterator[WebDriver]:
    app = build_app(make_settings(), open_store(":memory:"), FakeClock(START, speed=1.0))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    clients = {key: TestClient(server) for key in LOCAL_NAMES}  # one cookie jar per person
    for client in clients.values():
        await client.start_server()
    runtime = app[RUNTIME]
    await seed_world(runtime)
    web = WebDriver(runtime, clients)
    await web.login()
    yield web
    for client in clients.values():
        await client.session.close()
    await server.close()


@pytest.mark.parametrize("cell", cells(), ids=ids)
async def test_cell(driver: WebDriver, cell: Cell) -> None:
    try:
        await run_cell(driver, cell)
    finally:
        await clear_forms(driver.runtime)
