"""On Teams a customer's reply to a case card is an ``add`` to that case (real activities).

Carol (a guest of Contoso's tenant) asks in the channel shared with Contoso; the bot
answers with the case card. Her reply to that card (an activity whose ``replyToId`` is the
card's activity id, in the card's thread ``…;messageid=…``) is a comment on the case, its
owner is told; Teams delivering the same activity again adds nothing more. Staff replying
to the card keep typing commands.
"""

from __future__ import annotations

from typing import Any

from bot.domain import State

from .conftest import ALICE, CAROL, SHARED_CHANNEL, BotServer, Call, FakeConnector, Teams
from .helpers import send

THREAD = f"{SHARED_CHANNEL};messageid=1700000000001"


async def carols_case(bot: BotServer, connector: FakeConnector, teams: Teams) -> Call:
    (form,) = await send(bot, connector, teams.mention_bot(CAROL, "ask", conversation=THREAD))
    values = {"category": "invoice", "description": "Why two charges?"}
    calls = await send(bot, connector, teams.submit(CAROL, form, values))
    card = next(c for c in calls if c.cards and "BILL-1" in c.card_text())
    return card


def reply(teams: Teams, card: Call, text: str, **kw: Any) -> dict[str, Any]:
    """A reply to the card in its thread (a channel: the bot is @mentioned)."""
    return teams.mention_bot(
        CAROL, text, conversation=card.conversation, reply_to=card.card_id, **kw
    )


async def test_a_customer_reply_to_the_card_adds_to_the_case(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    card = await carols_case(bot, connector, teams)
    await send(bot, connector, teams.say(ALICE, "take BILL-1"))
    activity = reply(teams, card, "We paid on Monday, remittance REM-42", activity_id="1777")
    answers = await send(bot, connector, activity)
    case = await bot.store.get_case(1)
    assert [c.details["text"] for c in case.comments] == ["We paid on Monday, remittance REM-42"]
    assert case.state == State.IN_PROGRESS and case.audit[-1].channel == "teams"
    assert any("Added to BILL-1" in a.text for a in answers), [a.body for a in answers]
    # The owner's DM, through the notification jobs.
    await connector.wait_for(
        lambda: any("REM-42" in c.text for c in connector.posts(ALICE.dm)), timeout=8.0
    )
    dm = next(c for c in connector.posts(ALICE.dm) if "REM-42" in c.text)
    assert "Carol Customer added to BILL-1" in dm.text
    # Teams delivers the same activity again: one comment.
    await bot.post(activity)
    case = await bot.store.get_case(1)
    assert len(case.comments) == 1


async def test_staff_replying_to_the_card_type_commands_and_other_replies_are_chat(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    card = await carols_case(bot, connector, teams)
    staff = teams.mention_bot(
        ALICE, "take BILL-1", conversation=card.conversation, reply_to=card.card_id
    )
    answers = await send(bot, connector, staff)
    case = await bot.store.get_case(1)
    assert case.owner == "alice" and case.comments == []
    assert answers  # answered (privately: the channel is shared with a customer)
    # A customer's message that replies to no card of ours is a command as before.
    other = teams.mention_bot(CAROL, "list", conversation=f"{SHARED_CHANNEL};messageid=42")
    (call,) = await send(bot, connector, other)
    assert "BILL-1" in call.text
    case = await bot.store.get_case(1)
    assert case.comments == []
