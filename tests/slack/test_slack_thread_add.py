"""A customer's reply in the thread of a case card is an ``add`` to that case (signed events).

The bot posts a case card in the channel mapped to Contoso; Carl (a Slack Connect user of
Contoso's workspace) answers in the card's thread. Slack sends that as a ``message`` event
(``message.channels``) whose ``thread_ts`` is the card's ``ts``
(https://api.slack.com/events/message: "message replies"); the payloads are shaped like
``fixtures/event_message_thread_reply.json``. A Slack retry of the same event adds nothing
more; staff chatting in the thread, and threads of other messages, get no answer.
"""

from __future__ import annotations

from typing import Any

from bot.domain import State
from tests.slack.slackfake import BOT_USER, CONTOSO_TEAM, PARTNER, Posted, SlackEnv, load


async def carls_case(slack: SlackEnv) -> Posted:
    await slack.command("ask", user="UCARL", channel="CCONTOSO")
    view = slack.fake.last_view()
    await slack.submit(view, {"category": "invoice", "description": "Why?"}, user="UCARL")
    card = slack.fake.last_message(ephemeral=False)
    assert card.channel == "CCONTOSO" and "BILL-1 · Question · Contoso" in card.text
    return card


def reply(card: Posted, text: str, *, user: str, ts: str, **extra: Any) -> dict[str, Any]:
    event = load("event_message_thread_reply")["event"]
    team = CONTOSO_TEAM if user == "UCARL" else PARTNER
    event.update(
        channel=card.channel,
        user=user,
        text=text,
        ts=ts,
        event_ts=ts,
        thread_ts=card.ts,
        parent_user_id=BOT_USER,
        team=team,
        user_team=team,
        source_team=team,
        **extra,
    )
    return event


async def comments(slack: SlackEnv) -> list[str]:
    case = await slack.case(1)
    return [str(c.details["text"]) for c in case.comments]


async def test_a_customer_reply_in_the_cards_thread_adds_to_the_case(slack: SlackEnv) -> None:
    card = await carls_case(slack)
    await slack.command("take BILL-1", user="UANA", channel="CGENERAL")
    slack.fake.reset()
    event = reply(card, "We paid on Monday, remittance REM-42", user="UCARL", ts="1700000100.1")
    status, _text = await slack.event(event, event_id="EvTHREAD1")
    assert status == 200
    assert await comments(slack) == ["We paid on Monday, remittance REM-42"]
    case = await slack.case(1)
    assert case.state == State.IN_PROGRESS
    assert case.audit[-1].action == "commented" and case.audit[-1].channel == "slack"
    # The answer is in the thread, not a new card at the top of the channel.
    answers = [c for c in slack.fake.calls_to("chat.postMessage") if c["channel"] == "CCONTOSO"]
    assert answers and all(a.get("thread_ts") == card.ts for a in answers), answers
    # The owner's DM (the notification job, sent by the scheduler).
    dm = await slack.eventually(
        lambda: [
            c
            for c in slack.fake.calls_to("chat.postMessage")
            if c["channel"] == "DANA" and "REM-42" in str(c)
        ]
    )
    assert "Carl Contoso added to BILL-1" in str(dm[0])
    # Slack retries the event (same event_id): nothing more.
    status, _text = await slack.event(event, event_id="EvTHREAD1", retry=1)
    assert status == 200
    assert await comments(slack) == ["We paid on Monday, remittance REM-42"]


async def test_staff_chat_in_the_thread_and_other_threads_get_no_answer(slack: SlackEnv) -> None:
    card = await carls_case(slack)
    slack.fake.reset()
    # Ana (staff) writes in the card's thread without addressing the bot: her colleagues' chat.
    await slack.event(reply(card, "take a look at this one", user="UANA", ts="1700000200.1"))
    # Carl answers in the thread of some other message (not a card of ours).
    other = Posted(channel="CCONTOSO", ts="1600000000.000001", body={})
    await slack.event(reply(other, "unrelated", user="UCARL", ts="1700000201.1"))
    # Carl mentions the bot in the thread: that is the app_mention (a command); the
    # message event of the same message is left out, so it is not a comment too.
    mention = f"<@{BOT_USER}> status BILL-1"
    await slack.event(reply(card, mention, user="UCARL", ts="1700000202.1"))
    # An edit of a thread reply (a subtype) is no new comment either.
    edited = reply(card, "edited", user="UCARL", ts="1700000203.1", subtype="message_changed")
    await slack.event(edited)
    assert await comments(slack) == []
    assert slack.fake.calls_to("chat.postMessage") == []
    assert slack.fake.calls_to("chat.postEphemeral") == []
    case = await slack.case(1)
    assert [a.action for a in case.audit] == ["created"]
    # "Also send to channel": still a reply in the thread.
    broadcast = reply(
        card, "also here", user="UCARL", ts="1700000204.1", subtype="thread_broadcast"
    )
    await slack.event(broadcast)
    assert await comments(slack) == ["also here"]


async def test_a_reply_on_a_finished_case_is_refused_privately(slack: SlackEnv) -> None:
    card = await carls_case(slack)
    await slack.command("take BILL-1", user="UANA", channel="CGENERAL")
    await slack.command("resolve BILL-1 credit note issued", user="UANA", channel="CGENERAL")
    slack.fake.reset()
    await slack.event(reply(card, "thanks!", user="UCARL", ts="1700000300.1"))
    assert await comments(slack) == []
    refusal = slack.fake.last_message(ephemeral=True)
    assert "can no longer be changed" in refusal.text
    call = slack.fake.calls_to("chat.postEphemeral")[-1]
    assert call["user"] == "UCARL" and call["thread_ts"] == card.ts
