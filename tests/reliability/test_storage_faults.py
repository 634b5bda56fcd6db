"""A store that cannot be written (ENOSPC, EROFS) or cannot be read (a damaged file at start).

While the disk refuses writes, every edge answers that nothing could be saved
(or asks the sender to retry: a Slack event gets a 500, a Teams activity a
503), nothing changes, and ``/healthz`` answers 503 naming the error. Once the
disk works again ``/healthz`` is 200 without waiting for traffic, the retried
requests are done once, and work that was queued before the failure is
finished. A damaged store file makes ``billing-bot serve`` refuse to start
with a clear message, and the file is left exactly as it was.
"""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.domain import Actor, Case, Category, Kind, Role
from bot.storage import Store, TinyDBEngine
from tests.processes import ROOT, bot_env, free_port
from tests.reliability.figures import fault_case
from tests.reliability.inproc import LiveBot, eventually
from tests.slack.slackfake import ASK_VALUES, START, new_case
from tests.teams.conftest import ALICE

STRERROR = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system"}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["ENOSPC", "EROFS"])
async def test_a_disk_that_refuses_writes_changes_nothing_and_healthz_says_so(
    live: LiveBot, code: int
) -> None:
    name = errno.errorcode[code]
    card = await new_case(live.slack, "Why two charges?")
    await live.slack.command("ask")
    view = live.fake_slack.last_view()
    before = await live.store.get_case(1)
    assert before is not None and before.owner is None
    journal = live.engine.journal_path.stat().st_size
    assert (await live.healthz())[0] == 200

    live.disk.fail(code)
    # Slack slash command: refused in the ack itself.
    status, body = await live.slack.command("take BILL-1")
    assert status == 200 and "storage is not writable right now, so I did nothing" in body
    fault_case(f"{name}: Slack slash command → told in the ack, nothing done")
    # Slack click: acked, then the clicker is told privately.
    await live.slack.click(card, "take")
    await eventually(
        lambda: any("storage is not writable" in m.text for m in live.fake_slack.messages)
    )
    fault_case(f"{name}: Slack button → told through the response_url, nothing done")
    # Slack modal: the notice is pushed over the form, which keeps what was typed.
    status, answer = await live.slack.submit(view, {**ASK_VALUES, "description": "Another"})
    assert status == 200 and answer["response_action"] == "push"
    assert "I could not save that" in json.dumps(answer)
    fault_case(f"{name}: Slack modal → notice over the form, no case, no number used")
    # Slack event: a 500 makes Slack send it again later.
    status, _ = await live.slack.dm("note BILL-1 called the customer", event_id="EvDISK")
    assert status == 500
    fault_case(f"{name}: Slack event → 500, Slack retries it")
    # Teams: a 503 makes the Bot Connector try again.
    take = live.teams.say(ALICE, "take BILL-1")
    assert await live.activity(take) == 503
    fault_case(f"{name}: Teams activity → 503, redelivered later")
    # The local chat: told in the answer.
    status, text = await live.local("ana", "note BILL-1 checked")
    assert status == 200 and "I could not save that" in text
    fault_case(f"{name}: local chat → told, nothing done")

    status, health = await live.healthz()
    assert status == 503 and health["status"] == "unhealthy"
    assert STRERROR[code] in health["storage"]["error"]
    after = await live.store.get_case(1)
    assert after is not None and after.to_doc() == before.to_doc()
    assert live.store.case_counts()["open"] == 1 and (await live.store.get_case(2)) is None
    assert live.engine.view("inbox") == {}
    assert live.engine.journal_path.stat().st_size == journal  # not a byte more on disk
    assert live.disk.refused > 0

    live.disk.heal()
    assert (await live.healthz())[0] == 200  # at once, before any request wrote
    status, _ = await live.slack.dm("note BILL-1 called the customer", event_id="EvDISK", retry=1)
    assert status == 200
    assert await live.activity(take) == 201  # the Bot Connector's redelivery
    status, answer = await live.slack.submit(view, {**ASK_VALUES, "description": "Another"})
    assert status == 200 and answer == {}
    case = await live.store.get_case(1)
    assert case is not None and case.owner == "alice"
    assert [n.text for n in case.notes] == ["called the customer"]
    second = await live.store.get_case(2)
    assert second is not None and second.description == "Another"  # number 2, not 3
    fault_case(f"{name}: healed → /healthz 200 at once; retried requests done once")


