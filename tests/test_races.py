"""Races: two people acting on one case at the same moment; ids under concurrent creation.

Each runs on every engine (memory, TinyDB, PostgreSQL): optimistic versions and case
numbering are storage semantics.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain import Case
from bot.storage import Engine, MemoryEngine, Op, PostgresEngine, Store, TinyDBEngine
from tests.harness import DeskEnv


@pytest.fixture(params=["memory", "tinydb", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    if request.param == "memory":
        yield MemoryEngine()
    elif request.param == "tinydb":
        yield TinyDBEngine(tmp_path / "db.json")
    else:
        yield PostgresEngine(request.getfixturevalue("pg_url"))


class BarrierStore(Store):
    """A store whose case saves wait for each other, so two flows interleave for sure."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.barrier: asyncio.Barrier | None = None

    async def save_case(self, case: Case, extra_ops: object = ()) -> Case:
        if self.barrier is not None:
            await self.barrier.wait()  # both flows have read the case and decided
        return await super().save_case(case, extra_ops)  # type: ignore[arg-type]


async def test_resolve_and_reassign_at_once_one_wins_the_other_sees_the_new_state(
    engine: Engine,
) -> None:
    store = BarrierStore(engine)
    env = DeskEnv(store=store)
    await store.open()
    case_id = await env.new_question()
    await env.chat("alice").send(f"take {case_id}")
    before = await store.get_case(1)
    assert before is not None
    alice, lena = env.chat("alice"), env.chat("lena")
    store.barrier = asyncio.Barrier(2)
    await asyncio.gather(
        alice.send(f"resolve {case_id} reversed"), lena.send(f"assign {case_id} bob")
    )
    store.barrier = None
    after = await store.get_case(1)
    assert after is not None
    winners = [c for c in (alice, lena) if c.kinds and c.kinds[0] != "stale"]
    losers = [c for c in (alice, lena) if c.kinds and c.kinds[0] == "stale"]
    assert len(winners) == 1 and len(losers) == 1
    losers[0].expect("changed while you were working on it; here is its current state")
    assert losers[0].card is not None  # the current state is shown
    new_entries = after.audit[len(before.audit) :]
    assert len(new_entries) == 1  # exactly one change landed, no duplicate audit entry
    if winners[0] is alice:
        assert new_entries[0].action == "resolved" and after.owner == "alice"
    else:
        assert (
            new_entries[0].action == "assigned"
            and after.owner == "bob"
            and after.state.value == "in_progress"
        )
    assert after.version == before.version + 1
    await store.close()


async def test_ids_stay_unique_under_concurrent_creation(engine: Engine) -> None:
    env = DeskEnv(store=Store(engine))
    await env.store.open()
    chats = [env.chat(name) for name in ("alice", "bob", "lena") for _ in range(1)]

    async def create(i: int) -> str:
        chat = env.chat(["alice", "bob", "lena"][i % 3], conversation=f"c{i}")
        await chat.submit(
            "ask",
            {"customer": "Contoso", "category": "tax", "description": f"question {i}"},
        )
        assert chat.card is not None, chat.text
        return str(chat.card.case_id)

    ids = await asyncio.gather(*(create(i) for i in range(40)))
    assert len(set(ids)) == 40
    assert sorted(int(x.split("-")[1]) for x in ids) == list(range(1, 41))
    assert chats
    await env.store.close()
    again = Store(engine)
    await again.open()  # and so they are stored
    try:
        assert again.case_numbers_given() == 40 and again.cases_held() == 40
    finally:
        await again.close()


async def test_a_failing_write_answers_cannot_save_and_changes_nothing(tmp_path: object) -> None:
    """ENOSPC on the journal (injected at the file layer): the user is told, nothing changes."""
    import errno

    from bot.storage import TinyDBEngine

    engine = TinyDBEngine(f"{tmp_path}/db.json")
    store = Store(engine)
    env = DeskEnv(store=store)
    await store.open()
    case_id = await env.new_question()
    original = engine._append_journal

    def full(payload: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    engine._append_journal = full  # type: ignore[method-assign]
    chat = env.chat("alice")
    await chat.send(f"take {case_id}")
    chat.expect("I could not save that")
    assert store.health()["ok"] is False
    case = await store.get_case(1)
    assert case is not None and case.owner is None and case.version == 1
    engine._append_journal = original  # type: ignore[method-assign]
    await chat.send(f"take {case_id}")
    chat.expect("is yours now")
    assert store.health()["ok"] is True
    await store.close()
    assert Op  # re-exported for tests of raw commits


async def test_a_lost_database_connection_answers_cannot_save_and_recovers(pg_url: str) -> None:
    """PostgreSQL: the writer's session is killed by the server; the user is told and the
    case is unchanged (or the engine reconnected first), and the next write reconnects."""
    import asyncpg

    engine = PostgresEngine(pg_url)
    store = Store(engine)
    env = DeskEnv(store=store)
    await store.open()
    try:
        case_id = await env.new_question()
        killer = await asyncpg.connect(pg_url)
        try:
            killed = await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await killer.close()
        assert killed >= 1
        chat = env.chat("alice")
        await chat.send(f"take {case_id}")
        # Either the writer's dead session failed this write (the user is told, nothing
        # changed) or the engine saw it die first and wrote on a new one (the replicas'
        # change follower notices a lost connection): never a half-done change.
        if "I could not save that" in chat.text:
            assert store.health()["ok"] is False
            case = await store.get_case(1)
            assert case is not None and case.owner is None and case.version == 1
            await chat.send(f"take {case_id}")
        chat.expect("is yours now")
        assert store.health()["ok"] is True
    finally:
        await store.close()
    again = Store(PostgresEngine(pg_url))
    await again.open()
    try:
        case = await again.get_case(1)
        assert case is not None and case.owner == "alice" and case.version == 2
    finally:
        await again.close()
