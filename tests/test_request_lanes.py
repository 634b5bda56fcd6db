"""The request queue's lanes, scheduled retries and per-destination pause (issue 17, item 2).

Each check is about order and who waits for whom, never about speed: the
handlers block on events the test controls.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import bot.kernel.runtime as runtime_module
from bot.kernel.runtime import destination_failure
from tests.harness import DeskEnv


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> DeskEnv:
    monkeypatch.setattr(runtime_module, "ANSWERS_FIRST_MAX_WAIT", 0.0)
    env = DeskEnv()
    env.runtime.request_routes["test"] = lambda p: (p["dest"], p["lane"])
    return env


async def test_a_hung_item_holds_only_its_own_lane(env: DeskEnv) -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def handler(payload: dict[str, Any]) -> None:
        if payload["n"] == "hung":
            await release.wait()
        done.append(payload["n"])

    env.runtime.request_handlers["test"] = handler
    await env.runtime.enqueue("test", {"n": "hung", "dest": "hole", "lane": "a"})
    await env.runtime.enqueue("test", {"n": "after-hung", "dest": "hole", "lane": "a"})
    for i in range(20):
        await env.runtime.enqueue("test", {"n": f"b{i}", "dest": "ok", "lane": f"b{i % 3}"})
    drain = asyncio.create_task(env.runtime.drain_requests())
    for _ in range(500):
        if len(done) == 20:
            break
        await asyncio.sleep(0.01)
    assert sorted(done) == sorted(f"b{i}" for i in range(20))  # all, while "hung" hangs
    # Order within each lane holds: b0, b3, b6, … on lane b0.
    lane0 = [n for n in done if int(n[1:]) % 3 == 0]
    assert lane0 == sorted(lane0, key=lambda n: int(n[1:]))
    assert "after-hung" not in done  # its lane waits for the item before it
    release.set()
    assert await asyncio.wait_for(drain, 10) == 22
    assert done[-2:] == ["hung", "after-hung"]


async def test_a_failing_item_retries_later_without_holding_anyone(env: DeskEnv) -> None:
    attempts: list[str] = []

    async def handler(payload: dict[str, Any]) -> None:
        attempts.append(payload["n"])
        if payload["n"] == "bad" and attempts.count("bad") < 3:
            raise ValueError("a bug in this item, not the destination's fault")

    env.runtime.request_handlers["test"] = handler
    await env.runtime.enqueue("test", {"n": "bad", "dest": "slack", "lane": "a"})
    await env.runtime.enqueue("test", {"n": "good", "dest": "slack", "lane": "b"})
    assert await asyncio.wait_for(env.runtime.drain_requests(), 10) == 2
    # "good" ran right after the first failure, not after the backoff.
    assert attempts[:2] == ["bad", "good"] and attempts.count("bad") == 3
    # An item's own bug never pauses its destination.
    assert env.runtime.paused_destinations() == {}


async def test_a_destination_failing_on_the_network_is_paused_on_its_own(env: DeskEnv) -> None:
    calls: list[str] = []

    async def handler(payload: dict[str, Any]) -> None:
        calls.append(payload["dest"])
        if payload["dest"] == "down":
            raise ConnectionRefusedError("connection refused")

    env.runtime.request_handlers["test"] = handler
    for i in range(6):
        await env.runtime.enqueue("test", {"n": str(i), "dest": "down", "lane": f"d{i}"})
    drain = asyncio.create_task(env.runtime.drain_requests())
    for _ in range(500):
        if env.runtime.paused_destinations():
            break
        await asyncio.sleep(0.01)
    paused = env.runtime.paused_destinations()
    assert list(paused) == ["test|down"]
    tried_before_pause = calls.count("down")
    # Healthy work goes on while "down" is paused.
    await env.runtime.enqueue("test", {"n": "x", "dest": "up", "lane": "u"})
    for _ in range(500):
        if "up" in calls:
            break
        await asyncio.sleep(0.01)
    assert "up" in calls
    # While paused, "down" is tried at most once at a time (the probe), not by all six lanes.
    assert calls.count("down") <= tried_before_pause + 1
    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drain


def test_what_counts_as_a_destination_failure() -> None:
    class Response:
        status_code = 503

    class ApiError(Exception):
        response = Response()

    assert destination_failure(ConnectionRefusedError())
    assert destination_failure(TimeoutError())
    assert destination_failure(ApiError())
    try:
        try:
            raise OSError("reset")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert destination_failure(outer)
    assert not destination_failure(ValueError("bad payload"))
    assert not destination_failure(KeyError("x"))


async def test_in_a_burst_items_run_one_at_a_time_unless_one_waits_on_io(
    env: DeskEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acks first: while requests come in, one fresh item at a time; a stuck one holds no one."""
    monkeypatch.setattr(runtime_module, "FRESH_SECONDS", 30.0)  # no item ages out here
    monkeypatch.setattr(runtime_module, "BURST_SECONDS", 0.3)
    release = asyncio.Event()
    started: list[str] = []

    async def handler(payload: dict[str, Any]) -> None:
        started.append(payload["n"])
        await release.wait()

    env.runtime.request_handlers["test"] = handler
    for i in range(4):
        await env.runtime.enqueue("test", {"n": str(i), "dest": "ok", "lane": f"l{i}"})
    with env.runtime.answering():  # a request between arrival and its HTTP answer: a burst
        drain = asyncio.create_task(env.runtime.drain_requests())
        for _ in range(50):
            await asyncio.sleep(0.01)
            if started:
                break
        await asyncio.sleep(0.1)
        assert started == ["0"]  # one at a time while the acks go first
    for _ in range(300):  # the burst is over (BURST_SECONDS after the last request)
        if len(started) == 4:
            break
        await asyncio.sleep(0.01)
    assert sorted(started) == ["0", "1", "2", "3"]  # all lanes at once after the burst
    release.set()
    assert await asyncio.wait_for(drain, 10) == 4
