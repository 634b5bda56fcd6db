"""Clicks, DMs, mentions, retries, rate limits, escaping and roles — over the real server."""

from __future__ import annotations

import json
import logging
import time

import pytest

from bot.domain import Role, State
from tests.slack.slackfake import ASK_VALUES, BOT_USER, PARTNER, SlackEnv, load, new_case


async def test_a_click_updates_the_card_in_place_and_audits_the_slack_user(
    slack: SlackEnv,
) -> None:
    card = await new_case(slack, "Why two charges?")
    posted = len(slack.fake.calls_to("chat.postMessage"))
    status, body = await slack.click(card, "take", user="UBOB")
    assert (status, body) == (200, "")
    update = slack.fake.calls_to("chat.update")[-1]
    assert update["channel"] == "CGENERAL" and update["ts"] == card.ts
    now = slack.fake.message(card.ts)
    assert "in progress" in now.text and "Bob Builder" in now.text
    assert now.button("resolve")["value"] == "resolve|BILL-1|3"  # the card's new stage
    assert len(slack.fake.calls_to("chat.postMessage")) == posted  # no new card
    note = slack.fake.last_message(ephemeral=True)
    assert "BILL-1 is yours now" in note.text  # told only to the clicker
    case = await slack.case(1)
    assert case.owner == "slack:UBOB"
    assert [(a.actor, a.channel, a.action) for a in case.audit[1:]] == [
        ("slack:UBOB", "slack", "assigned"),
        ("slack:UBOB", "slack", "started"),
    ]
    bob = await slack.runtime.store.get_user("slack:UBOB")
    assert bob is not None and bob.display_name == "Bob Builder"  # from users.info
    assert bob.time_zone == "America/New_York" and bob.role == Role.AGENT


async def test_a_double_click_does_nothing_twice(slack: SlackEnv) -> None:
    card = await new_case(slack, "Why two charges?")
    await slack.click(card, "take", settle=False)
    await slack.click(card, "take", user="UBOB")
    case = await slack.case(1)
    assert case.owner == "ana"
    assert [a.action for a in case.audit] == ["created", "assigned", "started"]
    assert "Already done" in slack.fake.last_message(ephemeral=True).text
    assert "ana" in slack.fake.message(card.ts).text.lower()


async def test_a_double_click_on_a_form_button_opens_one_modal(slack: SlackEnv) -> None:
    card = await new_case(slack, "Why two charges?")
    views = len(slack.fake.views)
    await slack.click(card, "resolve", settle=False)
    await slack.click(card, "resolve")
    assert len(slack.fake.views) in (views + 1, views + 2)
    # Closing the modal and clicking again later opens it again: the key was released.
    opened = len(slack.fake.views)
    await slack.click(card, "resolve")
    assert len(slack.fake.views) == opened + 1
    assert (await slack.case(1)).state == State.OPEN


