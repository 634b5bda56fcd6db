"""Card forms, clicks that update the card in place, and nothing done twice."""

from __future__ import annotations

import asyncio
import json

from .conftest import ALICE, BOB, BotServer, FakeConnector, Teams
from .helpers import answers, new_case, say, send


async def _case(bot: BotServer, case_id: str):  # type: ignore[no-untyped-def]
    return await bot.store.get_case(int(case_id.split("-")[1]))


async def test_form_card_with_errors_then_good_values(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    (form,) = await say(bot, connector, teams, ALICE, "ask Why two charges?")
    bad = {
        "customer": "Contoso",
        "subscription_id": "not-a-guid",
        "category": "",
        "description": "Why two charges?",
    }
    (errors,) = await send(bot, connector, teams.submit(ALICE, form, bad))
    assert errors.method == "PUT" and errors.activity_id == form.card_id  # updated in place
    assert errors.path == f"/v3/conversations/{ALICE.dm}/activities/{form.card_id}"
    text = errors.card_text()
    assert "A subscription id looks like" in text
    assert "Category is required." in text
    subscription = next(b for b in errors.card["body"] if b.get("id") == "f_subscription_id")
    assert subscription["value"] == "not-a-guid"  # what was typed stays in the card
    assert bot.store.case_counts()["open"] == 0
    good = {**bad, "subscription_id": "", "category": "charges"}
    (done,) = await send(bot, connector, teams.submit(ALICE, errors, good))
    assert done.method == "PUT" and done.activity_id == form.card_id
    assert "Question BILL-1 for Contoso is open and nobody has taken it yet" in done.text
    assert "BILL-1 · Question · Contoso" in done.card_text()
    case = await _case(bot, "BILL-1")
    assert case.description == "Why two charges?" and case.audit[0].channel == "teams"


async def test_card_errors_are_the_messages_of_every_channel(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    (form,) = await say(bot, connector, teams, ALICE, "dispute G012345678")
    values = {
        "customer": "Contoso",
        "invoice": "G012345678",
        "amount": "12,50",
        "currency": "EURO",
        "reason": "Seats billed twice",
    }
    (answer,) = await send(bot, connector, teams.submit(ALICE, form, values))
    teams_errors = answer.card_text()
    (local,) = await bot.local("alice", form_id="dispute", form_values=values)
    assert local["kind"] == "error"
    for message in local["form"]["errors"].values():
        assert message in teams_errors
    assert "12.50" in teams_errors  # "use a dot for decimals"


async def test_a_click_updates_the_card_in_place(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case_id = await new_case(bot, connector, teams, ALICE)
    (card, _history) = await say(bot, connector, teams, BOB, f"status {case_id}")
    assert {a["title"] for a in card.actions()} >= {"Take", "Resolve"}
    assert card.action("Take")["data"] == {
        "action": "take",
        "case_id": case_id,
        "stage": (await _case(bot, case_id)).stage,
        "value": None,
    }
    (update,) = await send(bot, connector, teams.click(BOB, card, "Take"))
    assert update.method == "PUT"
    assert update.path == f"/v3/conversations/{BOB.dm}/activities/{card.card_id}"
    assert f"{case_id} is yours now." in update.text
    assert "Bob Agent" in update.card_text()
    assert "Take" not in [a["title"] for a in update.actions()]
    case = await _case(bot, case_id)
    assert case.owner == "bob" and case.audit[-1].channel == "teams"


async def test_a_card_posted_before_the_rename_acts_once_then_is_stale(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    """A card 79a86d9 posted names the card's stage ``version`` in its buttons' data."""
    case_id = await new_case(bot, connector, teams, ALICE)
    (card, _history) = await say(bot, connector, teams, BOB, f"status {case_id}")
    stage = (await _case(bot, case_id)).stage
    old = {"action": "take", "case_id": case_id, "version": stage, "value": None}
    (update,) = await send(bot, connector, teams.activity(BOB, value=old, reply_to=card.card_id))
    assert f"{case_id} is yours now." in update.text
    case = await _case(bot, case_id)
    assert case.owner == "bob" and case.stage != stage
    # Alice clicks the same old card in her chat: out of date, refused as stale.
    (alice_card, _history) = await say(bot, connector, teams, ALICE, f"status {case_id}")
    stale = teams.activity(ALICE, value=old, reply_to=alice_card.card_id)
    texts = [c.text for c in await send(bot, connector, stale)]
    assert any("Already done" in t for t in texts), texts
    after = await _case(bot, case_id)
    assert (after.owner, after.stage, after.version) == ("bob", case.stage, case.version)


async def test_a_redelivered_activity_is_done_once(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case_id = await new_case(bot, connector, teams, ALICE)
    activity = teams.say(BOB, f"take {case_id}")
    before = len(connector.calls)
    # Teams retries when it did not see the answer in time: same activity, same id.
    statuses = await asyncio.gather(*(bot.post(activity, wait=False) for _ in range(3)))
    assert all(s == 201 for s in statuses)
    await bot.idle()
    assert await bot.post(activity) == 201  # and once more, after it was done
    done = answers(connector, activity, before)
    assert len(done) == 1 and f"{case_id} is yours now." in done[0].text
    case = await _case(bot, case_id)
    assert [a.action for a in case.audit].count("assigned") == 1


async def test_a_redelivered_form_submission_creates_one_case(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    (form,) = await say(bot, connector, teams, ALICE, "ask Refund please")
    submit = teams.submit(ALICE, form, {"customer": "Contoso", "category": "refund"})
    await asyncio.gather(bot.post(submit, wait=False), bot.post(submit, wait=False))
    await bot.idle()
    await bot.post(submit)
    assert bot.store.case_counts()["open"] == 1


async def test_a_double_click_does_nothing_twice(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case_id = await new_case(bot, connector, teams, ALICE)
    (card, _history) = await say(bot, connector, teams, BOB, f"status {case_id}")
    first, second = teams.click(BOB, card, "Take"), teams.click(BOB, card, "Take")
    assert first["id"] != second["id"] and first["value"] == second["value"]
    before = len(connector.calls)
    await bot.post(first, wait=False)
    await bot.post(second)
    case = await _case(bot, case_id)
    assert [a.action for a in case.audit].count("assigned") == 1
    mine = {id(c) for c in answers(connector, first, before) + answers(connector, second, before)}
    calls = [c for c in connector.calls[before:] if id(c) in mine]
    texts = [c.text for c in calls]
    assert sum("is yours now" in t for t in texts) == 1
    # The second click found the card out of date: "already done", the card updated, no change.
    assert any("Already done" in t for t in texts)
    assert all(c.activity_id == card.card_id for c in calls if c.method == "PUT")
    stage = case.stage
    await bot.post(teams.click(BOB, card, "Take"))
    assert (await _case(bot, case_id)).stage == stage


async def test_a_double_click_on_a_form_button_opens_one_form(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case_id = await new_case(bot, connector, teams, ALICE)
    (card, _history) = await say(bot, connector, teams, ALICE, f"status {case_id}")
    before = len(connector.calls)
    await bot.post(teams.click(ALICE, card, "Resolve"), wait=False)
    await bot.post(teams.click(ALICE, card, "Resolve"))
    forms = [
        c for c in connector.calls[before:] if c.cards and "billing_form" in json.dumps(c.body)
    ]
    assert len(forms) == 1
    assert forms[0].action("Submit")["data"]["billing_form"] == "resolve"


async def test_teams_gets_its_answer_before_the_work_is_done(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    connector.gate = asyncio.Event()  # the Bot Connector is slow to take the bot's answer
    loop = asyncio.get_running_loop()
    started = loop.time()
    status = await bot.post(teams.say(ALICE, "help"), wait=False)
    assert status == 201 and loop.time() - started < 2
    assert len(bot.store.engine.view("inbox")) == 1  # recorded durably before the answer
    await connector.wait_for(lambda: len(connector.calls) == 1)
    connector.gate.set()
    await bot.idle()
    assert "Billing desk commands" in connector.calls[0].text
    assert bot.store.engine.view("inbox") == {}


async def test_answers_are_resent_after_teams_failed_without_running_the_desk_again(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    (form,) = await say(bot, connector, teams, ALICE, "ask Where is my refund?")
    submit = teams.submit(ALICE, form, {"customer": "Fabrikam", "category": "refund"})
    connector.fail_next[ALICE.dm] = [503]  # the first answer hits a Bot Connector hiccup
    calls = await send(bot, connector, submit)
    posts = [c for c in calls if c.method == "POST"]
    assert [("New customer Fabrikam created." in c.text) for c in posts] == [True, True]
    (card,) = [c for c in calls if c.method == "PUT"]
    assert "Question BILL-1 for Fabrikam is open and nobody has taken it yet" in card.text
    assert bot.store.case_counts()["open"] == 1  # the desk ran once
    assert bot.store.engine.view("inbox") == {}


async def test_an_answer_teams_refuses_is_dropped_not_retried(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    connector.fail[ALICE.dm] = 403  # e.g. the bot was removed from this conversation
    calls = await send(bot, connector, teams.say(ALICE, "customer Contoso"))  # two answers
    assert len(calls) == 2  # both answers tried once, none again
    assert bot.store.engine.view("inbox") == {}
    assert not [k for k in bot.store.engine.view("conversations") if k.startswith("teams-outbox")]


async def test_an_inbox_item_redone_after_a_crash_changes_nothing(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    """A crash after the desk's change but before the inbox item was removed: it runs again."""
    case_id = await new_case(bot, connector, teams, ALICE)
    activity = teams.say(BOB, f"take {case_id}")
    (first,) = await send(bot, connector, activity)
    assert "is yours now" in first.text
    stage = (await _case(bot, case_id)).stage
    # What the inbox held for this activity, queued again as a restart would find it.
    key = f"teams:{BOB.dm}:{activity['id']}"
    payload = {"kind": "message", "activity": activity, "key": key}
    before = len(connector.calls)
    assert await bot.runtime.enqueue("teams", payload) is True
    await bot.idle()
    (again,) = answers(connector, activity, before)
    assert "Already done" in again.text
    assert (await _case(bot, case_id)).stage == stage
