"""Fixtures of the web page's tests: the bot's real aiohttp app on a test server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app.server import RUNTIME, build_app
from bot.clock import FakeClock
from bot.storage import open_store
from conversations.runtime import Runtime
from tests.harness import START
from tests.web.helpers import Browser, web_settings

AppFactory = Callable[..., Any]


@pytest.fixture
async def make_web() -> AsyncIterator[AppFactory]:
    """``await make_web(**settings)`` → (Browser, Runtime, TestClient); more browsers share it."""
    clients: list[TestClient] = []  # type: ignore[type-arg]

    async def make(**overrides: Any) -> tuple[Browser, Runtime, TestClient]:  # type: ignore[type-arg]
        settings = web_settings(**overrides)
        app = build_app(settings, open_store(":memory:"), FakeClock(START, speed=1.0))
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return Browser(client), app[RUNTIME], client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def login_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays failed logins were answered after, recorded instead of slept (fast tests).

    ``raising=False``: the hook is the module's ``sleep``; an older auth module
    without it simply never records (so a regression test still runs there).
    """
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("adapters.web.auth.sleep", record, raising=False)
    return slept


@pytest.fixture
async def web(make_web: AppFactory) -> tuple[Browser, Runtime]:
    browser, runtime, _client = await make_web()
    return browser, runtime
