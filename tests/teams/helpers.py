"""Small steps shared by the Teams server tests (a new case through the ask card, …)."""

from __future__ import annotations

from typing import Any

from .conftest import BotServer, Call, FakeConnector, Teams, TeamsUser


def answers(connector: FakeConnector, activity: dict[str, Any], since: int = 0) -> list[Call]:
    """The bot's answers to ``activity``: replies to it, and updates of the card it came from.

    Other traffic (a reminder DM from the scheduler) is left out.
    """
    card = activity.get("replyToId")
    return [
        c
        for c in connector.calls[since:]
        if (c.method == "POST" and c.activity_id == activity["id"])
        or (c.method == "PUT" and card is not None and c.activity_id == card)
    ]


async def send(bot: BotServer, connector: FakeConnector, activity: dict[str, Any]) -> list[Call]:
    """Post ``activity`` to the bot, wait until it was worked off, return the answers to it."""
    before = len(connector.calls)
    assert await bot.post(activity) == 201
    return answers(connector, activity, before)


async def say(
    bot: BotServer, connector: FakeConnector, teams: Teams, user: TeamsUser, text: str
) -> list[Call]:
    """Type ``text`` in ``user``'s personal chat; the bot's answers to it (not other DMs)."""
    return await send(bot, connector, teams.say(user, text))


async def new_case(
    bot: BotServer,
    connector: FakeConnector,
    teams: Teams,
    user: TeamsUser,
    description: str = "Why two charges on invoice G012345678?",
    customer: str = "Contoso",
) -> str:
    """``ask`` in the personal chat, then submit the card: the new case id."""
    (form,) = await say(bot, connector, teams, user, f"ask {description}")
    values = {"customer": customer, "category": "charges", "description": description}
    calls = await send(bot, connector, teams.submit(user, form, values))
    card = next(c for c in calls if c.cards and "BILL-" in c.card_text())
    title = card.card["body"][0]["text"]
    return str(title.split(" ")[0])


__all__ = ["answers", "new_case", "say", "send"]