async def test_a_retried_event_is_handled_once(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    status, _ = await slack.dm("note BILL-1 called her", event_id="EvNOTE1")
    assert status == 200
    calls = len(slack.fake.calls)
    status, _ = await slack.dm("note BILL-1 called her", event_id="EvNOTE1", retry=1)
    assert status == 200
    status, _ = await slack.dm("note BILL-1 called her", event_id="EvNOTE1", retry=2)
    assert status == 200
    case = await slack.case(1)
    assert [n.text for n in case.notes] == ["called her"]
    assert len(slack.fake.calls) == calls  # the retries touched nothing


async def test_dm_answers_and_stores_the_reference(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    await slack.dm("status BILL-1")
    answer = slack.fake.last_message()
    assert answer.channel == "DANA" and not answer.ephemeral
    assert "BILL-1 · Question · Contoso" in answer.text and "History of BILL-1" in answer.text
    refs = await slack.runtime.store.references("ana")
    assert refs["slack"] == {"team": PARTNER, "user": "UANA", "channel": "DANA"}


async def test_open_form_button_from_a_dm(slack: SlackEnv) -> None:
    await slack.dm("ask Why two charges &lt;b&gt;?")  # as Slack sends "<b>"
    prompt = slack.fake.last_message()
    assert prompt.channel == "DANA"
    assert "step 1 of" in prompt.text  # the typed path still works
    button = prompt.button("open_form")
    assert button["text"]["text"] == "Open form" and button["value"].endswith("|ask")
    assert slack.fake.views == []  # a DM carries no trigger_id
    await slack.click(prompt, "open_form")
    view = slack.fake.last_view()
    description = next(b for b in view["blocks"] if b.get("block_id") == "description")
    assert description["element"]["initial_value"] == "Why two charges <b>?"
    values = {"customer": "Contoso", "category": "invoice", "description": "Why two charges?"}
    status, answer = await slack.submit(view, values)
    assert answer == {}
    card = slack.fake.last_message()
    assert card.channel == "DANA" and "BILL-1 · Question · Contoso" in card.text
    # The form is done: the next DM is a command again, not an answer.
    await slack.dm("list")
    assert "Open cases" in slack.fake.last_message().text


async def test_open_form_for_a_case_form_in_a_dm(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    await slack.dm("resolve BILL-1")
    prompt = slack.fake.last_message()
    await slack.click(prompt, "open_form")
    view = slack.fake.last_view()
    assert json.loads(view["private_metadata"])["x"]["case"] == "BILL-1"
    await slack.submit(view, {"resolution": "Credit note issued"})
    assert (await slack.case(1)).state == State.RESOLVED


async def test_mention_in_a_channel(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    posted = len(slack.fake.calls_to("chat.postMessage"))
    await slack.mention("status BILL-1")
    visible = slack.fake.calls_to("chat.postMessage")
    assert len(visible) == posted + 1 and visible[-1]["channel"] == "CGENERAL"
    history = slack.fake.calls_to("chat.postEphemeral")[-1]
    assert history["user"] == "UANA" and "History of BILL-1" in json.dumps(history)
    await slack.mention("ask")
    prompt = slack.fake.last_message(ephemeral=True)
    assert prompt.button("open_form")  # no trigger_id in a mention either


async def test_own_and_other_bots_messages_are_ignored(slack: SlackEnv) -> None:
    store = slack.runtime.store
    for fixture in ("event_bot_message", "event_message_changed"):
        body = load(fixture)
        await slack.event(body["event"])
    own = load("event_message_im")["event"]
    own.update(user=BOT_USER, text="help", bot_id="BBOT")
    await slack.event(own)
    own_no_bot_id = load("event_message_im")["event"]
    own_no_bot_id.update(user=BOT_USER, text="help")
    await slack.event(own_no_bot_id)
    posting = [c for c in slack.fake.calls if c.method.startswith(("chat.", "views."))]
    assert posting == []
    assert store.engine.view("inbox") == {}
    assert await store.users() == []


async def test_user_text_arrives_escaped(slack: SlackEnv) -> None:
    evil = "<!channel> pay now & <https://evil.example|click here> <@ULENA>"
    await new_case(slack, evil)
    await slack.command("status BILL-1")
    await slack.command("list")
    await slack.dm("note BILL-1 <!here> &amp; more &lt;!channel&gt;")  # as Slack sends it
    await slack.dm("status BILL-1")
    shown = [
        c.args
        for c in slack.fake.calls
        if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url")
    ]
    dumped = json.dumps(shown)
    assert "&lt;!channel&gt; pay now &amp; &lt;https://evil.example|click here&gt;" in dumped
    assert "@here &amp; more &lt;!channel&gt;" in dumped
    assert (await slack.case(1)).notes[-1].text == "@here & more <!channel>"  # stored as typed
    for forbidden in ("<!channel>", "<!here>", "<https://evil", "<@ULENA>"):
        assert forbidden not in dumped


async def test_rate_limited_then_success(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    slack.fake.fail("chat.postMessage", status=429, retry_after=1)
    before = len(slack.fake.messages)
    started = time.monotonic()
    await slack.command("status BILL-1")
    hits = slack.fake.hits["chat.postMessage"][-2:]
    assert hits[1] - hits[0] >= 1.0  # waited Retry-After
    assert time.monotonic() - started >= 1.0
    visible = [m for m in slack.fake.messages[before:] if not m.ephemeral]
    assert len(visible) == 1 and "BILL-1 · Question" in visible[0].text


async def test_web_api_errors_are_logged_and_the_user_told(
    slack: SlackEnv, caplog: pytest.LogCaptureFixture
) -> None:
    await new_case(slack, "Why two charges?")
    caplog.set_level(logging.WARNING, logger="adapters.slack")
    # Not a member of the channel (a mention: no response_url) → shown to the user privately.
    slack.fake.fail("chat.postMessage", error="not_in_channel")
    await slack.mention("status BILL-1", channel="CPRIVATE")
    private = [m for m in slack.fake.messages if m.ephemeral and m.channel == "CPRIVATE"]
    assert any("BILL-1 · Question" in m.text and "not_in_channel" in m.text for m in private)
    # Any other refusal: logged, and the user is told.
    slack.fake.fail("chat.update", error="invalid_blocks")
    card = slack.fake.messages[0]
    await slack.click(card, "take")
    assert "invalid_blocks" in caplog.text
    told = [m.text for m in slack.fake.messages if m.ephemeral and "Slack refused" in m.text]
    assert told and "invalid_blocks" in told[-1]
    assert (await slack.case(1)).owner == "ana"  # the work itself was done once


async def test_a_slash_command_where_the_bot_is_not_a_member(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    slack.fake.fail("chat.postMessage", error="not_in_channel")
    await slack.command("status BILL-1", channel="CELSEWHERE")
    visible = slack.fake.last_message(ephemeral=False)
    assert visible.body.get("response_type") == "in_channel"  # through the response_url
    assert "BILL-1 · Question" in visible.text
    # A modal's result, too: the response_url of the command that opened it posts the card.
    await slack.command("ask", channel="CELSEWHERE")
    slack.fake.fail("chat.postMessage", error="not_in_channel")
    await slack.submit(slack.fake.last_view(), {**ASK_VALUES, "description": "Second one"})
    visible = slack.fake.last_message(ephemeral=False)
    assert visible.body.get("response_type") == "in_channel" and "BILL-2" in visible.text


async def test_assignment_dm_through_conversations_open(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    await slack.command("assign BILL-1 <@UBOB|bob>")
    await slack.runtime.scheduler.tick()
    # The background scheduler may have claimed the DM's job first: wait for its send.
    dm = await slack.eventually(lambda: [m for m in slack.fake.messages if m.channel == "DBOB"])
    opened = slack.fake.calls_to("conversations.open")
    assert opened and opened[-1]["users"] == "UBOB"
    assert dm and "assigned BILL-1 to you" in dm[-1].text and dm[-1].buttons()
    refs = await slack.runtime.store.references("slack:UBOB")
    assert refs["slack"]["channel"] == "DBOB" and refs["slack"]["user"] == "UBOB"
    # Bob resolves from the card in his DM: the modal's result updates that DM card in place.
    await slack.click(dm[-1], "resolve", user="UBOB")
    await slack.submit(slack.fake.last_view(), {"resolution": "Credit note issued"}, user="UBOB")
    update = slack.fake.calls_to("chat.update")[-1]
    assert update["channel"] == "DBOB" and update["ts"] == dm[-1].ts
    assert (await slack.case(1)).state == State.RESOLVED


async def test_customer_sees_only_their_tenant(slack: SlackEnv) -> None:
    await new_case(slack, "Contoso question")
    await new_case(slack, "Fabrikam question", customer="Fabrikam")
    # Carl is a Slack Connect user (team TCONTOSO) in the channel mapped to Contoso.
    await slack.command("list all", user="UCARL", channel="CCONTOSO")
    answer = slack.fake.last_message(ephemeral=True).text
    assert "BILL-1" in answer and "BILL-2" not in answer
    await slack.command("status BILL-2", user="UCARL", channel="CCONTOSO")
    assert "BILL-2 · " not in slack.fake.last_message().text
    carl = await slack.runtime.store.user_by_identity("slack", "UCARL")
    assert carl is not None and carl.role == Role.CUSTOMER
    # His own question: the modal has no customer field; the card shows no buttons.
    await slack.command("ask", user="UCARL", channel="CCONTOSO")
    view = slack.fake.last_view()
    assert "customer" not in [b.get("block_id") for b in view["blocks"]]
    await slack.submit(view, {"category": "invoice", "description": "Why?"}, user="UCARL")
    card = slack.fake.last_message(ephemeral=False)
    assert card.channel == "CCONTOSO" and "BILL-3 · Question · Contoso" in card.text
    assert card.buttons() == []
    # Outside the mapped channel Carl has no role: help only.
    await slack.command("list", user="UCARL", channel="CGENERAL")
    assert "don't have a role" in slack.fake.last_message(ephemeral=True).text
    # Staff in the customer's channel: the card (with internal notes) stays private.
    visible = len(slack.fake.calls_to("chat.postMessage"))
    await slack.command("note BILL-3 internal: check the invoice", channel="CCONTOSO")
    assert len(slack.fake.calls_to("chat.postMessage")) == visible
    assert "internal: check" in slack.fake.last_message(ephemeral=True).text


async def test_acks_fast_while_the_web_api_hangs(slack: SlackEnv) -> None:
    release = slack.fake.hold("users.info")
    for send in (
        lambda: slack.command("help", settle=False),
        lambda: slack.post(
            json.dumps({**load("event_message_im"), "event_id": "EvFAST"}),
            "application/json",
            settle=False,
        ),
    ):
        started = time.monotonic()
        status, _ = await send()
        assert status == 200 and time.monotonic() - started < 1.0
    assert len(slack.runtime.store.engine.view("inbox")) >= 1  # recorded, waiting for Slack
    del slack.fake.holds["users.info"]
    release.set()
    await slack.settle()
    assert "`ask [text]`" in slack.fake.last_message(ephemeral=True).text


async def test_users_info_is_cached(slack: SlackEnv) -> None:
    for text in ("help", "list", "customers"):
        await slack.command(text)
    await slack.dm("help")
    assert [c["user"] for c in slack.fake.calls_to("users.info")] == ["UANA"]


async def test_an_ephemeral_card_is_replaced_through_the_response_url(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?", channel="CCONTOSO")
    await slack.command("status BILL-1", channel="CCONTOSO")  # staff in a customer channel
    card = next(m for m in reversed(slack.fake.messages) if m.ephemeral and m.buttons())
    updates = len(slack.fake.calls_to("chat.update"))
    await slack.click(card, "take")
    assert len(slack.fake.calls_to("chat.update")) == updates  # cannot chat.update an ephemeral
    replaced = [
        c.args
        for c in slack.fake.calls
        if c.method == "response_url" and c.args.get("replace_original") is True
    ]
    assert len(replaced) == 1 and "in progress" in json.dumps(replaced[0])
    assert "in progress" in slack.fake.message(card.ts).text  # the same ephemeral, replaced


async def test_a_card_slack_will_not_update_is_replaced_through_the_response_url(
    slack: SlackEnv,
) -> None:
    card = await new_case(slack, "Why two charges?")
    slack.fake.fail("chat.update", error="cant_update_message")
    await slack.click(card, "take")
    replaced = [c.args for c in slack.fake.calls if c.method == "response_url"]
    assert any(
        r.get("replace_original") is True and "in progress" in json.dumps(r) for r in replaced
    )


async def test_an_error_no_field_shows_is_pushed_over_the_form(slack: SlackEnv) -> None:
    await slack.command("dispute G012345678")
    values = {
        "customer": "Contoso",
        "invoice": "G012345678",
        "amount": "12.50",
        "currency": "EUR",
        "reason": "Charged twice",
    }
    await slack.submit(slack.fake.last_view(), values)
    await slack.command("resolve BILL-1")
    view = slack.fake.last_view()
    # A credit over the disputed amount is the credited field's own check (the form engine
    # checks each field where it is asked): the error goes on that field.
    status, answer = await slack.submit(
        view, {"outcome": "credit_granted", "credited": "99.00 EUR", "resolution": ""}
    )
    assert status == 200 and answer["response_action"] == "errors"
    assert "more than the disputed 12.50 EUR" in answer["errors"]["credited"]
    assert (await slack.case(1)).state != State.RESOLVED
    status, answer = await slack.submit(
        view, {"outcome": "denied", "credited": "", "resolution": "Microsoft says no"}
    )
    assert answer == {}
    # Never reported to Microsoft: the bot asks first; a double click resolves once.
    asked = slack.fake.last_message()
    assert "was never reported to Microsoft" in asked.text
    assert (await slack.case(1)).state != State.RESOLVED
    assert asked.button("answer")["text"]["text"] == "Resolve anyway"
    await slack.click(asked, "answer", settle=False)
    await slack.click(asked, "answer")
    case = await slack.case(1)
    assert case.state == State.RESOLVED and case.dispute.credited is None
    assert [a.action for a in case.audit].count("resolved") == 1
    # An error only the change itself finds (the case is already hers) belongs to no field.
    await slack.command("assign BILL-1")
    status, answer = await slack.submit(slack.fake.last_view(), {"user": "UANA"})
    assert status == 200 and answer["response_action"] == "push"
    assert "already belongs to that person" in json.dumps(answer["view"])
    assert answer["view"]["close"]["text"] == "Back"


async def test_without_users_info_nobody_is_taken_for_staff(slack: SlackEnv) -> None:
    await new_case(slack, "Contoso question")
    await new_case(slack, "Fabrikam question", customer="Fabrikam")
    # users.info fails for a user nobody configured: their workspace is unknown.
    slack.fake.fail("users.info", error="user_not_found")
    await slack.command("list all", user="UMALLORY", channel="CCONTOSO")
    answer = slack.fake.last_message(ephemeral=True).text
    assert "BILL-2" not in answer  # at most a customer of the channel's tenant, never staff
    mallory = await slack.runtime.store.user_by_identity("slack", "UMALLORY")
    assert mallory is not None and mallory.role == Role.CUSTOMER