async def test_work_queued_before_the_disk_failed_is_done_once_it_works_again(
    live: LiveBot,
) -> None:
    """The inbox worker survives a failed write in the middle of the work after an ack."""
    await new_case(live.slack, "Why two charges?")
    release = live.fake_slack.hold("users.info")  # lena's first request: the work waits here
    status, body = await live.slack.command("note BILL-1 queued before", user="ULENA", settle=False)
    assert (status, body) == (200, "")
    assert len(live.engine.view("inbox")) == 1  # acknowledged: recorded durably
    live.disk.fail(errno.ENOSPC)
    del live.fake_slack.holds["users.info"]
    release.set()
    await eventually(lambda: live.disk.refused >= 2)  # the desk's save, then the inbox's
    await asyncio.sleep(0.2)
    assert live.engine.view("inbox") != {}  # kept, not dropped and not marked dead
    live.disk.heal()
    await asyncio.wait_for(live.runtime.wait_idle(), 10)
    case = await live.store.get_case(1)
    assert case is not None and [n.text for n in case.notes] == ["queued before"]
    answers = [m for m in live.fake_slack.messages if "Internal note added to BILL-1" in m.text]
    assert len(answers) == 1 and not live.engine.view("inbox")
    fault_case("ENOSPC during the work after an ack → kept in the inbox, done once after")


# ---------------------------------------------------------------- a damaged store at start
def _good_store(db: Path) -> None:
    """A store with one case, closed cleanly (snapshot written), one more commit in the journal."""

    async def build() -> None:
        store = Store(TinyDBEngine(db))
        await store.open()
        actor = Actor("ana", Role.AGENT, "local", None, "Ana")
        for text in ("first", "second"):
            await store.create_case(
                lambda n, t=text: Case.new(
                    n,
                    kind=Kind.QUESTION,
                    customer_id="contoso",
                    category=Category.TAX,
                    description=t,
                    actor=actor,
                    now=START,
                )
            )
        await store.close()
        store = Store(TinyDBEngine(db))
        await store.open()
        case = await store.get_case(1)
        assert case is not None
        case.add_note("a journal line", actor, START)
        await store.save_case(case)
        # Leave it as a crash would: the snapshot, plus a journal line on top.
        engine = store.engine
        assert isinstance(engine, TinyDBEngine)
        await asyncio.to_thread(engine._close_files)

    asyncio.run(build())


def _journal(db: Path) -> Path:
    return db.with_name(db.stem + ".journal")


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "snapshot cut in half": (
        lambda db: db.write_bytes(db.read_bytes()[: len(db.read_bytes()) // 2]),
        "is damaged",
    ),
    "snapshot overwritten with binary garbage": (
        lambda db: db.write_bytes(bytes(range(256)) * 4),
        "is damaged",
    ),
    "snapshot is a JSON list": (lambda db: db.write_text("[1, 2, 3]"), "is damaged"),
    "snapshot tables of the wrong type": (
        lambda db: db.write_text('{"cases": {"1": 5}}'),
        "is damaged",
    ),
    "journal damaged in the middle": (
        lambda db: _journal(db).write_bytes(b'{"seq": oops\n' + _journal(db).read_bytes()),
        "is damaged at line 1",
    ),
    "snapshot emptied but the journal holds data": (
        lambda db: db.write_bytes(b""),
        "is missing or empty",
    ),
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_serve_refuses_a_damaged_store_and_never_overwrites_it(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "billing.json"
    _good_store(db)
    corrupt, message = CORRUPTIONS[damage]
    corrupt(db)
    files = sorted(p for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", str(free_port())],
        env=bot_env(db),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "billing-bot: cannot open the store" in proc.stderr and message in proc.stderr
    assert "from a backup" in proc.stderr  # and what to do about it
    assert "Traceback" not in proc.stderr
    after = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(tmp_path.iterdir())
        if not p.name.endswith(".lock")
    }
    assert after == before  # not a byte written, nothing added (no .tmp, no new snapshot)
    fault_case(f"damaged store at start ({damage}) → serve exits 1 with a clear message")
