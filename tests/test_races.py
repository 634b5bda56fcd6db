"""Races: two people acting on one case at the same moment; ids under concurrent creation."""

from __future__ import annotations

import asyncio

from bot.domain import Case
from bot.storage import MemoryEngine, Op, Store
from tests.harness import DeskEnv


class BarrierStore(Store):
    """A store whose case saves wait for each other, so two flows interleave for sure."""

    def __init__(self) -> None:
        super().__init__(MemoryEngine())
        self.barrier: asyncio.Barrier | None = None

    async def save_case(self, case: Case, extra_ops: object = ()) -> Case:
        if self.barrier is not None:
            await self.barrier.wait()  # both flows have read the case and decided
        return await super().save_case(case, extra_ops)  # type: ignore[arg-type]


async def test_resolve_and_reassign_at_once_one_wins_the_other_sees_the_new_state() -> None:
    store = BarrierStore()
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


async def test_ids_stay_unique_under_concurrent_creation() -> None:
    env = DeskEnv()
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
