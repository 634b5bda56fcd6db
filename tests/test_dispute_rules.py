"""Disputes and invoice numbers (issue 19): the partial-credit rule, the one invoice-number
rule, a credit's default currency, confirming the resolution of a dispute never reported
to Microsoft, and the text recorded with ``informed`` on the card and in the history.

Through the desk harness (local channel), the whole-form path every form channel takes
(Slack modal, Teams card, web page) and each channel's card rendering; the web page over
HTTP in tests/web/test_web_disputes.py.
"""

from __future__ import annotations

import pytest

from adapters.local.render import render_replies
from adapters.slack import translate as slack
from adapters.teams import render as teams
from bot.domain import State
from bot.receivables import parse_csv
from conversations.collections.csv_import import import_receivables
from tests.harness import DeskEnv, make_settings

HEADER = (
    "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
    "subscription_ids\n"
)


@pytest.fixture
def env() -> DeskEnv:
    return DeskEnv(make_settings())


async def _dispute(env: DeskEnv, invoice: str, amount: str = "1234.56", cur: str = "CNY") -> str:
    """A dispute through the whole form (as Slack, Teams and the web submit it)."""
    alice = env.chat("alice")
    await alice.submit(
        "dispute",
        {"customer": "Contoso", "invoice": invoice, "amount": amount, "currency": cur,
         "reason": "Seats billed twice"},
    )  # fmt: skip
    assert alice.card is not None, alice.text
    return str(alice.card.case_id)


async def _escalated(env: DeskEnv, amount: str = "1234.56", cur: str = "CNY") -> str:
    """A dispute reported to Microsoft (manual mode: the request number pasted back)."""
    case = await _dispute(env, "G099887766", amount, cur)
    alice = env.chat("alice")
    await alice.send(f"escalate {case} 2411240010001234")
    stored = await env.store.get_case(int(case.split("-")[1]))
    assert stored is not None and stored.state == State.ESCALATED, alice.text
    return case


async def _state(env: DeskEnv, case: str) -> State:
    stored = await env.store.get_case(int(case.split("-")[1]))
    assert stored is not None
    return stored.state


# ---------------------------------------------------------------- 2. partial credit
async def test_a_partial_credit_of_the_whole_amount_is_refused_when_typed(env: DeskEnv) -> None:
    case = await _escalated(env)
    alice = env.chat("alice")
    await alice.send(f"resolve {case} partial 1234.56 CNY")
    alice.expect(
        "A partial credit is less than the disputed 1,234.56 CNY",
        f"`resolve {case} credit 1234.56 CNY`",
    )
    assert alice.kinds == ["error"]
    assert await _state(env, case) == State.ESCALATED
    await alice.send(f"resolve {case} partial 1234.55 CNY")
    alice.expect("Outcome: Partial credit: 1,234.55 CNY")


async def test_a_partial_credit_of_the_whole_amount_is_refused_in_the_text_form(
    env: DeskEnv,
) -> None:
    case = await _escalated(env)
    alice = env.chat("alice")
    await alice.send(f"resolve {case}")
    await alice.click("Partial credit")
    await alice.send("1234.56")
    alice.expect("A partial credit is less than the disputed 1,234.56 CNY", "Credited amount")
    assert await _state(env, case) == State.ESCALATED
    await alice.send("1000")
    await alice.send("skip")
    alice.expect("Outcome: Partial credit: 1,000.00 CNY")


async def test_a_partial_credit_of_the_whole_amount_is_refused_in_a_whole_form(
    env: DeskEnv,
) -> None:
    case = await _escalated(env)
    alice = env.chat("alice")
    await alice.send(f"status {case}")
    await alice.click("Resolve")  # the card's button: the form (a modal, a card, the web page)
    form = alice.replies[-1].form or next(r.form for r in alice.replies if r.form)
    assert form is not None and form.form_id == "resolve"
    await alice.submit(
        "resolve",
        {"outcome": "partial_credit", "credited": "1234.56 CNY", "resolution": ""},
        form.context,
    )
    alice.expect("Please fix the form", "A partial credit is less than the disputed")
    shown = alice.replies[0].form
    assert shown is not None and set(shown.errors) == {"credited"}
    assert await _state(env, case) == State.ESCALATED


