"""Staff answered in a channel shared with a customer: internal details never go in the channel.

A Slack Connect channel or a shared Teams channel mapped to Contoso holds
Contoso's contacts too. Whatever staff ask the bot there (a card with
internal notes and the service request, the list of every customer's cases,
the customers with their tenant ids) must reach only the person who asked.
"""

from __future__ import annotations

import json
from typing import Any

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
