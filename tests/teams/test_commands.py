"""Every command of the table, typed in Teams, through the real server and the fake connector."""

from __future__ import annotations

from tests.harness import ask_many

from .conftest import (
    ALICE,
    BILLING_CHANNEL,
    BOB,
    CAROL,
    LENA,
    MARIA,
    SHARED_CHANNEL,
    BotServer,
    FakeConnector,
    Teams,
)
from .helpers import new_case, say, send


async def test_help_and_resources(bot: BotServer, connector: FakeConnector, teams: Teams) -> None:
    (call,) = await say(bot, connector, teams, ALICE, "help")
    assert call.path == f"/v3/conversations/{ALICE.dm}/activities/{call.activity_id}"
    assert "Billing desk commands" in call.text
    assert "`resolve BILL-n text`" in call.text
    assert call.body["textFormat"] == "markdown"
    (call,) = await say(bot, connector, teams, ALICE, "resources")
    assert "Premier Support" in call.text
    assert "https://learn.microsoft.com/partner-center/" in call.text
    (error,) = await say(bot, connector, teams, ALICE, "frobnicate")  # one line, no help
    assert error.text == "I don't know the command “frobnicate”. Type `help` to see what I can do."
    (error,) = await say(bot, connector, teams, ALICE, "stauts BILL-1")
    assert error.text == "I don't know the command “stauts”. Did you mean `status BILL-1`?"


