"""Replica faults (issue 22): two real ``serve`` replicas on one PostgreSQL, one killed mid-burst.

lena sends internal notes as Slack DMs (signed ``message.im`` events, each note with a unique
token) spread over both replicas, as a load balancer would. Every event that got a 2xx is
also sent again, as Slack's retry (same ``event_id``, ``X-Slack-Retry-Num``), to the *other*
replica; an event whose replica died before answering is retried on the other one. In each
cycle one replica is SIGKILLed mid-burst; the survivor alone must finish every acknowledged
request of the burst (the dead replica's claimed or queued ones taken over after the claim
lease, 2 s here), then the dead one is started again. At the end every acknowledged note is
on its case exactly once (lost = 0, duplicates = 0), and the bot's answers exceed the notes
by at most one per kill (a replica killed between sending an answer and recording it
resends it once). The time from a kill until the survivor has done it all is reported.

This is the start of the issue's replica fault test: Slack DMs only, no clicks, no Teams
activities, no database restart yet. ``RELIABILITY_SEED`` replays a run,
``REPLICA_CYCLES`` changes the count.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest

from bot.storage import open_store
from conversations.runtime import Runtime
from tests.reliability.world import ServeProcess, World, _Http, env_seed, open_world
from tests.slack.slackfake import SlackEnv
from tests.test_storage_contract import builder

pytestmark = pytest.mark.slow

CYCLES = int(os.environ.get("REPLICA_CYCLES", "10"))
SEED = env_seed(20261202)
CASES = 8  # each burst writes one note to each case, so no two notes race for one case
LEASE = "2"  # BOT_CLAIM_LEASE_SECONDS of both replicas
ANSWER = re.compile(r"Internal note added to BILL-|Already done")
DOWN = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class _Idle:
    async def wait_idle(self) -> None:
        return None


def slack_for(world: World, serve: ServeProcess) -> SlackEnv:
    """Signed Slack requests posted to one replica."""
    assert world.http is not None
    target = cast(World, SimpleNamespace(url=serve.url))
    return SlackEnv(
        client=cast(Any, _Http(world.http, target)),
        fake=world.slack,
        runtime=cast(Runtime, _Idle()),
        settings=cast(Any, None),
    )


async def test_two_replicas_one_killed_mid_burst_nothing_lost_nothing_twice(
    tmp_path: Path, pg_url: str, figures: list[str]
) -> None:
    rng = random.Random(SEED)
    store = open_store(pg_url)  # this test is a third replica: it reads what the serves did
    await store.open()
    try:
        now = datetime.now(UTC)
        numbers = [(await store.create_case(builder(now))).number for _ in range(CASES)]
        async with open_world(
            tmp_path, extra_env={"BOT_DB": pg_url, "BOT_CLAIM_LEASE_SECONDS": LEASE}
        ) as world:
            serves = [
                ServeProcess(
                    Path(pg_url),
                    world.port if i == 0 else _port(),
                    tmp_path / f"r{i}.log",
                    world.env(None),
                )
                for i in range(2)
            ]
            for serve in serves:
                await serve.start()
            sent = acked = unanswered = resent_to_other = kills = 0
            acked_tokens: set[str] = set()
            killed_at = [0.0]
            failover: list[float] = []  # s from a kill until all acked work was done
            every_token: set[str] = set()

            async def send(token: str, number: int, first: int, delay: float) -> None:
                nonlocal sent, acked, unanswered, resent_to_other
                await asyncio.sleep(delay)  # a burst over half a second
                event_id = f"Ev{token}"
                text = f"note BILL-{number} {token} called them"
                # The first try, then Slack's retries (up to three), each to the replica the
                # balancer picks: the other one than the try before.
                target = first
                answered = False
                for retry in range(4):
                    slack = slack_for(world, serves[target])
                    sent += 1
                    try:
                        status, _body = await slack.dm(
                            text, user="ULENA", event_id=event_id, retry=retry or None
                        )
                    except DOWN:
                        unanswered += 1
                        target = 1 - target
                        await asyncio.sleep(0.2)
                        continue
                    if status == 200:
                        if not answered:
                            acked += 1
                            acked_tokens.add(token)
                            answered = True
                            # Slack did not see the ack in time: the same event again, to the
                            # other replica. It must be answered as a duplicate.
                            target = 1 - target
                            resent_to_other += 1
                            continue
                        return
                    target = 1 - target
                    await asyncio.sleep(0.2)

            for cycle in range(CYCLES):
                tokens = [f"N{cycle:02d}{i:02d}{rng.randrange(10**6):06d}Z" for i in range(CASES)]
                every_token.update(tokens)
                victim = rng.randrange(2)
                kill_after = rng.uniform(0.1, 0.4)

                async def kill_later(victim: int = victim, kill_after: float = kill_after) -> None:
                    nonlocal kills
                    await asyncio.sleep(kill_after)
                    serves[victim].kill()
                    killed_at[0] = asyncio.get_running_loop().time()
                    kills += 1

                killer = asyncio.create_task(kill_later())
                await asyncio.gather(
                    *(
                        send(token, number, rng.randrange(2), rng.uniform(0, 0.5))
                        for token, number in zip(tokens, numbers, strict=True)
                    )
                )
                await killer
                # The survivor alone finishes the dead replica's acknowledged work (taken over
                # after the lease), before the dead one comes back.
                await _all_done(store, acked_tokens, numbers, timeout=30)
                failover.append(asyncio.get_running_loop().time() - killed_at[0])
                await serves[victim].start()

            notes = await _note_counts(store, numbers)
            done = sum(1 for t in notes if t in every_token)

            def answers() -> int:
                # A replica killed after the note's commit, before its answer: the other one
                # redoes the request and answers "Already done".
                return sum(1 for m in world.slack.messages if ANSWER.search(m.text))

            deadline = asyncio.get_running_loop().time() + 15
            while answers() < done and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
            answered = answers()
            for serve in serves:
                assert await serve.stop() == 0, serve.tail()
    finally:
        await store.close()
    duplicates = sorted(t for t, n in notes.items() if n > 1)
    lost = sorted(acked_tokens - set(notes))
    resends = answered - done
    figures.append(
        f"replica faults: {CYCLES} cycles, {kills} kills, {sent} requests sent ({acked} events "
        f"acked, {resent_to_other} retries to the other replica, {unanswered} unanswered), "
        f"{done} notes done, {answered} answers ({resends} resends), "
        f"duplicates {len(duplicates)}, lost {len(lost)}; from a kill until the survivor "
        f"had done every acked request: max {max(failover):.1f} s (lease {LEASE} s)"
    )
    assert not duplicates, duplicates
    assert not lost, lost
    assert set(notes) <= every_token
    assert 0 <= resends <= kills, (answered, done, kills)


def _port() -> int:
    from tests.processes import free_port

    return free_port()


async def _note_counts(store: Any, numbers: list[int]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for number in numbers:
        case = await store.get_case(number)
        assert case is not None
        for note in case.notes:
            for word in note.text.split():
                if word.startswith("N") and word.endswith("Z"):
                    counts[word] += 1
    return counts


async def _all_done(store: Any, tokens: set[str], numbers: list[int], timeout: float) -> None:
    """Wait until every acknowledged note is on its case (the test's replica follows the log)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        missing = tokens - set(await _note_counts(store, numbers))
        if not missing:
            return
        assert loop.time() < deadline, f"never done: {sorted(missing)}"
        await asyncio.sleep(0.1)
