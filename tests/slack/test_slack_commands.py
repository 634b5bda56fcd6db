"""``/billing`` speaks the whole command table: modals, visible cards, private answers."""

from __future__ import annotations

import json

from bot.domain import State
from conversations.registry import REGISTRY
from tests.harness import ask_many
from tests.slack.slackfake import SlackEnv, new_case


def said(env: SlackEnv, start: int = 0) -> str:
    """Everything the bot showed since message ``start`` (visible and private)."""
    return "\n".join(m.text for m in env.fake.messages[start:])


async def test_help_and_resources_answer_privately(slack: SlackEnv) -> None:
    await slack.command("help")
    answer = slack.fake.last_message()
    assert answer.ephemeral and answer.body["response_type"] == "ephemeral"
    assert "`ask [text]`" in answer.text and "/billing" in answer.text
    await slack.command("resources")
    assert "https://partner.microsoft.com/training" in slack.fake.last_message(ephemeral=True).text
    assert slack.fake.calls_to("chat.postMessage") == []  # nothing visible in the channel


async def test_unknown_command_gets_one_line_and_the_closest_command(slack: SlackEnv) -> None:
    await slack.command("stauts BILL-1")
    answer = slack.fake.last_message(ephemeral=True).text
    assert "I don't know the command “stauts”. Did you mean `status BILL-1`?" in answer
    assert "`take BILL-n`" not in answer  # not the whole help
    await slack.command("")  # a bare /billing is help
    assert "`status BILL-n`" in slack.fake.last_message(ephemeral=True).text


async def test_ask_opens_a_modal_and_posts_the_card_visibly(slack: SlackEnv) -> None:
    status, body = await slack.command("ask Why two charges in March?")
    assert (status, body) == (200, "")  # acked at once, empty: the modal is the answer
    call = slack.fake.calls_to("views.open")[-1]
    assert call["trigger_id"].startswith("1.")  # the slash command's own trigger_id
    view = call["view"]
    assert view["type"] == "modal" and view["callback_id"] == "billing_form"
    blocks = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert list(blocks) == ["customer", "subscription_id", "invoice", "category", "description"]
    assert blocks["description"]["element"]["initial_value"] == "Why two charges in March?"
    assert blocks["subscription_id"]["optional"] is True
    assert blocks["customer"]["optional"] is False
    assert blocks["category"]["element"]["type"] == "static_select"
    status, answer = await slack.submit(
        slack.fake.last_view(),
        {"customer": "Contoso", "category": "charges", "description": "Why two charges?"},
    )
    assert (status, answer) == (200, {})  # the modal closes
    posted = slack.fake.calls_to("chat.postMessage")[-1]
    assert posted["channel"] == "CGENERAL"  # visible, in the channel of the command
    card = slack.fake.last_message(ephemeral=False)
    assert "BILL-1 · Question · Contoso" in card.text
    assert [b["action_id"] for b in card.buttons()] == [
        "take",
        "escalate",
        "resolve",
        "note",
        "assign",
        "cancel",
    ]
    assert card.button("take")["value"] == "take|BILL-1|1"
    case = await slack.case(1)
    assert case.description == "Why two charges?" and case.audit[0].channel == "slack"
    assert case.audit[0].actor == "ana"  # the configured user behind Slack id UANA


async def test_modal_submission_with_bad_values_answers_errors_on_the_fields(
    slack: SlackEnv,
) -> None:
    await slack.command("dispute G012345678")
    view = slack.fake.last_view()
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert inputs["invoice"]["element"]["initial_value"] == "G012345678"
    values = {
        "customer": "Contoso",
        "invoice": "G012345678",
        "amount": "12,50",
        "currency": "EUR",
        "reason": "Charged twice",
    }
    status, answer = await slack.submit(view, values)
    assert status == 200
    assert answer == {
        "response_action": "errors",
        "errors": {"amount": "Use a dot for decimals: 12.50"},
    }
    assert await slack.case(1) is None  # nothing saved
    status, answer = await slack.submit(view, {**values, "amount": "12.50", "currency": "XYZ"})
    assert answer["response_action"] == "errors" and list(answer["errors"]) == ["currency"]
    status, answer = await slack.submit(view, {**values, "amount": "12.50"})
    assert (status, answer) == (200, {})
    case = await slack.case(1)
    assert case.dispute is not None and str(case.dispute.amount) == "12.50 EUR"
    assert "BILL-1 · Dispute · Contoso" in slack.fake.last_message(ephemeral=False).text


