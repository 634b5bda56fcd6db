"""Staff answered in a channel shared with a customer: internal details never go in the channel.

A Slack Connect channel or a shared Teams channel mapped to Contoso holds
Contoso's contacts too. Whatever staff ask the bot there (a card with
internal notes and the service request, the list of every customer's cases,
the customers with their tenant ids) must reach only the person who asked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.domain import State
from bot.kernel.model import ActionRef
from tests.security.drivers import slack_driver, teams_driver
from tests.security.matrix import (
    DESC_B,
    NOTE_SECRET,
    PEOPLE,
    SR_SECRET,
    seed_case,
    settle_jobs,
)

LEAD = next(p for p in PEOPLE if p.key == "lead")
NEVER_IN_CHANNEL = (NOTE_SECRET, SR_SECRET, DESC_B, "Fabrikam", "bbbbbbbb-0000")


def secrets_in(payload: Any) -> list[str]:
    text = json.dumps(payload, ensure_ascii=False).lower()
    return [s for s in NEVER_IN_CHANNEL if s.lower() in text]


async def test_slack_staff_answers_in_a_customer_channel_are_ephemeral() -> None:
    async with slack_driver() as slack:
        slack.people["lead"] = ("ULENA", "CCONTOSO")
        case = await seed_case(slack.runtime, State.ESCALATED)
        fresh = await seed_case(slack.runtime, State.IN_PROGRESS)
        await settle_jobs(slack.runtime)
        shown = []
        for text in (f"status {case.id}", "list all", "customers", f"note {case.id} x"):
            shown.append(await slack.send(LEAD, text))
        shown.append(await slack.click(LEAD, ActionRef("resolve", fresh.id, fresh.stage)))
        assert NOTE_SECRET in shown[0].raw  # the lead did see the card, privately
        for m in slack.fake.messages:
            public = m.channel == "CCONTOSO" and not m.ephemeral
            public |= m.body.get("response_type") == "in_channel"
            assert not (public and secrets_in(m.body)), (secrets_in(m.body), m.body)


async def test_teams_staff_answers_in_a_shared_channel_stay_private() -> None:
    from tests.teams.conftest import LENA, SHARED_CHANNEL

    async with teams_driver() as teams:
        teams.people["lead"] = (LENA, SHARED_CHANNEL, "channel")
        case = await seed_case(teams.runtime, State.ESCALATED)
        await settle_jobs(teams.runtime)
        for text in (f"status {case.id}", "list all", "customers"):
            await teams.send(LEAD, text)
        calls = teams.connector.calls
        in_channel = [c for c in calls if c.conversation.startswith(SHARED_CHANNEL)]
        assert in_channel and all("personal chat" in c.text for c in in_channel)
        for call in in_channel:
            assert not secrets_in(call.body), (secrets_in(call.body), call.body)
        # The lead got the card, with its internal note, in the personal chat.
        private = [c for c in calls if c.method == "POST" and not c.conversation.startswith("19:")]
        assert any(NOTE_SECRET in json.dumps(c.body) for c in private)


# ------------------------------------------------ one rule for Slack and Teams
# Who asks `status` in the channel shared with Contoso, and where the answer must go. The
# rule is conversations.sharing.answer_privately's; both channels must follow it alike.
WHO = {
    "staff": ("lead", "private"),  # billing staff: the card carries the internal note
    "unknown": ("lead", "private"),  # no stored record of the sender: may be staff
    "customer": ("customer_a", "channel"),  # Contoso's contact: their own case, in the channel
}


def forget_sender(runtime: Any, channel: str, external: str) -> None:
    """The desk has no stored record of this sender (the directory goes on without one when it
    cannot write it): the store finds nobody under their channel identity."""
    store = runtime.store
    real = store.user_by_identity

    async def lookup(where: str, who: str) -> Any:
        return None if (where, who) == (channel, external) else await real(where, who)

    store.user_by_identity = lookup


async def slack_answer_goes(who: str) -> str:
    key, _expected = WHO[who]
    person = next(p for p in PEOPLE if p.key == key)
    async with slack_driver() as slack:
        slack.people["lead"] = ("ULENA", "CCONTOSO")  # customer_a writes in CCONTOSO already
        if who == "unknown":
            forget_sender(slack.runtime, "slack", "ULENA")
        case = await seed_case(slack.runtime, State.ESCALATED)
        await settle_jobs(slack.runtime)
        mark = len(slack.fake.messages)
        answer = await slack.send(person, f"status {case.id}")
        assert case.id in answer.raw, answer.raw  # answered, somewhere
        public = [
            m.body
            for m in slack.fake.messages[mark:]
            if (m.channel == "CCONTOSO" and not m.ephemeral)
            or m.body.get("response_type") == "in_channel"
        ]
        for body in public:
            assert not secrets_in(body) and NOTE_SECRET not in json.dumps(body), body
        return "channel" if any(case.id in json.dumps(b) for b in public) else "private"


async def teams_answer_goes(who: str, *, dm_gone: bool = False) -> tuple[str, list[str]]:
    """Where the answer went, and the texts the shared channel got."""
    from tests.teams.conftest import LENA, SHARED_CHANNEL

    key, _expected = WHO[who]
    person = next(p for p in PEOPLE if p.key == key)
    async with teams_driver() as teams:
        teams.people["lead"] = (LENA, SHARED_CHANNEL, "channel")
        if who == "unknown":
            forget_sender(teams.runtime, "teams", LENA.aad)
        if dm_gone:  # the personal chat is gone (the app was uninstalled there)
            await teams.runtime.store.save_reference("lena", "teams", {"dead": True})
        case = await seed_case(teams.runtime, State.ESCALATED)
        await settle_jobs(teams.runtime)
        before = len(teams.connector.calls)
        await teams.send(person, f"status {case.id}")
        calls = teams.connector.calls[before:]
        in_channel = [c for c in calls if c.conversation.startswith(SHARED_CHANNEL)]
        for call in in_channel:
            assert not secrets_in(call.body) and NOTE_SECRET not in json.dumps(call.body)
        private = [c for c in calls if c.method == "POST" and not c.conversation.startswith("19:")]
        shown_in_channel = any(case.id in json.dumps(c.body) for c in in_channel)
        if not shown_in_channel and not dm_gone:
            assert any(NOTE_SECRET in json.dumps(c.body) for c in private)  # the card, privately
        return ("channel" if shown_in_channel else "private"), [c.text for c in in_channel]


@pytest.mark.parametrize("who", sorted(WHO))
async def test_slack_and_teams_keep_the_same_answers_private(who: str) -> None:
    """Staff, an unknown sender and a customer's contact: both channels agree where the answer
    goes. Before, Teams answered a sender it had no record of in the shared channel."""
    _key, expected = WHO[who]
    slack = await slack_answer_goes(who)
    teams, channel_texts = await teams_answer_goes(who)
    assert (slack, teams) == (expected, expected)
    if expected == "private":
        assert channel_texts and all("personal chat" in t for t in channel_texts)


async def test_teams_unknown_sender_without_a_personal_chat_gets_only_a_note() -> None:
    """No personal chat can be had: the channel learns only that the answer is not shown there."""
    went, texts = await teams_answer_goes("unknown", dm_gone=True)
    assert went == "private"
    assert texts == [
        "This channel is shared with a customer, so I cannot show this answer here. "
        "Please write to me in our personal chat."
    ]
