"""The form engine (conversations/formengine.py): no form traps, no command saved as an answer.

Regression tests of issue 18: a rule over two fields (amount precision and
currency) is checked when the second is given and asks again only the
amount; a whole command line typed into an open form is never taken as the
answer without asking; a form saved by the desk before the engine resumes.
"""

from __future__ import annotations

import pytest

from bot.domain import State
from tests.harness import DeskEnv


@pytest.fixture
async def env() -> DeskEnv:
    e = DeskEnv()
    await e.store.open()
    return e


@pytest.mark.parametrize(
    ("amount", "currency", "fixed", "shown"),
    [("120.005", "eur", "120.00", "120.00 EUR"), ("0.001", "usd", "0.01", "0.01 USD")],
)
async def test_too_many_decimals_for_the_currency_asks_the_amount_again(
    env: DeskEnv, amount: str, currency: str, fixed: str, shown: str
) -> None:
    chat = env.chat("alice")
    await chat.say("dispute G099887766", "Contoso", "ok", amount)
    chat.expect("Currency")
    await chat.send(currency)
    # Checked when the second field of the rule is given: the amount is asked again.
    chat.expect(f"{amount} has more decimal places than {currency.upper()} allows")
    chat.expect("Disputed amount", "step 3 of 5")
    assert chat.kinds[0] == "error"
    await chat.send("help")  # not a trap: an ordinary wrong answer to the amount
    chat.expect("“help” is no answer to “Disputed amount”, so I ran it as a command")
    chat.expect("Disputed amount", "step 3 of 5")
    await chat.send(fixed)
    chat.expect("Reason", "step 5 of 5")  # customer, invoice and currency were kept
    await chat.send("Seats billed twice")
    chat.expect("Dispute BILL-1 for Contoso is open", shown)
    case = await env.store.get_case(1)
    assert case is not None and case.dispute is not None
    assert case.dispute.invoice == "G099887766" and str(case.dispute.amount) == shown


async def test_a_whole_form_with_too_many_decimals_gets_the_error_on_the_amount(
    env: DeskEnv,
) -> None:
    alice = env.chat("alice")
    values = {
        "customer": "Contoso",
        "invoice": "G099887766",
        "amount": "120.005",
        "currency": "EUR",
        "reason": "x",
    }
    await alice.submit("dispute", values)
    form = alice.replies[0].form
    assert form is not None and set(form.errors) == {"amount"}
    assert "more decimal places than EUR allows" in form.errors["amount"]
    assert await env.store.get_case(1) is None


async def test_a_trapped_form_saved_before_the_upgrade_resumes_at_the_amount(
    env: DeskEnv,
) -> None:
    """The conversation record as the desk of 79a86d9 left it after `eur`."""
    key = "local|dm:alice|alice"
    await env.store.save_conversation(
        key,
        {
            "form": "dispute",
            "values": {
                "customer": "Contoso",
                "invoice": "G099887766",
                "amount": "120.005",
                "currency": "EUR",
            },
            "prefill": {"invoice": "G099887766"},
            "context": {},
            "confirm": None,
        },
    )
    restarted = DeskEnv(store=env.store)
    chat = restarted.chat("alice")
    await chat.send("Seats billed twice")
    chat.expect("120.005 has more decimal places than EUR allows", "Disputed amount")
    await chat.say("120.00", "Seats billed twice")
    chat.expect("Dispute BILL-1 for Contoso is open", "120.00 EUR")


async def test_an_old_form_in_progress_resumes_after_the_upgrade(env: DeskEnv) -> None:
    """A note form as the old desk stored it: the same shape, the next answer goes on."""
    await env.new_question()
    await env.store.save_conversation(
        "local|dm:alice|alice",
        {
            "form": "note",
            "values": {},
            "prefill": {},
            "context": {"case": "BILL-1", "version": "1"},
            "confirm": None,
        },
    )
    chat = DeskEnv(store=env.store).chat("alice")
    await chat.send("called the customer")
    chat.expect("Internal note added to BILL-1")


async def test_an_old_form_in_progress_for_an_older_stage_is_refused_as_stale(
    env: DeskEnv,
) -> None:
    """As above, but the case moved on since the form was opened: nothing is added."""
    await env.new_question()
    await env.chat("bob").send("take BILL-1")
    case = await env.store.get_case(1)
    assert case is not None and case.stage > 1
    await env.store.save_conversation(
        "local|dm:alice|alice",
        {
            "form": "note",
            "values": {},
            "prefill": {},
            "context": {"case": "BILL-1", "version": "1"},
            "confirm": None,
        },
    )
    chat = DeskEnv(store=env.store).chat("alice")
    await chat.send("called the customer")
    chat.expect("Already done")
    after = await env.store.get_case(1)
    assert after is not None and not after.notes and after.version == case.version


