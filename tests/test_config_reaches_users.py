"""The config reaches people stored before it: at the start of ``serve`` and of the CLI.

zoe chats with no config (stored in UTC), then the config names her with a time
zone: from the next start on her times are shown in it and her reminders keep
its working hours, before she writes again. A language the person chose with
``language`` wins over the one the config sets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app.cli import main
from bot.app.server import build_app
from bot.clock import FakeClock
from bot.config import Settings, UserConfig
from bot.domain import Role
from bot.storage import Store, TinyDBEngine, open_store
from tests.harness import START, DeskEnv

SHANGHAI_CONFIG = """
[[users]]
name = "zoe"
time_zone = "Asia/Shanghai"
"""
# The loop's next reminder moved into Shanghai's working hours: Wednesday 09:00 there.
NEXT_IN_SHANGHAI = "2026-11-25 09:00 +0800"


async def zoe_resolves_a_case_without_config(db: Path) -> None:
    """zoe, unknown to the config, asks, takes and resolves BILL-1: stored in UTC."""
    env = DeskEnv(Settings(db_path=str(db)), Store(TinyDBEngine(db)))
    await env.store.open()
    try:
        zoe = env.chat("zoe")
        await zoe.say("ask Why two charges?", "Contoso", "yes", "skip", "skip", "charges", "ok")
        await zoe.say("take BILL-1", "resolve BILL-1 Credit note issued")
        zoe.expect("BILL-1 is resolved")
        await zoe.send("status BILL-1")
        zoe.expect("UTC")
        stored = await env.store.get_user("zoe")
        assert stored is not None and stored.time_zone == "UTC"
    finally:
        await env.store.close()


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """``serve``'s app on the store (its start-up and shutdown), on the harness clock + 1 h."""
    app = build_app(settings, open_store(settings.db_path), FakeClock(START + timedelta(hours=1)))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_serve_start_gives_a_stored_user_the_configured_time_zone(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    await zoe_resolves_a_case_without_config(db)
    settings = Settings(db_path=str(db), users=(UserConfig(name="zoe", time_zone="Asia/Shanghai"),))
    async with serve(settings) as client:
        # Before zoe writes again: the forecast is in her zone and her working hours.
        resp = await client.get(
            "/local/reminders", params={"user": "zoe", "at": "2026-11-26T00:00:00+08:00"}
        )
        lines = (await resp.json())["lines"]
        assert lines and lines[0].startswith(NEXT_IN_SHANGHAI), lines
        assert not any("UTC" in line for line in lines), lines
        # And what she is shown.
        resp = await client.post("/local/messages", json={"user": "zoe", "text": "status BILL-1"})
        shown = json.dumps((await resp.json())["replies"], ensure_ascii=False)
        assert "+0800" in shown and "UTC" not in shown, shown


def test_the_cli_applies_the_config_to_the_store_it_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.json"
    asyncio.run(zoe_resolves_a_case_without_config(db))
    config = tmp_path / "billing-bot.toml"
    config.write_text(SHANGHAI_CONFIG, encoding="utf-8")
    monkeypatch.setenv("BOT_DB", str(db))
    monkeypatch.setenv("BOT_CONFIG", str(config))
    monkeypatch.setenv("BILLING_BOT_FAKE_CLOCK", "2026-11-24T10:00:00+00:00@0")
    assert main(["reminders", "--as", "zoe", "--at", "2026-11-26T00:00:00+08:00"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(NEXT_IN_SHANGHAI), out
    assert "UTC" not in out, out


async def test_a_language_chosen_by_the_person_survives_a_start_with_a_configured_locale(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.json"
    env = DeskEnv(Settings(db_path=str(db)), Store(TinyDBEngine(db)))
    await env.store.open()
    try:
        await env.chat("zoe").send("language en")  # her own choice
        await env.chat("yan").send("help")  # no choice: the config's language will hold
    finally:
        await env.store.close()
    settings = Settings(
        db_path=str(db),
        users=(
            UserConfig(name="zoe", role=Role.LEAD, display_name="Zoe Zhou", locale="zh_CN"),
            UserConfig(name="yan", display_name="Yan Li", locale="zh_CN"),
        ),
    )
    async with serve(settings) as client:
        resp = await client.post("/local/messages", json={"user": "zoe", "text": "help"})
        zoe_help = json.dumps((await resp.json())["replies"], ensure_ascii=False)
        resp = await client.post("/local/messages", json={"user": "yan", "text": "help"})
        yan_help = json.dumps((await resp.json())["replies"], ensure_ascii=False)
    assert "Billing desk commands" in zoe_help, zoe_help
    assert "计费服务台命令" in yan_help, yan_help
    check = Store(TinyDBEngine(db))
    await check.open()
    try:
        zoe, yan = await check.get_user("zoe"), await check.get_user("yan")
    finally:
        await check.close()
    assert zoe is not None and yan is not None
    assert (zoe.locale, zoe.locale_explicit, zoe.role, zoe.display_name) == (
        "en",
        True,
        Role.LEAD,
        "Zoe Zhou",
    )
    assert (yan.locale, yan.display_name) == ("zh_CN", "Yan Li")
