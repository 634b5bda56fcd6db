"""The inbox worker lets requests waiting for their HTTP answer go first, within bounds.

A burst of Slack or Teams requests is acked first and its work done right after;
an item acked long enough ago, or a backlog too long, is worked on even while
requests keep coming, so sustained overload is shared rather than deferred.
The bounds are set far apart here, so each check is about order, not speed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import bot.kernel.runtime as runtime_module
from bot.app.server import RUNTIME, build_app
from bot.storage import MemoryEngine, Store
from tests.harness import DeskEnv, make_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> DeskEnv:
    monkeypatch.setattr(runtime_module, "ANSWERS_FIRST_MAX_WAIT", 30.0)
    monkeypatch.setattr(runtime_module, "ANSWERS_FIRST_MAX_DELAY", 20.0)
    return DeskEnv()


async def worked(env: DeskEnv, queued: int) -> list[str]:
    """Queue ``queued`` items with a handler that records them; start the worker."""
    done: list[str] = []

    async def handler(payload: dict[str, Any]) -> None:
        done.append(payload["n"])

    env.runtime.request_handlers["test"] = handler
    for n in range(queued):
        assert await env.runtime.enqueue("test", {"n": str(n)})
    return done


async def test_work_waits_while_a_request_waits_for_its_answer(env: DeskEnv) -> None:
    done = await worked(env, 2)
    with env.runtime.answering():  # a request between arrival and its HTTP answer
        drain = asyncio.create_task(env.runtime.drain_requests())
        await asyncio.sleep(0.3)
        assert done == []  # the ack goes first
    assert await asyncio.wait_for(drain, 10) == 2
    assert done == ["0", "1"]


async def test_an_item_acked_long_ago_is_worked_on_at_once(env: DeskEnv) -> None:
    done = await worked(env, 1)
    key = next(iter(env.store.engine.view("inbox")))
    env.runtime._queued_at[key] = time.monotonic() - 21.0  # acked more than MAX_DELAY ago
    with env.runtime.answering():
        assert await asyncio.wait_for(env.runtime.drain_requests(), 10) == 1
    assert done == ["0"]


async def test_a_long_backlog_is_worked_on_at_once(
    env: DeskEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "ANSWERS_FIRST_MAX_BACKLOG", 3)
    done = await worked(env, 5)
    with env.runtime.answering():
        drain = asyncio.create_task(env.runtime.drain_requests())
        await asyncio.sleep(0.3)
        # Past the backlog bound it works without waiting, down to the bound.
        assert done == ["0", "1"]
    assert await asyncio.wait_for(drain, 10) == 5


async def test_items_from_before_a_restart_wait_at_most_max_wait(
    env: DeskEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "ANSWERS_FIRST_MAX_WAIT", 0.2)
    done = await worked(env, 1)
    env.runtime._queued_at.clear()  # queued by an earlier process: no ack time known
    began = time.monotonic()
    with env.runtime.answering():
        assert await asyncio.wait_for(env.runtime.drain_requests(), 10) == 1
    assert done == ["0"]
    assert time.monotonic() - began < 2  # MAX_WAIT (0.2 s), not MAX_DELAY (20 s)


async def test_the_server_counts_a_request_as_answering_while_it_is_served() -> None:
    """What the bounds above rely on: every request is counted until its answer."""
    app = build_app(make_settings(), Store(MemoryEngine()))
    runtime = app[RUNTIME]

    async def probe(_: web.Request) -> web.Response:
        return web.json_response(runtime._answering)

    app.router.add_get("/probe", probe)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert await (await client.get("/probe")).json() == 1
        assert runtime._answering == 0