async def test_a_form_about_a_case_is_stored_with_the_cards_stage(env: DeskEnv) -> None:
    """The form context names the case and its stage: ``{"case", "stage"}`` (no "version")."""
    await env.new_question()
    await env.chat("alice").send("note BILL-1")
    stored = await env.store.get_conversation("local|dm:alice|alice")
    case = await env.store.get_case(1)
    assert stored is not None and case is not None
    assert stored["context"] == {"case": "BILL-1", "stage": str(case.stage)}


async def test_a_command_typed_as_a_note_asks_run_it_or_use_it(env: DeskEnv) -> None:
    await env.new_question()
    alice = env.chat("alice")
    await alice.send("note BILL-1")
    alice.expect("Internal note")
    await alice.send("note BILL-999999 x")
    alice.expect("“note BILL-999999 x” is also a command")
    assert alice.button_labels == ["Run it", "Use as answer"]
    case = await env.store.get_case(1)
    assert case is not None and not case.notes  # nothing guessed
    await alice.send("1")  # the terminal's way to press [1]
    alice.expect("I can't find BILL-999999", "Note on BILL-1", "Internal note")
    await alice.send("called the customer")
    alice.expect("Internal note added to BILL-1")
    case = await env.store.get_case(1)
    assert case is not None and [n.text for n in case.notes] == ["called the customer"]


async def test_use_as_answer_keeps_the_command_line_as_typed(env: DeskEnv) -> None:
    await env.new_question()
    alice = env.chat("alice")
    await alice.say("note BILL-1", "note BILL-999999 x")
    await alice.click("Use as answer")
    alice.expect("Internal note added to BILL-1")
    case = await env.store.get_case(1)
    assert case is not None and [n.text for n in case.notes] == ["note BILL-999999 x"]


@pytest.mark.parametrize("verb", ["cancel", "reopen"])
async def test_a_command_typed_as_a_reason_runs_only_when_asked(env: DeskEnv, verb: str) -> None:
    await env.new_question()
    await env.new_question()
    alice = env.chat("alice")
    if verb == "reopen":
        await alice.say("resolve BILL-2 done")
    await alice.send(f"{verb} BILL-2")
    alice.expect("Reason")
    line = f"{verb} BILL-2 duplicate of BILL-1"
    await alice.send(line)
    alice.expect(f"“{line}” is also a command")
    case = await env.store.get_case(2)
    assert case is not None and case.state in (State.OPEN, State.RESOLVED)
    await alice.click("Run it")
    case = await env.store.get_case(2)
    assert case is not None
    assert case.state == (State.CANCELLED if verb == "cancel" else State.REOPENED)
    assert case.audit[-1].details.get("reason") == "duplicate of BILL-1", case.audit[-1]
    # The form was about the case as it was: it is closed, the next line is a command.
    alice.expect("is closed: the case changed")
    await alice.send("list")
    alice.expect("Open cases")


async def test_something_else_than_one_or_two_is_a_new_answer(env: DeskEnv) -> None:
    await env.new_question()
    alice = env.chat("alice")
    await alice.say("note BILL-1", "list")
    alice.expect("“list” is also a command")
    await alice.send("the customer called back")
    alice.expect("Internal note added to BILL-1")


def test_complete_command_lines() -> None:
    from bot.app.wiring import FLOWS
    from conversations.commands import complete_command
    from conversations.registry import REGISTRY

    assert FLOWS  # the flow modules' commands (paid, srstatus, …) are declared
    needs = {name: REGISTRY.spec(name).needs for name in REGISTRY.names()}
    assert needs["note"] == "case" and needs["paid"] == "word" and needs["list"] is None
    assert complete_command("note BILL-7 x", needs) is not None
    assert complete_command("cancel BILL-2 duplicate of BILL-1", needs) is not None
    assert complete_command("BILL-7", needs) is not None  # a case id alone shows it
    assert complete_command("list", needs) is not None
    assert complete_command("cancel the order", needs) is None  # no case id
    assert complete_command("paid", needs) is None
    assert complete_command("Seats billed twice", needs) is None
    assert complete_command("", needs) is None


async def test_a_command_that_is_no_answer_to_a_step_runs_and_the_form_waits(
    env: DeskEnv,
) -> None:
    """Walkthrough finding: `status BILL-1` typed at the amount step was only "not an
    amount", and so was every further command. A line that cannot be the answer but is a
    whole command runs (nothing to guess), and the form waits at its step."""
    await env.new_question()
    alice = env.chat("alice")
    await alice.say("dispute G099887766", "Contoso", "ok")
    alice.expect("Disputed amount")
    await alice.send("status BILL-1")
    alice.expect("“status BILL-1” is no answer to “Disputed amount”, so I ran it as a command")
    alice.expect("BILL-1 · Question", "Disputed amount", "step 3 of 5")
    await alice.send("客户列表")  # an alias is a command too
    alice.expect("so I ran it as a command", "Customers (", "step 3 of 5")
    await alice.send("120.00")  # the answer: the form goes on
    alice.expect("Currency")
    await alice.say("EUR", "Seats billed twice")
    alice.expect("Dispute BILL-2 for Contoso is open", "120.00 EUR")
