"""The Slack issue's scenario through Teams and through the local channel: the same case results.

A question from ``ask`` to customer informed: on Teams with the form card,
clicks and the close-the-loop DM; locally typed line by line into
``POST /local/messages`` of a second server. Both stores end with the same
case and the same audit trail (ids, times and channel names aside).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.domain import State
from conversations.text import plain
from tests.harness import PARITY_INFORMED, PARITY_SCRIPT, assert_same_case

from .conftest import ALICE, BotServer, FakeConnector, Teams, teams_settings
from .helpers import say, send


async def run_local(tmp_path: Path, connector: FakeConnector) -> dict[str, Any]:
    # The same people, known to this desk by name only: close-the-loop DMs land in the
    # local inbox that ``billing-bot chat`` shows.
    base = teams_settings(tmp_path / "local.json")
    users = tuple(replace(u, teams=None) for u in base.users)
    server = await BotServer(replace(base, users=users), connector).start()
    try:
        said = []
        for line in PARITY_SCRIPT:
            replies = await server.local("alice", line, conversation="terminal:alice")
            said.append(" ".join(plain(r["text"]) for r in replies))
        # As on Teams, the close-the-loop reminder reaches Alice before she records it.
        reminder: list[Any] = []
        for _ in range(400):
            _status, inbox = await server.get("/local/inbox?user=alice")
            reminder += inbox["items"]
            if reminder:
                break
            await asyncio.sleep(0.02)
        assert "BILL-1 is resolved" in plain(reminder[0]["text"])
        replies = await server.local("alice", PARITY_INFORMED, conversation="terminal:alice")
        said.append(" ".join(plain(r["text"]) for r in replies))
        assert "Question BILL-1 for Contoso is open and nobody has taken it yet" in " ".join(said)
        case = await server.store.get_case(1)
        assert case is not None and case.state == State.CUSTOMER_INFORMED
        return dict(case.to_doc())
    finally:
        await server.close()


async def run_teams(bot: BotServer, connector: FakeConnector, teams: Teams) -> dict[str, Any]:
    (form,) = await say(bot, connector, teams, ALICE, "ask Why two charges?")
    values = {"customer": "Contoso", "category": "charges"}
    (card,) = await send(bot, connector, teams.submit(ALICE, form, values))
    assert (
        "Question BILL-1 for Contoso is open and nobody has taken it yet" in card.text
        and card.method == "PUT"
    )
    (card,) = await send(bot, connector, teams.click(ALICE, card, "Take"))
    assert card.method == "PUT" and "is yours now" in card.text
    (resolve_form,) = await send(bot, connector, teams.click(ALICE, card, "Resolve"))
    values = {"resolution": "Credit note issued"}
    (resolved,) = await send(bot, connector, teams.submit(ALICE, resolve_form, values))
    assert "BILL-1 is resolved" in resolved.text

    # The close-the-loop DM comes from the scheduler, as a new message in Alice's chat.
    def loop_dm() -> list[Any]:
        return [
            c
            for c in connector.posts(ALICE.dm)
            if c.path.endswith("/activities") and "Customer informed" in str(c.actions())
        ]

    await connector.wait_for(loop_dm)
    dm = loop_dm()[-1]
    assert [a["title"] for a in dm.actions()] == ["Customer informed", "Snooze", "Reassign"]
    (informed_form,) = await send(bot, connector, teams.click(ALICE, dm, "Customer informed"))
    assert informed_form.action("Submit")["data"]["billing_form"] == "informed"
    values = {"via": "email", "text": "Told her by mail"}
    (informed,) = await send(bot, connector, teams.submit(ALICE, informed_form, values))
    assert "Reminders stop" in informed.text
    case = await bot.store.get_case(1)
    assert case is not None and case.state == State.CUSTOMER_INFORMED
    return dict(case.to_doc())


async def test_local_and_teams_end_in_the_same_case(
    bot: BotServer, connector: FakeConnector, teams: Teams, tmp_path: Path
) -> None:
    via_teams = await run_teams(bot, connector, teams)
    local = await run_local(tmp_path, connector)
    assert_same_case(via_teams, local, "teams")
    teams_customer = await bot.store.get_customer(via_teams["customer_id"])
    assert teams_customer is not None and teams_customer.tenant_id is not None
