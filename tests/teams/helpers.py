"""Small steps shared by the Teams server tests (a new case through the ask card, …)."""

from __future__ import annotations

from .conftest import BotServer, Call, FakeConnector, Teams, TeamsUser


async def say(
    bot: BotServer, connector: FakeConnector, teams: Teams, user: TeamsUser, text: str
) -> list[Call]:
    """Type ``text`` in ``user``'s personal chat; the calls the bot made in answer."""
    before = len(connector.calls)
    assert await bot.post(teams.say(user, text)) == 201
    return connector.calls[before:]


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
    before = len(connector.calls)
    values = {"customer": customer, "category": "charges", "description": description}
    assert await bot.post(teams.submit(user, form, values)) == 201
    calls = connector.calls[before:]
    card = next(c for c in calls if c.cards and "BILL-" in c.card_text())
    title = card.card["body"][0]["text"]
    return str(title.split(" ")[0])


__all__ = ["new_case", "say"]
