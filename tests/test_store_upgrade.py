"""A store written by an older billing-bot opens and keeps everything (issue 18, item 6).

``tests/fixtures/store-79a86d9/`` was written by commit 79a86d9 (before the
layers, names, command registry and form engine changed): ``demo-data`` (24
cases, 6 customers, receivables), a dispute form left at step 2 in ana's
terminal chat, then a ``serve`` that took and noted BILL-2, left lena's
question form at step 2, and was killed with SIGKILL — so its last four
writes are journal lines in the old format, without a checksum. Today's code
must open a copy of it, keep every case, replay those lines, and resume both
forms where they were.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.app.wiring import build_runtime
from bot.kernel.model import Channel, Message
from bot.storage import Store, TinyDBEngine
from tests.harness import FakeClock, make_settings

FIXTURE = Path(__file__).parent / "fixtures" / "store-79a86d9"


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(FIXTURE, dst)
    return dst / "billing-bot.json"


async def test_a_store_written_by_79a86d9_opens_with_every_case(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    store = Store(TinyDBEngine(path))
    await store.open()
    try:
        numbers = [n for n in range(1, 25) if await store.get_case(n) is not None]
        assert numbers == list(range(1, 25))  # 24 demo cases, live and archived
        assert await store.get_case(25) is None
        assert len(await store.customers()) == 6
        # The journal lines of the killed serve (old format, no checksum) were replayed.
        case = await store.get_case(2)
        assert case is not None and case.owner == "lena"
        assert [n.text for n in case.notes][-1] == "journal line from 79a86d9"
        assert await store.next_number("case") == 25  # the counter went on, no number reused
    finally:
        await store.close()


async def test_forms_left_open_by_79a86d9_resume_where_they_were(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    path = _copy(tmp_path)
    store = Store(TinyDBEngine(path))
    await store.open()
    settings = make_settings(db_path=str(path))
    runtime = build_runtime(settings, store, FakeClock(datetime(2026, 11, 24, 11, tzinfo=UTC)))
    try:

        def say(user: str, text: str, conversation: str | None = None) -> Message:
            where = conversation or user
            return Message(channel=Channel.LOCAL, user=user, conversation=where, text=text)

        # lena's question form: the customer was given; the subscription id is next (optional).
        out = await runtime.handle(say("lena", "skip"))
        text = "\n".join(r.text for r in out.replies)
        assert "step 3 of 5" in text, text
        # ana's dispute form: the invoice number is asked; then the amount.
        out = await runtime.handle(say("ana", "G099887766", "terminal:ana"))
        text = "\n".join(r.text for r in out.replies)
        assert "step 3 of 5" in text and "amount" in text.lower(), text
    finally:
        await store.close()
