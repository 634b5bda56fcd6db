"""A destination that never answers delays nobody else (issue 17, item 2), on a real ``serve``.

A Teams conversation whose ``serviceUrl`` accepts the connection and never
answers (a "black hole" on 127.0.0.1) used to hold the whole request queue:
its item sorted first, each attempt waited for msrest's ~100 s default, and
its backoff was slept inline. Now each item runs on its own lane and retries
later; here every one of 100 Slack answers for three other people must reach
the fake Slack while the first call to the black hole is still pending. No
timed assert: the condition is "before the black hole's first call ended".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.reliability import figures as figs
from tests.reliability.world import open_world
from tests.teams.conftest import ALICE

pytestmark = pytest.mark.slow

HEALTHY_REQUESTS = 100


@dataclass
class BlackHole:
    """A TCP server that accepts, reads what it is sent, and never answers."""

    server: asyncio.base_events.Server | None = None
    port: int = 0
    first_request_at: float | None = None
    first_closed_at: float | None = None
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    async def start(self) -> BlackHole:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        head = await reader.read(4096)
        self.requests.append(head)
        if first:
            self.first_request_at = time.monotonic()
        while await reader.read(4096):  # never answer; wait until the client hangs up
            pass
        if first:
            self.first_closed_at = time.monotonic()
        writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_black_hole_destination_delays_no_other_answer(tmp_path: Path) -> None:
    hole = await BlackHole().start()
    try:
        async with open_world(tmp_path) as world:
            await world.start()
            slack = world.slack_env()
            # The first item in the queue: a Teams message whose answer goes to the black hole.
            activity = world.teams().activity(ALICE, text="help")
            activity["serviceUrl"] = f"http://127.0.0.1:{hole.port}/"
            assert await world.post_activity(activity) in (200, 201, 202)
            deadline = time.monotonic() + 20
            while hole.first_request_at is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert hole.first_request_at is not None, world.serve and world.serve.tail()

            # 100 requests from three other people, for a healthy destination (Slack).
            users = ("UANA", "ULENA", "UBOB")
            gate = asyncio.Semaphore(10)

            async def one(i: int) -> int:
                async with gate:
                    status, _ = await slack.command("resources", user=users[i % 3], settle=False)
                    return status

            started = time.monotonic()
            statuses = await asyncio.gather(*(one(i) for i in range(HEALTHY_REQUESTS)))
            assert statuses == [200] * HEALTHY_REQUESTS

            def answered() -> int:
                return sum(1 for m in world.slack.messages if "vKB" in m.text or "MPN" in m.text)

            while answered() < HEALTHY_REQUESTS and hole.first_closed_at is None:
                await asyncio.sleep(0.02)
            all_answered_at = time.monotonic()
            assert answered() >= HEALTHY_REQUESTS, (
                f"only {answered()} of {HEALTHY_REQUESTS} answers arrived before the black "
                "hole's first call ended"
            )
            # The black hole's first call was still pending when the last answer arrived.
            assert hole.first_closed_at is None
            figs.FIGURES.append(
                f"black-hole Teams destination: {HEALTHY_REQUESTS} Slack answers for 3 other "
                f"users all delivered {all_answered_at - started:.2f} s after the first request, "
                "while the black hole's first call was still pending"
            )
    finally:
        await hole.close()