# ---------------------------------------------------------------- a credit's currency
async def test_a_credit_without_currency_is_in_the_disputes_currency(env: DeskEnv) -> None:
    case = await _escalated(env, "120.00", "EUR")
    alice = env.chat("alice")
    await alice.send(f"resolve {case} credit 120.00 USD")
    alice.expect("The credit must be in EUR, the currency of the dispute")
    assert await _state(env, case) == State.ESCALATED
    await alice.send(f"resolve {case} credit 120.00")
    alice.expect("Outcome: Credit granted: 120.00 EUR")
    stored = await env.store.get_case(1)
    assert stored is not None and stored.dispute is not None
    assert str(stored.dispute.credited) == "120.00 EUR"


async def test_a_partial_credit_without_currency_keeps_its_text(env: DeskEnv) -> None:
    case = await _escalated(env, "120.00", "EUR")
    alice = env.chat("alice")
    await alice.send(f"resolve {case} partial 50 the outage window only")
    alice.expect("Outcome: Partial credit: 50.00 EUR", "Resolution: the outage window only")


# ---------------------------------------------------------------- 3. invoice numbers
ACCEPTED = ["INV/2026/01", "G099887766", "D0600ABCDE", "INV-1001", "2026#17", "A.b_c-1", "0"]
REFUSED = {
    "INV 2026": "this one also has a space",
    "INV@2026": "this one also has “@”",
    "-INV1": "starts with a letter or a digit, not “-”",
    "X" * 65: "at most 64 characters; this one has 65",
}


@pytest.mark.parametrize("invoice", ACCEPTED)
async def test_a_dispute_takes_every_invoice_number_the_import_takes(
    env: DeskEnv, invoice: str
) -> None:
    row = f",Contoso,{invoice},10.00,EUR,2026-11-01,,\n"
    assert [r.invoice for r in parse_csv(HEADER + row).rows] == [invoice]
    alice = env.chat("alice")
    await alice.send(f"dispute {invoice}")
    await alice.say("Contoso", "ok", "10.00 EUR", "Billed twice")
    alice.expect(f"Invoice: {invoice}", "Dispute BILL-1 for Contoso is open")


@pytest.mark.parametrize(("invoice", "rule"), REFUSED.items())
async def test_an_invoice_number_is_refused_by_the_rule_it_breaks_everywhere(
    env: DeskEnv, invoice: str, rule: str
) -> None:
    parsed = parse_csv(HEADER + f",Contoso,{invoice},10.00,EUR,2026-11-01,,\n")
    assert not parsed.rows and rule in str(parsed.errors[0])
    alice = env.chat("alice")
    await alice.send("dispute")
    await alice.send("Contoso")
    await alice.send(invoice)  # the form's step
    alice.expect(rule, "Invoice number")
    await alice.send("cancel")
    await alice.submit(
        "dispute",
        {"customer": "Contoso", "invoice": invoice, "amount": "10", "currency": "EUR",
         "reason": "x"},
    )  # fmt: skip
    alice.expect(rule)
    if " " not in invoice:  # a typed command's words are split at spaces
        await alice.send(f"paid {invoice} 5.00")
        alice.expect(rule)
    assert await env.store.get_case(1) is None


async def test_an_empty_invoice_number_is_named_as_empty() -> None:
    parsed = parse_csv(HEADER + ",Contoso, ,10.00,EUR,2026-11-01,,\n")
    assert "invoice_number: The invoice number is empty" in str(parsed.errors[0])


async def test_paid_takes_the_same_invoice_numbers_as_a_dispute(env: DeskEnv) -> None:
    row = f"{HEADER},Contoso,INV/2026/01,10.00,EUR,2026-11-01,,\n"
    report = await import_receivables(
        env.store, env.settings, row, actor="lena", channel="cli", file="r.csv",
        now=env.clock.now(),
    )  # fmt: skip
    assert report.new == ["INV/2026/01"], report
    alice = env.chat("alice")
    await alice.send("paid INV/2026/01 5.00")
    alice.expect("Recorded 5.00 EUR paid on invoice INV/2026/01")
    await alice.send("dispute INV/2026/01")
    await alice.say("Contoso", "ok", "5.00 EUR", "Charged twice")
    alice.expect("Invoice: INV/2026/01")