async def test_ask_and_dispute_open_form_cards(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    (call,) = await say(bot, connector, teams, ALICE, "ask Why two charges?")
    ids = [b.get("id") for b in call.card["body"] if b["type"].startswith("Input.")]
    assert ids == ["f_customer", "f_subscription_id", "f_invoice", "f_category", "f_description"]
    description = next(b for b in call.card["body"] if b.get("id") == "f_description")
    assert description["value"] == "Why two charges?"
    assert call.action("Submit")["data"] == {"billing_form": "ask", "billing_context": {}}
    (call,) = await say(bot, connector, teams, ALICE, "dispute G012345678")
    invoice = next(b for b in call.card["body"] if b.get("id") == "f_invoice")
    assert invoice["value"] == "G012345678"
    assert call.action("Submit")["data"]["billing_form"] == "dispute"


async def test_status_list_take_note_and_case_id_alone(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case = await new_case(bot, connector, teams, ALICE)
    (call,) = await say(bot, connector, teams, BOB, f"take {case}")
    assert f"{case} is yours now." in call.text
    assert "Bob Agent" in call.card_text()
    (call,) = await say(bot, connector, teams, BOB, f"note {case} Called Contoso AP")
    assert "Internal note added" in call.text
    assert "Called Contoso AP" in call.card_text()
    card, history = await say(bot, connector, teams, ALICE, f"status {case}")
    assert case in card.card_text() and "in progress" in card.card_text()
    assert f"History of {case}" in history.text and "(via Teams)" in history.text
    card, _history = await say(bot, connector, teams, ALICE, case)
    assert case in card.card_text()
    (call,) = await say(bot, connector, teams, ALICE, "list")
    assert "Open cases (1)" in call.text and case in call.text
    (call,) = await say(bot, connector, teams, BOB, "list mine")
    assert "Your cases (1)" in call.text
    (call,) = await say(bot, connector, teams, ALICE, "list unassigned")
    assert "none" in call.text


async def test_channel_mention_and_assign_by_mention(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case = await new_case(bot, connector, teams, ALICE)
    thread = f"{BILLING_CHANNEL};messageid=1732439100000"
    # Without a mention the bot stays quiet in a channel.
    before = len(connector.calls)
    assert (
        await bot.post(
            teams.say(BOB, f"status {case}", conversation=thread, conversation_type="channel")
        )
        == 201
    )
    assert connector.calls[before:] == []
    activity = teams.mention_bot(
        BOB, f"assign {case} <at>Maria Lopez</at>", conversation=thread, mentioning=[MARIA]
    )
    assert await bot.post(activity) == 201
    lookups = [c for c in connector.calls[before:] if c.method == "GET"]
    assert [c.path.rsplit("/", 1)[-1] for c in lookups] == [MARIA.id]
    (answer,) = connector.posts(thread)
    assert answer.path.endswith(f"/activities/{activity['id']}")
    assert f"{case} now belongs to Maria Lopez." in answer.text
    maria = await bot.store.user_by_identity("teams", MARIA.aad)
    assert maria is not None and maria.display_name == "Maria Lopez"
    stored = await bot.store.get_case(int(case.split("-")[1]))
    assert stored.owner == maria.id
    # Maria never talked to the bot: the notification opened a 1:1 chat with her.
    await connector.wait_for(lambda: connector.posts(f"a:1created-{MARIA.id}"))
    created = [c for c in connector.calls if c.path == "/v3/conversations"]
    assert created and created[0].body["members"][0]["id"] == MARIA.id
    (dm,) = connector.posts(f"a:1created-{MARIA.id}")
    assert f"Bob Agent assigned {case} to you." in dm.text


async def test_group_chat_mention(bot: BotServer, connector: FakeConnector, teams: Teams) -> None:
    group = "19:meeting_abc@thread.v2"
    activity = teams.mention_bot(ALICE, "help", conversation=group, conversation_type="groupChat")
    assert await bot.post(activity) == 201
    (call,) = connector.posts(group)
    assert "Billing desk commands" in call.text


async def test_escalate_resolve_informed_close_reopen(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case = await new_case(bot, connector, teams, ALICE)
    intro = await say(bot, connector, teams, ALICE, f"escalate {case}")
    (form,) = intro
    assert "Partner Center" in form.card_text()
    before = len(connector.calls)
    await bot.post(
        teams.submit(ALICE, form, {"severity": "moderate", "request_id": "2411240010001234"})
    )
    (call,) = connector.calls[before:]
    assert call.method == "PUT" and call.activity_id == form.card_id
    assert "escalated to Microsoft as service request 2411240010001234" in call.text
    (call,) = await say(bot, connector, teams, ALICE, f"resolve {case} Credit note CN-1 issued")
    assert f"{case} is resolved" in call.text
    (call,) = await say(bot, connector, teams, ALICE, f"informed {case} email sent the credit note")
    assert "Reminders stop" in call.text
    (call,) = await say(bot, connector, teams, ALICE, f"close {case}")
    assert f"{case} is closed." in call.text
    (call,) = await say(bot, connector, teams, LENA, f"reopen {case} Customer disputes the credit")
    assert f"{case} is reopened." in call.text


async def test_cancel_customers_and_customer(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    case = await new_case(bot, connector, teams, ALICE)
    (call,) = await say(bot, connector, teams, ALICE, f"cancel {case} duplicate of BILL-99")
    assert f"{case} is cancelled." in call.text
    (call,) = await say(bot, connector, teams, ALICE, "customers")
    assert "Contoso · tenant aaaaaaaa-0000-4000-8000-00000000000a" in call.text
    calls = await say(bot, connector, teams, ALICE, "customer Contoso")
    assert "tenant aaaaaaaa-0000-4000-8000-00000000000a" in calls[0].text


async def test_customer_in_a_shared_channel_sees_only_their_cases(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    await new_case(bot, connector, teams, ALICE, customer="Contoso")
    await new_case(bot, connector, teams, ALICE, customer="Fabrikam")
    thread = f"{SHARED_CHANNEL};messageid=1"
    await bot.post(teams.mention_bot(CAROL, "list", conversation=thread))
    (call,) = connector.posts(thread)
    assert "Contoso" in call.text and "Fabrikam" not in call.text
    # The same person outside the mapped channel has no role.
    other = f"{BILLING_CHANNEL};messageid=2"
    await bot.post(teams.mention_bot(CAROL, "list", conversation=other))
    (call,) = connector.posts(other)
    assert "don't have a role" in call.text or "not allowed" in call.text.lower()


async def test_users_from_teams_identity_name_and_time_zone(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    # Someone of the partner's tenant who is not in the config: default_role, Teams name and zone.
    await bot.post(teams.say(MARIA, "help", tz="America/Mexico_City"))
    maria = await bot.store.user_by_identity("teams", MARIA.aad)
    assert maria is not None
    assert (maria.id, maria.display_name, maria.time_zone) == (
        f"teams:{MARIA.aad}",
        "Maria Lopez",
        "America/Mexico_City",
    )
    assert maria.role.value == "agent"
    # A configured user keeps the config's name; the zone comes from Teams.
    await bot.post(teams.say(ALICE, "help", tz="Asia/Shanghai"))
    alice = await bot.store.get_user("alice")
    assert alice is not None and alice.identities["teams"] == ALICE.aad
    assert alice.time_zone == "Asia/Shanghai"
    # A guest of another tenant in a personal chat that no customer is mapped to: no role.
    (call,) = await say(bot, connector, teams, CAROL, "list")
    assert "don't have a role" in call.text


async def test_reminder_language_escalation_and_collections_commands(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    """The commands other flow modules add reach them through Teams as well."""
    case = await new_case(bot, connector, teams, ALICE)
    await say(bot, connector, teams, ALICE, f"resolve {case} Credit note issued")
    (call,) = await say(bot, connector, teams, ALICE, f"snooze {case} 1h")
    assert "Snoozed" in call.text and case in call.text
    (call,) = await say(bot, connector, teams, ALICE, "reminders")
    assert case in call.text
    for user, text in [
        (ALICE, "language en"),
        (ALICE, f"srstatus {case}"),
        (LENA, "overdue"),
        (LENA, "paid G012345678 10.00 EUR"),
        (LENA, "suspend Contoso"),
        (LENA, "reactivate Contoso"),
        (LENA, "collections"),
    ]:
        calls = await say(bot, connector, teams, user, text)
        assert calls, text
        assert "I don't know the command" not in calls[0].text, text


async def test_dispute_rules_on_teams_cards(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    """Issue 19: an invoice number with slashes, a partial credit of the whole amount refused
    on the resolve card, and a dispute never reported to Microsoft confirmed once."""
    (form,) = await say(bot, connector, teams, ALICE, "dispute INV/2026/01")
    values = {"customer": "Contoso", "amount": "1234.56", "currency": "CNY", "reason": "Twice"}
    calls = await send(bot, connector, teams.submit(ALICE, form, values))
    assert any("Dispute BILL-1 for Contoso is open" in c.text for c in calls), [
        c.text for c in calls
    ]
    (form,) = await say(bot, connector, teams, ALICE, "resolve BILL-1")
    partial = {"outcome": "partial_credit", "credited": "1234.56", "resolution": ""}
    calls = await send(bot, connector, teams.submit(ALICE, form, partial))
    shown = " ".join(c.text + c.card_text() for c in calls)
    assert "A partial credit is less than the disputed 1,234.56 CNY" in shown
    calls = await send(
        bot, connector, teams.submit(ALICE, form, {**partial, "outcome": "credit_granted"})
    )
    (asked,) = [c for c in calls if "never reported to Microsoft" in c.text + c.card_text()]
    await send(bot, connector, teams.click(ALICE, asked, "Resolve anyway"))
    await send(bot, connector, teams.click(ALICE, asked, "Resolve anyway"))  # a double click
    case = await bot.runtime.store.get_case(1)
    assert case is not None and case.invoice == "INV/2026/01"
    assert [a.action for a in case.audit].count("resolved") == 1


async def test_a_long_list_has_a_more_button_that_shows_the_next_page(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    await ask_many(bot.runtime, "alice", 23)
    (first,) = await say(bot, connector, teams, ALICE, "list")
    assert "Open cases, page 1 of 2 · 23 cases:" in first.card_text()
    more = first.action("More")  # the reply's button, an Action.Submit on its card
    assert more["type"] == "Action.Submit"
    assert more["data"] == {
        "action": "list",
        "case_id": None,
        "stage": None,
        "value": "open page 2",
    }
    (second,) = await send(bot, connector, teams.click(ALICE, first, "More"))
    text = second.text or second.card_text()
    assert "Open cases, page 2 of 2 · 23 cases:" in text
    assert "BILL-3 ·" in text and "BILL-23 ·" not in text
