"""A storage writer for the crash test: writes until it is killed, acknowledging each write.

Run as ``python tests/storage_writer.py STORE SEED [COMPACT_EVERY]``. It opens the
durable store, prints ``READY``, then four concurrent workers create cases and
walk them (and cases of earlier runs, archived ones included) through the state
machine. After each ``await`` of a write has returned, one line goes to stdout,
flushed::

    C <number> <version> <state> <token>    a case was created (token is in its description)
    U <number> <version> <state>            a case was saved

A line that is printed was acknowledged: it must survive a ``kill -9``.
"""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime, timedelta

from bot.domain import Actor, Case, Category, InformedVia, Kind, Role, State
from bot.storage import Store, TinyDBEngine

ACTOR = Actor(user_id="u-crash", role=Role.AGENT, channel="local")
WORKERS = 4
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ack(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def advance(case: Case, rng: random.Random, now: datetime) -> None:
    """One step along the life of a case (sometimes a cancel or a note)."""
    state = case.state
    if state in (State.OPEN, State.IN_PROGRESS) and rng.random() < 0.1:
        case.cancel("duplicate", ACTOR, now)
    elif state in (State.OPEN, State.REOPENED):
        case.start(ACTOR, now)
    elif state == State.IN_PROGRESS:
        if rng.random() < 0.3:
            case.add_note("checked the invoice " * rng.randint(1, 20), ACTOR, now)
        else:
            case.resolve("explained", ACTOR, now)
    elif state == State.ESCALATED:
        case.resolve("explained", ACTOR, now)
    elif state == State.RESOLVED:
        case.mark_informed(InformedVia.EMAIL, "told them", ACTOR, now)
    elif state == State.CUSTOMER_INFORMED:
        case.close(ACTOR, now)
    elif state == State.CLOSED:
        case.reopen("customer wrote back", ACTOR, now)
    else:  # cancelled: nothing more can happen
        raise LookupError(case.id)


async def main(path: str, seed: int, compact_every: int) -> None:
    rng = random.Random(seed)
    store = Store(TinyDBEngine(path, compact_every=compact_every))
    await store.open()
    # Cases of earlier runs join the pools (each worker owns the numbers ≡ its index).
    pools: list[list[int]] = [[] for _ in range(WORKERS)]
    for case in await store.live_cases():
        pools[case.number % WORKERS].append(case.number)
    for summary in store.archived_summaries():
        if summary.state == "closed" and rng.random() < 0.05:
            pools[summary.number % WORKERS].append(summary.number)
    ack("READY")

    async def worker(w: int) -> None:
        pool = pools[w]
        i = 0
        while True:
            i += 1
            now = T0 + timedelta(seconds=i)
            if not pool or rng.random() < 0.4:
                token = f"s{seed}-w{w}-{i}"

                def build(number: int, token: str = token, now: datetime = now) -> Case:
                    return Case.new(
                        number,
                        kind=Kind.QUESTION,
                        customer_id=f"cust{number % 7}",
                        category=Category.INVOICE,
                        description=token,
                        actor=ACTOR,
                        now=now,
                    )

                case = await store.create_case(build)
                ack(f"C {case.number} {case.version} {case.state.value} {token}")
                pools[case.number % WORKERS].append(case.number)
                continue
            number = rng.choice(pool)
            loaded = await store.get_case(number)
            assert loaded is not None, number
            try:
                advance(loaded, rng, now)
            except LookupError:
                pool.remove(number)
                continue
            saved = await store.save_case(loaded)
            ack(f"U {saved.number} {saved.version} {saved.state.value}")
            if saved.state in (State.CLOSED, State.CANCELLED) and rng.random() < 0.8:
                pool.remove(number)

    await asyncio.gather(*(worker(w) for w in range(WORKERS)))


if __name__ == "__main__":
    compact = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), compact))
