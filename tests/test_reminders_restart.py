"""A real ``serve`` subprocess restarted in the middle of a reminder schedule, on fake time."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from tests.processes import Serve

CONFIG = """
[reminders]
repeat_every_hours = 1
escalate_after = 5
"""


async def post(http: aiohttp.ClientSession, serve: Serve, text: str) -> None:
    async with http.post(f"{serve.url}/local/messages", json={"user": "alice", "text": text}) as r:
        assert r.status == 200, await r.text()


async def inbox(
    http: aiohttp.ClientSession, serve: Serve, want: int, settle: float = 1.0
) -> list[dict[str, object]]:
    """Collect alice's inbox until ``want`` items came, then wait ``settle`` s for any extra."""
    items: list[dict[str, object]] = []
    deadline = time.monotonic() + 15
    extra_until: float | None = None
    while time.monotonic() < deadline:
        async with http.get(f"{serve.url}/local/inbox", params={"user": "alice"}) as r:
            items += (await r.json())["items"]
        if len(items) >= want and extra_until is None:
            extra_until = time.monotonic() + settle
        if extra_until is not None and time.monotonic() >= extra_until:
            break
        await _sleep(0.1)
    return items


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def reminder_items(items: list[dict[str, object]]) -> list[str]:
    return [str(i["text"]) for i in items if "BILL-1" in str(i["text"])]


async def test_restart_mid_schedule_catches_up_once_and_goes_on(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(CONFIG)
    db = tmp_path / "db.json"
    env = {"BOT_CONFIG": str(cfg)}
    async with aiohttp.ClientSession() as http:
        # 09:00 (a Tuesday, fake time frozen): resolve → the first DM at once.
        first = Serve(db, BILLING_BOT_FAKE_CLOCK="2026-11-24T09:00:00+00:00@0", **env)
        first.start()
        try:
            for line in (
                "ask Why two charges?",
                "Contoso",
                "yes",
                "skip",
                "skip",
                "2",
                "ok",
                "take BILL-1",
                "resolve BILL-1 reversed",
            ):
                await post(http, first, line)
            got = reminder_items(await inbox(http, first, want=1))
            assert len(got) == 1 and "is resolved. Please tell the customer" in got[0]
        finally:
            first.kill()  # a crash, not a clean stop
        # The bot was down from 09:00 to 12:30: the 10:00 reminder goes out once, not three times.
        second = Serve(db, BILLING_BOT_FAKE_CLOCK="2026-11-24T12:30:00+00:00@0", **env)
        second.start()
        try:
            got = reminder_items(await inbox(http, second, want=1, settle=2.0))
            assert len(got) == 1 and got[0].startswith("Reminder: BILL-1 was resolved 3 hours ago")
        finally:
            code, err = second.stop()
            assert code == 0, err
        # 13:31: the next one, an hour after the catch-up.
        third = Serve(db, BILLING_BOT_FAKE_CLOCK="2026-11-24T13:31:00+00:00@0", **env)
        third.start()
        try:
            got = reminder_items(await inbox(http, third, want=1, settle=1.0))
            assert len(got) == 1 and "4 hours ago" in got[0]
            await post(http, third, "informed BILL-1 email")
        finally:
            third.stop()
        # After the customer was told, nothing more, whatever the time.
        fourth = Serve(db, BILLING_BOT_FAKE_CLOCK="2026-11-25T15:00:00+00:00@0", **env)
        fourth.start()
        try:
            assert reminder_items(await inbox(http, fourth, want=0, settle=1.5)) == []
        finally:
            fourth.stop()
