"""Conversation references and proactive DMs: across a real restart, and when Teams says 403."""

from __future__ import annotations

import logging

import pytest

from bot.kernel.model import Reply
from conversations.text import plain

from .conftest import (
    ALICE,
    BILLING_CHANNEL,
    BOB,
    BOT_ID,
    BOT_NAME,
    LENA,
    BotServer,
    FakeConnector,
    Teams,
)
from .helpers import new_case, say


async def _reference(bot: BotServer, user_id: str) -> dict:  # type: ignore[type-arg]
    return (await bot.store.references(user_id)).get("teams") or {}


async def test_a_dm_after_a_real_restart(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case_id = await new_case(bot, connector, teams, BOB)
    await say(bot, connector, teams, ALICE, "help")  # Alice has talked to the bot once
    ref = await _reference(bot, "alice")
    assert ref["dm"]["conversation"]["id"] == ALICE.dm
    assert ref["dm"]["serviceUrl"] == f"{connector.url}/"

    await bot.restart()  # a new application on the same TinyDB file
    connector.clear()
    replies = await bot.local("bob", f"assign {case_id} alice")
    assert f"{case_id} now belongs to Alice Agent." in plain(replies[0]["text"])
    await connector.wait_for(lambda: connector.posts(ALICE.dm))
    (dm,) = connector.posts(ALICE.dm)
    assert dm.path == f"/v3/conversations/{ALICE.dm}/activities"  # a new message, not a reply
    assert dm.body["from"]["id"] == BOT_ID
    assert dm.body["recipient"]["id"] == ALICE.id
    assert f"Bob Agent assigned {case_id} to you." in dm.text
    assert case_id in dm.card_text()
    assert {a["title"] for a in dm.actions()} >= {"Resolve"}


async def test_a_403_marks_the_reference_dead_and_reports_false(
    bot: BotServer, connector: FakeConnector, teams: Teams, caplog: pytest.LogCaptureFixture
) -> None:
    case_id = await new_case(bot, connector, teams, BOB)
    await say(bot, connector, teams, ALICE, "help")
    connector.fail[ALICE.dm] = 403  # Alice blocked the bot
    caplog.set_level(logging.WARNING, logger="adapters.teams.channel")
    connector.clear()
    replies = await bot.local("bob", f"assign {case_id} alice")
    assert "now belongs to Alice Agent" in plain(replies[0]["text"])
    await connector.wait_for(lambda: connector.posts(ALICE.dm))
    ref = await _reference(bot, "alice")
    assert ref["dead"] is True and ref["dead_reason"] == "HTTP 403"
    assert any("marked dead" in r.getMessage() for r in caplog.records)
    # A dead reference is not tried again: the caller hears False at once.
    sends = len(connector.posts(ALICE.dm))
    alice = await bot.store.get_user("alice")
    assert await bot.runtime.deliverers["teams"](alice, [Reply(text="x")]) is False
    assert len(connector.posts(ALICE.dm)) == sends
    # When Alice writes again the reference comes back to life.
    connector.fail.clear()
    await say(bot, connector, teams, ALICE, "help")
    assert not (await _reference(bot, "alice")).get("dead")


async def test_deliverer_reports_false_on_404_and_true_when_sent(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    await say(bot, connector, teams, LENA, "help")
    deliver = bot.runtime.deliverers["teams"]
    lena = await bot.store.get_user("lena")
    assert await deliver(lena, [Reply(text="Reminder: BILL-9 is waiting")]) is True
    assert "Reminder: BILL-9" in connector.posts(LENA.dm)[-1].text
    connector.fail[LENA.dm] = 404  # the conversation is gone
    assert await deliver(lena, [Reply(text="again")]) is False
    assert (await _reference(bot, "lena"))["dead_reason"] == "HTTP 404"
    nobody = await bot.store.get_user("alice")
    assert nobody is None or await deliver(nobody, [Reply(text="x")]) is False


async def test_install_stores_references_and_says_hello(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    update = teams.activity(
        ALICE,
        kind="conversationUpdate",
        membersAdded=[{"id": BOT_ID}],
    )
    install = teams.activity(ALICE, kind="installationUpdate", action="add")
    assert await bot.post(install) == 201
    assert await bot.post(update) == 201
    assert await bot.post(update) == 201  # redelivered: one hello only
    (hello,) = connector.posts(ALICE.dm)
    assert hello.path == f"/v3/conversations/{ALICE.dm}/activities"
    assert "Billing desk commands" in hello.text
    assert (await _reference(bot, "alice"))["dm"]["conversation"]["id"] == ALICE.dm
    conv = (await bot.store.references(f"conversation:{ALICE.dm}"))["teams"]
    assert conv["type"] == "personal"
    removed = teams.activity(ALICE, kind="installationUpdate", action="remove")
    assert await bot.post(removed) == 201
    assert (await _reference(bot, "alice"))["dead_reason"] == "app uninstalled"


async def test_team_install_remembers_the_channel_and_its_members(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    update = teams.activity(
        BOB,
        kind="conversationUpdate",
        conversation=BILLING_CHANNEL,
        conversation_type="channel",
        membersAdded=[{"id": BOT_ID}, LENA.account()],
    )
    assert await bot.post(update) == 201
    assert connector.calls == []  # no hello in a channel
    conv = (await bot.store.references(f"conversation:{BILLING_CHANNEL}"))["teams"]
    assert conv["type"] == "channel" and conv["team"] == "19:team-general@thread.tacv2"
    assert conv["reference"]["bot"] == {"id": BOT_ID, "name": BOT_NAME}
    member = (await _reference(bot, "lena"))["member"]
    assert member == {"id": LENA.id, "name": LENA.name, "aad": LENA.aad}
    # Lena never opened a chat with the bot, yet a DM reaches her: a 1:1 chat is created.
    lena = await bot.store.get_user("lena")
    if lena is None:
        await bot.local("lena", "help")
        lena = await bot.store.get_user("lena")
    assert await bot.runtime.deliverers["teams"](lena, [Reply(text="Hello Lena")]) is True
    (create,) = [c for c in connector.calls if c.path == "/v3/conversations"]
    assert create.body["members"] == [{"id": LENA.id, "name": LENA.name}]
    assert create.body["channelData"] == {"tenant": {"id": LENA.tenant}}
    assert create.body["isGroup"] is False
    (dm,) = connector.posts(f"a:1created-{LENA.id}")
    assert "Hello Lena" in dm.text