# ---------------------------------------------------------------- never reported: confirm
async def test_resolving_a_dispute_never_reported_asks_first_and_once(env: DeskEnv) -> None:
    case = await _dispute(env, "G099887766", "120.00", "EUR")
    alice = env.chat("alice")
    await alice.send(f"resolve {case} credit 120.00 EUR")
    alice.expect(f"{case} was never reported to Microsoft", "Resolve it anyway?")
    assert alice.button_labels == ["Resolve anyway", "Cancel"]
    text, numbered = render_replies(alice.replies)  # the terminal: numbered choices
    assert "[1] Resolve anyway" in text and "[2] Cancel" in text and len(numbered) == 2
    assert await _state(env, case) == State.OPEN
    await alice.click("Cancel")
    alice.expect("Cancelled. Nothing was saved.")
    assert await _state(env, case) == State.OPEN

    await alice.send(f"resolve {case} credit 120.00 EUR")
    anyway = alice.button("Resolve anyway").action
    await alice.press(anyway)
    alice.expect(f"{case} is resolved", "Outcome: Credit granted: 120.00 EUR")
    await alice.press(anyway)  # a double click
    alice.expect_not(f"{case} is resolved")
    stored = await env.store.get_case(1)
    assert stored is not None and stored.state == State.RESOLVED
    assert [a.action for a in stored.audit].count("resolved") == 1


async def test_the_resolve_form_of_a_dispute_never_reported_asks_before_the_end(
    env: DeskEnv,
) -> None:
    case = await _dispute(env, "G099887766", "120.00", "EUR")
    alice = env.chat("alice")
    await alice.send(f"status {case}")
    await alice.click("Resolve")
    form = next(r.form for r in alice.replies if r.form)
    await alice.submit(
        "resolve", {"outcome": "denied", "resolution": "usage was correct"}, form.context
    )
    alice.expect("was never reported to Microsoft")
    assert await _state(env, case) == State.OPEN
    await alice.send("yes")
    alice.expect("Outcome: Denied", "usage was correct")
    await alice.send("yes")
    alice.expect_not("is resolved")
    assert await _state(env, case) == State.RESOLVED


async def test_a_command_instead_of_the_answer_drops_the_question(env: DeskEnv) -> None:
    case = await _dispute(env, "G099887766", "120.00", "EUR")
    alice = env.chat("alice")
    await alice.send(f"resolve {case} denied usage was correct")
    await alice.send(f"status {case}")
    alice.expect(f"“Resolve {case}” was not done; nothing was saved.", f"History of {case}")
    await alice.send("yes")
    assert await _state(env, case) == State.OPEN


async def test_reported_disputes_and_questions_resolve_without_asking(env: DeskEnv) -> None:
    case = await _escalated(env, "120.00", "EUR")
    alice = env.chat("alice")
    await alice.send(f"resolve {case} denied usage was correct")
    alice.expect(f"{case} is resolved")
    question = await env.new_question()
    await alice.send(f"resolve {question} Credit note issued")
    alice.expect(f"{question} is resolved")


# ---------------------------------------------------------------- informed: the text
async def test_the_informed_text_is_on_the_card_and_in_the_history(env: DeskEnv) -> None:
    case = await env.new_question()
    alice = env.chat("alice")
    await alice.say(f"take {case}", f"resolve {case} Credit note issued")
    await alice.send(f"informed {case} call Told Anna the credit note comes on Friday")
    card = alice.card
    assert card is not None
    told = next(f.value for f in card.facts if "Customer told" in f.label)
    assert "Call" in told and "Told Anna the credit note comes on Friday" in told
    # Every channel's rendering of that card shows it.
    local_text, _numbered = render_replies([r for r in alice.replies if r.card])
    assert "Told Anna the credit note comes on Friday" in local_text
    assert "Told Anna the credit note comes on Friday" in str(slack.card_blocks(card))
    assert "Told Anna the credit note comes on Friday" in str(teams.case_card(card))
    await alice.send(f"status {case}")
    alice.expect("— Call, Told Anna the credit note comes on Friday")
    carol = env.chat("carol")  # the customer sees how they were told, too
    await carol.send(f"status {case}")
    carol.expect("Told Anna the credit note comes on Friday")
