"""Fixtures of the Slack tests: the fake Slack Web API server and the bot's real server.

The helpers (``FakeSlack``, ``SlackEnv``, ``sign``, ``load``) live in
``tests/slack/slackfake.py``; see its docstring.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app.server import RUNTIME, build_app
from bot.clock import FakeClock
from bot.storage import open_store
from tests.slack.slackfake import START, FakeSlack, SlackEnv, make_settings


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()


@pytest.fixture
async def slack(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackEnv]:
    """The bot with the Slack channel on, its store a durable TinyDB file in ``tmp_path``.

    Its clock starts on a Tuesday at 09:00 UTC and runs in real time, so working
    hours and reminders do not depend on when the tests run.
    """
    settings = make_settings(f"{fake_slack.url}/api/")
    app = build_app(settings, open_store(tmp_path / "billing.json"), FakeClock(START, speed=1.0))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield SlackEnv(client, fake_slack, app[RUNTIME], settings)