async def test_every_command_of_the_table(slack: SlackEnv) -> None:
    one = await new_case(slack, "Why two charges?")
    await new_case(slack, "Refund please", customer="Fabrikam")
    fake = slack.fake

    async def run(text: str) -> str:
        start = len(fake.messages)
        await slack.command(text)
        return said(slack, start)

    shown = await run("status BILL-1")
    assert "BILL-1 · Question · Contoso" in fake.last_message(ephemeral=False).text
    assert "History of BILL-1" in fake.last_message(ephemeral=True).text
    assert "History of BILL-1" in await run("BILL-1")
    shown = await run("list")
    assert "BILL-1" in shown and "BILL-2" in shown
    assert "Your cases" in await run("list mine")
    assert "BILL-1 is yours now" in await run("take BILL-1")
    assert (await slack.case(1)).owner == "ana"
    assert "internal note" in (await run("note BILL-1 called the customer")).lower()
    assert "now belongs to" in await run("assign BILL-1 <@ULENA|lena>")
    assert (await slack.case(1)).owner == "lena"
    await run("escalate BILL-1")
    view = fake.last_view()
    assert "Partner Center" in json.dumps(view)  # the manual-mode intro is in the modal
    status, answer = await slack.submit(view, {"severity": "moderate", "request_id": "24112400100"})
    assert answer == {}
    assert (await slack.case(1)).state == State.ESCALATED
    assert "is resolved" in await run("resolve BILL-1 Credit note issued")
    shown = await run("snooze BILL-1 4h")
    assert "Snoozed" in shown or "no reminders" in shown
    assert await run("reminders")
    assert "Reminders stop" in await run("informed BILL-1 email Told her by mail")
    assert "is closed" in await run("close BILL-1")
    assert "is reopened" in await run("reopen BILL-1 she wrote back")
    assert "is cancelled" in await run("cancel BILL-2 duplicate of BILL-1")
    shown = await run("customers")
    assert "Contoso" in shown and "Fabrikam" in shown
    assert "Contoso" in await run("customer Contoso")
    assert one.ts  # the first card is still where it was posted


async def test_no_command_goes_unanswered(slack: SlackEnv) -> None:
    await new_case(slack, "Why two charges?")
    for name in REGISTRY.names():
        before = (len(slack.fake.messages), len(slack.fake.views))
        await slack.command(f"{name} BILL-1" if name not in ("customer",) else "customer Contoso")
        after = (len(slack.fake.messages), len(slack.fake.views))
        assert after != before, f"/billing {name} got no answer"


async def test_forms_started_from_buttons_open_modals(slack: SlackEnv) -> None:
    card = await new_case(slack, "Why two charges?")
    for name in ("resolve", "note", "assign", "escalate", "cancel"):
        views = len(slack.fake.views)
        await slack.click(card, name)
        assert len(slack.fake.views) == views + 1, name
        view = slack.fake.last_view()
        meta = json.loads(view["private_metadata"])
        assert meta["f"] == name and meta["x"]["case"] == "BILL-1"
        assert meta["ts"] == card.ts  # its result will replace this card
    assign = next(v for v in slack.fake.views if json.loads(v["private_metadata"])["f"] == "assign")
    picker = next(b for b in assign["blocks"] if b["type"] == "input")["element"]
    assert picker["type"] == "users_select"
    status, answer = await slack.submit(assign, {"user": "ULENA"})
    assert answer == {}
    assert (await slack.case(1)).owner == "lena"
    updated = slack.fake.message(card.ts)
    assert "*Owner*\nlena" in updated.text  # the clicked card shows the new owner
    # Resolve by modal, then the remaining form buttons on the resolved card.
    await slack.click(updated, "resolve")
    await slack.submit(slack.fake.last_view(), {"resolution": "Credit note issued"})
    resolved = slack.fake.message(card.ts)
    assert "resolved" in resolved.text
    await slack.click(resolved, "informed")
    view = slack.fake.last_view()
    assert json.loads(view["private_metadata"])["f"] == "informed"
    await slack.submit(view, {"via": "call", "text": "Phoned her"})
    informed = slack.fake.message(card.ts)
    assert (await slack.case(1)).state == State.CUSTOMER_INFORMED
    await slack.click(informed, "reopen")
    view = slack.fake.last_view()
    assert json.loads(view["private_metadata"])["f"] == "reopen"
    await slack.submit(view, {"reason": "She wrote back"})
    assert (await slack.case(1)).state == State.REOPENED


async def test_a_text_form_never_hijacks_the_next_command(slack: SlackEnv) -> None:
    await slack.command("ask")  # modal opened, then closed without submitting
    await slack.command("list")
    assert "Open cases" in slack.fake.last_message(ephemeral=True).text


async def test_a_long_list_has_a_more_button_that_shows_the_next_page(slack: SlackEnv) -> None:
    await ask_many(slack.runtime, "ana", 23)
    await slack.command("list")
    first = slack.fake.last_message(ephemeral=True)
    assert "Open cases, page 1 of 2 · 23 cases:" in first.text
    more = first.button("list")  # a normal reply button: the command it runs
    assert more["text"]["text"] == "More" and more["value"] == "list|||open page 2"
    await slack.click(first, "list")  # Slack's block_actions
    second = slack.fake.last_message(ephemeral=True)
    assert "Open cases, page 2 of 2 · 23 cases:" in second.text
    assert "BILL-3 ·" in second.text and "BILL-23 ·" not in second.text
    assert second.buttons() == []  # the last page
