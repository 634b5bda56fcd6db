"""Faults at every dependency, injected by local fake servers: nothing lost, nobody left guessing.

Slack Web API: 429 with ``Retry-After``, 500, a timeout, ``channel_not_found``.
Bot Connector: 403 and 500. Partner Center: 503, a timeout, 401. For each:
the request that met the fault is acknowledged at once (never a 5xx to Slack
or Teams for it), its work is done exactly once, and what could not be shown
is either retried until it is or reported to a person (the user, or the lead
when the owner cannot be reached). The bot runs in this process
(``tests/reliability/inproc.py``) over real HTTP; only the fakes misbehave.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from bot.domain import State
from tests.reliability.figures import fault_case
from tests.reliability.inproc import LiveBot, eventually
from tests.slack.slackfake import new_case
from tests.teams.conftest import ALICE

# ---------------------------------------------------------------- Slack Web API


def slack_channel(live: LiveBot) -> Any:
    """The running SlackChannel (to shorten its Web API timeout for the timeout case)."""
    return live.runtime.deliverers["slack"].__self__  # type: ignore[attr-defined]


async def resolve_locally(live: LiveBot, number: int = 1) -> None:
    """ana takes and resolves a case in the local chat: the only Slack call left is the DM."""
    for text in (f"take BILL-{number}", f"resolve BILL-{number} credit note issued"):
        status, answer = await live.local("ana", text)
        assert status == 200, answer


async def through_backoff(live: LiveBot, key: str, attempts: int = 5) -> None:
    """Let the job ``key`` fail ``attempts`` times: after each failure, past its backoff."""
    for n in range(1, attempts):
        await eventually(lambda n=n: (live.engine.peek("jobs", key) or {}).get("attempts") == n)
        live.clock.advance(timedelta(minutes=2**n + 1))  # the backoff: 2, 4, 8, 16 minutes
        live.runtime.kick()


def dms(live: LiveBot, channel: str, text: str) -> list[str]:
    return [m.text for m in live.fake_slack.messages if m.channel == channel and text in m.text]


async def test_slack_429_on_a_dm_waits_retry_after_and_sends_once(live: LiveBot) -> None:
    await new_case(live.slack, "Why two charges?")
    live.fake_slack.fail("conversations.open", status=429, retry_after=1)
    await resolve_locally(live)
    await eventually(lambda: dms(live, "DANA", "BILL-1 is resolved"), timeout=8)
    hits = live.fake_slack.hits["conversations.open"]
    assert len(hits) == 2 and hits[1] - hits[0] >= 1.0  # waited what Slack asked for
    await asyncio.sleep(0.3)
    assert len(dms(live, "DANA", "BILL-1 is resolved")) == 1
    fault_case(
        "Slack 429 + Retry-After on conversations.open → waited, close-the-loop DM sent once"
    )


async def test_slack_500_on_a_dm_is_retried_by_the_scheduler(live: LiveBot) -> None:
    await new_case(live.slack, "Why two charges?")
    live.fake_slack.fail("chat.postMessage", status=500)
    await resolve_locally(live)
    await eventually(lambda: (live.engine.peek("jobs", "loop:1") or {}).get("attempts") == 1)
    assert dms(live, "DANA", "BILL-1 is resolved") == []  # kept, to be tried again
    live.clock.advance(timedelta(minutes=3))  # the backoff
    live.runtime.kick()
    await eventually(lambda: dms(live, "DANA", "BILL-1 is resolved"))
    await asyncio.sleep(0.3)
    assert len(dms(live, "DANA", "BILL-1 is resolved")) == 1
    fault_case("Slack 500 on the close-the-loop DM → job kept, retried after backoff, sent once")


async def test_slack_500_on_an_answer_tells_the_user_and_does_the_work_once(
    live: LiveBot,
) -> None:
    card = await new_case(live.slack, "Why two charges?")
    live.fake_slack.fail("chat.update", status=500)
    status, _ = await live.slack.click(card, "take")
    assert status == 200
    case = await live.store.get_case(1)
    assert case is not None and case.owner == "ana"
    assert sum(1 for a in case.audit if a.action == "assigned") == 1
    told = [m.text for m in live.fake_slack.messages if "Slack refused to show my answer" in m.text]
    assert told and "fatal" in told[-1]
    assert live.engine.view("inbox") == {}
    fault_case("Slack 500 on chat.update → the click done once, the user told privately")


async def test_slack_timeout_then_recovery_delivers_the_answer(live: LiveBot) -> None:
    await new_case(live.slack, "Why two charges?")
    slack_channel(live).client.timeout = 1  # seconds; Slack's own client waits 30
    release = live.fake_slack.hold("chat.postMessage")
    started = time.monotonic()
    status, body = await live.slack.command("note BILL-1 called them", settle=False)
    assert (status, body) == (200, "") and time.monotonic() - started < 1.0  # acked at once
    await asyncio.sleep(1.5)  # the first post timed out
    del live.fake_slack.holds["chat.postMessage"]
    release.set()  # Slack is back (and finishes the call that timed out, as it may)
    await asyncio.wait_for(live.runtime.wait_idle(), 10)
    case = await live.store.get_case(1)
    assert case is not None and [n.text for n in case.notes] == ["called them"]  # once
    posted = [m for m in live.fake_slack.messages if "Internal note added to BILL-1" in m.text]
    assert 1 <= len(posted) <= 2  # shown; twice only if the late call also went through
    assert live.engine.view("inbox") == {}
    fault_case("Slack Web API timeout → acked at once, answer retried, the note added once")


async def test_slack_channel_not_found_shows_the_answer_privately(live: LiveBot) -> None:
    await new_case(live.slack, "Why two charges?")
    live.fake_slack.fail("chat.postMessage", error="channel_not_found")
    status, _ = await live.slack.mention("status BILL-1", channel="CGONE")
    assert status == 200
    private = [m.text for m in live.fake_slack.messages if m.ephemeral and m.channel == "CGONE"]
    assert any("BILL-1 · Question" in t and "channel_not_found" in t for t in private)
    fault_case("Slack channel_not_found on chat.postMessage → the card shown privately")


async def test_slack_channel_not_found_on_every_dm_tells_the_lead(live: LiveBot) -> None:
    """A DM Slack keeps refusing: retried with backoff, then the lead is told, never dropped."""
    await new_case(live.slack, "Why two charges?")
    for _ in range(5):
        live.fake_slack.fail("chat.postMessage", error="channel_not_found")
    await resolve_locally(live)
    await through_backoff(live, "loop:1")
    await eventually(lambda: dms(live, "DLENA", "could not be reached about BILL-1"), timeout=5)
    assert dms(live, "DANA", "BILL-1") == []
    fault_case("Slack channel_not_found on every DM → retried 5 times with backoff, the lead told")


# ---------------------------------------------------------------- Bot Connector


async def test_bot_connector_403_on_reminders_tells_the_lead(live: LiveBot) -> None:
    status = await live.activity(live.teams.say(ALICE, "help"))  # alice's DM reference
    assert status == 201
    ask = live.teams.say(ALICE, "ask Where is my refund?")
    await live.activity(ask)
    form = next(c for c in reversed(live.connector.calls) if c.cards and c.actions())
    values = {"customer": "Contoso", "category": "refund"}
    assert await live.activity(live.teams.submit(ALICE, form, values)) == 201
    assert await live.activity(live.teams.say(ALICE, "take BILL-1")) == 201
    live.connector.fail[ALICE.dm] = 403  # alice blocked the bot
    status, answer = await live.local("alice", "resolve BILL-1 refunded")  # from her laptop
    assert status == 200 and "resolved" in answer
    await through_backoff(live, "loop:1")
    await eventually(lambda: dms(live, "DLENA", "could not be reached about BILL-1"), timeout=5)
    ref = (await live.store.references("alice"))["teams"]
    assert ref["dead"] is True and ref["dead_reason"] == "HTTP 403"
    fault_case("Bot Connector 403 on the close-the-loop DM → reference dead, the lead told")


async def test_bot_connector_500_on_a_click_answer_is_retried_not_redone(live: LiveBot) -> None:
    assert await live.activity(live.teams.say(ALICE, "ask Where is my refund?")) == 201
    form = next(c for c in reversed(live.connector.calls) if c.cards and c.actions())
    submit = live.teams.submit(ALICE, form, {"customer": "Contoso", "category": "refund"})
    assert await live.activity(submit) == 201
    card = next(
        c
        for c in reversed(live.connector.calls)
        if c.cards and any(a.get("title") == "Take" for a in c.actions())
    )
    live.connector.fail_next[ALICE.dm] = [500, 500]
    before = len(live.connector.calls)
    assert await live.activity(live.teams.click(ALICE, card, "Take")) == 201
    case = await live.store.get_case(1)
    assert case is not None and case.owner == "alice" and case.state == State.IN_PROGRESS
    assert sum(1 for a in case.audit if a.action == "assigned") == 1  # the desk ran once
    tries = live.connector.calls[before:]
    assert len(tries) >= 3 and "is yours now" in tries[-1].everything()
    assert live.engine.view("inbox") == {}
    fault_case("Bot Connector 500 (twice) on a click's answer → resent from the outbox, done once")


# ---------------------------------------------------------------- Partner Center


def modal_values(view: dict[str, Any], **changes: str) -> dict[str, str]:
    """What a person submitting the modal unchanged sends: its pre-filled values."""
    values: dict[str, str] = {}
    for block in view["blocks"]:
        if block.get("type") != "input":
            continue
        element = block["element"]
        initial = element.get("initial_value")
        option = element.get("initial_option") or {}
        values[block["block_id"]] = initial or option.get("value") or ""
    values.update(changes)
    return values


async def escalation_modal(live: LiveBot) -> dict[str, Any]:
    await new_case(live.slack, "Why two charges?")
    status, _ = await live.slack.command("take BILL-1")
    assert status == 200
    await live.slack.command("escalate BILL-1")
    view = live.fake_slack.last_view()
    assert view["callback_id"] and any(b.get("block_id") == "topic" for b in view["blocks"])
    return view


async def test_partner_center_503_is_retried_and_files_once(live: LiveBot) -> None:
    view = await escalation_modal(live)
    live.pc.fail_next(503, method="POST")
    status, answer = await live.slack.submit(view, modal_values(view))
    assert status == 200 and answer == {}
    case = await live.store.get_case(1)
    assert case is not None and case.state == State.ESCALATED
    assert len(live.pc.service_requests) == 1
    shown = [m.text for m in live.fake_slack.messages if "BILL-1" in m.text]
    assert any("escalated to Microsoft" in t for t in shown)
    fault_case("Partner Center 503 → retried with the same MS-RequestId, one request filed")


async def test_partner_center_timeout_changes_nothing_and_a_retry_files_once(
    live: LiveBot,
) -> None:
    view = await escalation_modal(live)
    before = await live.store.get_case(1)
    live.pc.delay_next(2.0, times=3, method="POST")  # filed, but every answer comes too late
    status, answer = await live.slack.submit(view, modal_values(view))
    assert status == 200 and answer.get("response_action") == "push"
    notice = str(answer)
    assert "can't tell whether the service request was filed" in notice
    assert "Trying again is safe" in notice
    after = await live.store.get_case(1)
    assert before is not None and after is not None and after.to_doc() == before.to_doc()
    live.pc.clear_faults()
    status, answer = await live.slack.submit(view, modal_values(view))
    assert status == 200 and answer == {}
    case = await live.store.get_case(1)
    assert case is not None and case.state == State.ESCALATED
    assert len(live.pc.service_requests) == 1  # the late one and the retry are one request
    fault_case("Partner Center timeout → case unchanged, told a retry is safe; retry files once")


async def test_partner_center_401_is_explained_and_nothing_changes(live: LiveBot) -> None:
    view = await escalation_modal(live)
    before = await live.store.get_case(1)
    live.pc.fail_next(401, method="POST")
    status, answer = await live.slack.submit(view, modal_values(view))
    assert status == 200 and answer.get("response_action") == "push"
    assert "Partner Center refused our credentials (HTTP 401)" in str(answer)
    after = await live.store.get_case(1)
    assert before is not None and after is not None and after.to_doc() == before.to_doc()
    assert live.pc.service_requests == {}
    fault_case("Partner Center 401 → explained (which setting to check), nothing filed or changed")
