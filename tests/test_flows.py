"""Flow tests: every command, validation message, forbidden move and role, as conversations."""

from __future__ import annotations

import pytest

from bot.domain import State
from bot.kernel.model import ActionRef
from tests.harness import DeskEnv, strip_pseudo


@pytest.fixture
async def env() -> DeskEnv:
    e = DeskEnv()
    await e.store.open()
    return e


async def test_help_lists_commands_for_staff_and_only_help_for_no_role(env: DeskEnv) -> None:
    alice = env.chat("alice")
    await alice.send("help")
    alice.expect("take BILL-n", "informed BILL-n", "`cancel` stops")
    await alice.send("help resolve")
    alice.expect("credit 120.00 EUR")
    nora = env.chat("nora")
    await nora.send("help")
    nora.expect("You don't have a role here yet")
    await nora.send("list")
    nora.expect("I can only show `help`")
    carol = env.chat("carol")
    await carol.send("help")
    carol.expect("ask [text]")
    carol.expect_not("take BILL-n", "note BILL-n")


async def test_resources_lists_microsoft_resources_with_links(env: DeskEnv) -> None:
    chat = env.chat("alice")
    await chat.send("resources")
    chat.expect(
        "Customer Immersion Experience",
        "virtual knowledge base (vKB)",
        "TechNet",
        "Premier Support",
        "https://",
    )


async def test_an_unknown_command_gets_one_line_with_the_closest_command(env: DeskEnv) -> None:
    chat = env.chat("alice")
    await chat.send("stauts BILL-7")  # the arguments typed are kept
    assert chat.text == "I don't know the command “stauts”. Did you mean `status BILL-7`?"
    assert chat.kinds == ["error"]
    await chat.send("lsit all customer Contoso")
    assert chat.text.endswith("Did you mean `list all customer Contoso`?")
    await chat.send("frobnicate BILL-1")  # nothing close: one line pointing to help
    assert chat.text == "I don't know the command “frobnicate”. Type `help` to see what I can do."
    chat.expect_not("Billing desk commands", "take BILL-n")


async def test_the_closest_command_is_one_the_person_may_use(env: DeskEnv) -> None:
    carol = env.chat("carol")  # a customer: no take, no note
    await carol.send("tak BILL-1")
    carol.expect_not("`take")
    await carol.send("nte BILL-1 hello")
    carol.expect_not("`note")
    alice = env.chat("alice")
    await alice.send("tak BILL-1")
    alice.expect("Did you mean `take BILL-1`?")
    nora = env.chat("nora")  # no role: help only
    await nora.send("stauts BILL-1")
    assert nora.text == "I don't know the command “stauts”. Type `help` to see what I can do."
    await nora.send("hlep")
    nora.expect("Did you mean `help`?")


async def test_ask_step_by_step_with_new_customer_and_skip(env: DeskEnv) -> None:
    chat = env.chat("alice")
    await chat.send("ask Why was I charged twice?")
    chat.expect("step 1 of 5", "Customer")
    await chat.send("Northwind")
    chat.expect("I don't know a customer called Northwind yet. Create it?")
    assert chat.button_labels == ["Yes, create it", "No"]
    await chat.click("Yes, create it")
    chat.expect("Customer Northwind created.", "Subscription id")
    await chat.send("not-a-guid")
    chat.expect("A subscription id looks like")
    await chat.send("skip")
    chat.expect("Invoice number")
    await chat.send("G0123 45")
    chat.expect(
        "An invoice number may only have letters A-Z, digits and . _ / # -; "
        "this one also has a space."
    )
    await chat.send("G012345678")
    chat.expect("Category")
    await chat.send("9")
    chat.expect("Please choose one of")
    await chat.send("Tax")
    chat.expect("Suggested: Why was I charged twice?")
    await chat.send("ok")
    chat.expect(
        "Question BILL-1 for Northwind is open", "open", "nobody yet", "Invoice: G012345678"
    )
    case = await env.store.get_case(1)
    assert case is not None and case.category.value == "tax" and case.invoice == "G012345678"
    assert case.subscription_id is None
    assert await env.store.find_customer("northwind") is not None


async def test_required_field_cannot_be_skipped_and_cancel_saves_nothing(env: DeskEnv) -> None:
    chat = env.chat("alice")
    await chat.send("ask")
    await chat.send("skip")
    chat.expect("Customer is required; it cannot be skipped.")
    await chat.send("cancel")
    chat.expect("Cancelled. Nothing was saved.")
    assert env.store.case_counts()["open"] == 0
    await chat.send("list")
    chat.expect("Open cases: none.")


async def test_declining_a_new_customer_asks_again(env: DeskEnv) -> None:
    chat = env.chat("alice")
    await chat.say("ask", "Unknown Corp", "no")
    chat.expect("Customer")
    await chat.send("Contoso")
    chat.expect("Subscription id")


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("12,50 EUR", "Use a dot for decimals: 12.50"),
        ("12,50", "Use a dot for decimals: 12.50"),
        ("-5", "The amount must be more than zero."),
        ("abc", "is not an amount"),
        ("123456789012345678901", "That amount is too large"),
        ("12.50 XYZ", '"XYZ" is not a currency code I know'),
        ("0", "The amount must be more than zero."),
    ],
)
async def test_dispute_amount_validation_reasks(env: DeskEnv, typed: str, message: str) -> None:
    chat = env.chat("alice")
    await chat.say("dispute G012345678", "Contoso", "ok")
    chat.expect("Disputed amount")
    await chat.send(typed)
    chat.expect(message, "Disputed amount")
    assert chat.kinds[0] == "error"


async def test_dispute_with_separate_currency_and_unknown_currency(env: DeskEnv) -> None:
    chat = env.chat("alice")
    await chat.say("dispute", "Contoso", "G012345678", "99.95")
    chat.expect("Currency")
    await chat.send("XYZ")
    chat.expect("is not a currency code I know")
    await chat.send("usd")
    await chat.send("Double billing")
    chat.expect("Dispute BILL-1 for", "99.95 USD")
    case = await env.store.get_case(1)
    assert case is not None and case.dispute is not None
    assert str(case.dispute.amount.amount) == "99.95" and case.dispute.amount.currency == "USD"


async def test_currency_decimal_places_are_checked(env: DeskEnv) -> None:
    chat = env.chat("alice")
    await chat.say("dispute", "Contoso", "G012345678", "100.5 JPY")
    chat.expect("JPY has 0 decimal places")


async def test_status_and_bare_case_id_show_card_and_history(env: DeskEnv) -> None:
    case_id = await env.new_question()
    chat = env.chat("bob")
    await chat.send("status " + case_id)
    chat.expect(
        f"{case_id} · Question · Contoso",
        "State: open",
        f"History of {case_id}",
        "Alice Agent created (via terminal chat)",
    )
    await chat.send(case_id.lower())
    chat.expect("State: open")
    await chat.send("status BILL-999")
    chat.expect("I can't find BILL-999.")
    await chat.send("status")
    chat.expect("Which case?")


async def test_full_question_lifecycle_with_buttons(env: DeskEnv) -> None:
    case_id = await env.new_question()
    bob = env.chat("bob")
    await bob.send(f"status {case_id}")
    assert bob.button_labels == ["Take", "Escalate", "Resolve", "Note", "Assign", "Cancel case"]
    await bob.click("Take")
    bob.expect(f"{case_id} is yours now.", "State: in progress", "Owner: Bob Agent")
    assert bob.replies[0].replace is True
    assert "Take" not in bob.button_labels
    await bob.click("Resolve")
    bob.expect("What was done")
    await bob.send("Reversed the duplicate charge")
    bob.expect(f"{case_id} is resolved", "State: resolved, customer not told yet")
    assert bob.button_labels == ["Customer informed", "Reassign", "Reopen"]
    await bob.click("Customer informed")
    bob.expect("How was the customer told?")
    assert bob.button_labels == ["Email", "Call", "Chat", "Ticket", "Meeting"]
    await bob.click("Call")
    await bob.send("skip")
    bob.expect("Recorded: the customer was told", "State: customer informed")
    await bob.click("Close")
    bob.expect(f"{case_id} is closed.", "State: closed")
    assert bob.button_labels == ["Reopen"]
    case = await env.store.get_case(1)
    assert case is not None
    assert [a.action for a in case.audit] == [
        "created",
        "assigned",
        "started",
        "resolved",
        "customer_informed",
        "closed",
    ]
    assert all(a.channel == "local" for a in case.audit)
    assert case.audit[3].actor == "bob"


async def test_stale_and_double_clicks_change_nothing(env: DeskEnv) -> None:
    case_id = await env.new_question()
    alice, bob = env.chat("alice"), env.chat("bob")
    await alice.send(f"status {case_id}")
    await bob.send(f"status {case_id}")
    take = alice.button("Take").action
    await alice.press(take)
    alice.expect("is yours now")
    before = await env.store.get_case(1)
    await alice.press(take)  # double click
    alice.expect(f"Already done: {case_id} changed since this card was shown")
    assert alice.kinds[0] == "stale" and alice.card is not None
    await bob.click("Take")  # stale card
    bob.expect("Already done")
    after = await env.store.get_case(1)
    assert before is not None and after is not None
    assert (
        after.version == before.version
        and after.owner == "alice"
        and len(after.audit) == len(before.audit)
    )


async def test_forms_from_stale_click_do_not_apply(env: DeskEnv) -> None:
    case_id = await env.new_question()
    alice, bob = env.chat("alice"), env.chat("bob")
    await alice.send(f"take {case_id}")
    await bob.send(f"status {case_id}")
    await bob.click("Cancel case")
    bob.expect("Reason")
    await alice.send(f"resolve {case_id} fixed it")
    await bob.send("duplicate")
    bob.expect("Already done")
    case = await env.store.get_case(1)
    assert case is not None and case.state == State.RESOLVED


async def test_a_note_does_not_make_other_cards_stale(env: DeskEnv) -> None:
    case_id = await env.new_question()
    alice, bob = env.chat("alice"), env.chat("bob")
    await bob.send(f"status {case_id}")
    await alice.send(f"note {case_id} still checking")
    await bob.click("Take")
    bob.expect(f"{case_id} is yours now.")


async def test_assign_notifies_the_assignee_and_agents_cannot_reassign_others(env: DeskEnv) -> None:
    case_id = await env.new_question()
    lena = env.chat("lena")
    await lena.send(f"assign {case_id} bob")
    lena.expect(f"{case_id} now belongs to Bob Agent.")
    items = await env.runtime.take_mailbox("bob")
    assert any("Lena Lead assigned BILL-1 to you." in i["text"] for i in items)
    alice = env.chat("alice")
    await alice.send(f"assign {case_id} alice")
    alice.expect("belongs to someone else; only a lead can reassign it")
    await alice.send(f"take {case_id}")
    alice.expect("already has an owner; ask a lead")
    await lena.send(f"assign {case_id} nobody-here")
    lena.expect("I don't know anyone called nobody-here")
    await lena.send(f"assign {case_id} carol")
    lena.expect("is not on the billing team")
    await lena.send(f"assign {case_id} bob")
    lena.expect("already belongs to that person")


async def test_note_is_internal_and_hidden_from_customers(env: DeskEnv) -> None:
    case_id = await env.new_question(customer="Contoso")
    alice = env.chat("alice")
    await alice.send(f"note {case_id} customer is grumpy, offer credit")
    alice.expect("Internal note added", "customer is grumpy")
    carol = env.chat("carol")
    await carol.send(f"status {case_id}")
    carol.expect("State: open")
    carol.expect_not("grumpy", "internal note", "added a note")
    assert carol.button_labels == []
    await alice.send(f"note {case_id}")
    alice.expect("Internal note")
    await alice.send("cancel")
    await alice.send("note")
    alice.expect("Which case?")


async def test_customers_see_only_their_tenant(env: DeskEnv) -> None:
    contoso = await env.new_question(customer="Contoso", text="Contoso question")
    fabrikam = await env.new_question(customer="Fabrikam", text="Fabrikam question")
    carol = env.chat("carol")
    await carol.send("list")
    carol.expect(contoso, "Contoso question")
    carol.expect_not(fabrikam, "Fabrikam")
    await carol.send(f"status {fabrikam}")
    carol.expect(f"I can't find {fabrikam}.")
    carol.expect_not("Fabrikam")
    await carol.send("list all")
    carol.expect_not("Fabrikam")
    await carol.send("list open customer Fabrikam")
    carol.expect("I don't know a customer called Fabrikam")
    dave = env.chat("dave")
    await dave.send(f"status {contoso}")
    dave.expect(f"I can't find {contoso}.")
    for command in (
        f"take {contoso}",
        f"resolve {contoso} x",
        f"note {contoso} x",
        "customers",
        "customer Contoso",
    ):
        await carol.send(command)
        assert carol.kinds[0] == "error", command
    case = await env.store.get_case(1)
    assert case is not None and case.version == 1


async def test_customer_asks_for_own_tenant_without_customer_field(env: DeskEnv) -> None:
    carol = env.chat("carol")
    await carol.send("ask Where is my invoice?")
    carol.expect("step 1 of 4", "Subscription id")
    await carol.say("skip", "skip", "invoice", "ok")
    carol.expect("Your question is BILL-1", "Contoso")
    # Her cases are those she filed (a customer owns none), not every case of her tenant.
    await env.new_question(customer="Contoso", text="Asked by the desk")
    await carol.send("list mine")
    carol.expect("Your cases (1):", "BILL-1", "Where is my invoice?")
    carol.expect_not("BILL-2")
    case = await env.store.get_case(1)
    assert case is not None and case.customer_id == "contoso" and case.created_by == "carol"


@pytest.mark.parametrize("who", ["alice", "lena"])  # an agent, the lead
async def test_staff_who_file_a_case_are_told_where_it_stands_not_that_the_team_will_pick_it_up(
    env: DeskEnv, who: str
) -> None:
    staff = env.chat(who)
    await staff.say("ask Why two charges?", "Contoso", "yes", "skip", "skip", "charges", "ok")
    staff.expect(
        "Question BILL-1 for Contoso is open and nobody has taken it yet: `take BILL-1` to work "
        "on it, or `assign BILL-1 NAME` to give it to someone."
    )
    await staff.say("dispute G012345678", "Contoso", "ok", "120.00 EUR", "Seats billed twice")
    staff.expect(
        "Dispute BILL-2 for Contoso is open and nobody has taken it yet: `take BILL-2` to work "
        "on it, then `escalate BILL-2` to report it to Microsoft."
    )
    staff.expect_not("billing team", "Thanks!", "Your dispute")
    # A customer hands it over to the billing team.
    carol = env.chat("carol")
    await carol.say("dispute G087654321", "ok", "99.00 EUR", "Charged twice")
    carol.expect("Thanks! Your dispute is BILL-3. The billing team will report it to Microsoft.")
    carol.expect_not("take BILL-3", "escalate")


async def test_escalate_manual_mode_records_request_number(env: DeskEnv) -> None:
    case_id = await env.new_dispute()
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id}")
    alice.expect(
        "No Partner Center credentials are set",
        "Title: Billing dispute for BILL-1",
        "Disputed: 120.00 EUR",
        "Severity",
    )
    await alice.send("moderate")
    await alice.send("x")
    alice.expect("Paste the service request number")
    await alice.send("2411240010001234")
    alice.expect(
        f"{case_id} is escalated to Microsoft as service request 2411240010001234",
        "State: escalated",
    )
    await alice.send(f"escalate {case_id}")
    alice.expect("already escalated")
    carol = env.chat("carol")
    await carol.send(f"status {case_id}")
    carol.expect_not("2411240010001234", "Microsoft request")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("resolve BILL-1", "Microsoft's outcome"),
        ("resolve BILL-1 fixed", "Resolve a dispute with Microsoft's outcome"),
        ("resolve BILL-1 credit 200.00 EUR", "more than the disputed 120.00 EUR"),
        ("resolve BILL-1 credit 50.00 USD", "must be in EUR"),
        ("resolve BILL-1 partial 12,50 EUR", "Use a dot for decimals"),
        ("resolve BILL-1 denied", "Say why Microsoft denied it"),
    ],
)
async def test_dispute_resolution_validation(env: DeskEnv, command: str, message: str) -> None:
    await env.new_dispute()
    alice = env.chat("alice")
    await alice.send(command)
    alice.expect(message)


async def test_dispute_outcomes(env: DeskEnv) -> None:
    await env.new_dispute()
    await env.new_dispute()
    await env.new_dispute()
    alice = env.chat("alice")
    # None was reported to Microsoft: each asks first (tests/test_dispute_rules.py).
    await alice.send("resolve BILL-1 credit 120.00 EUR")
    await alice.click("Resolve anyway")
    alice.expect("Outcome: Credit granted: 120.00 EUR")
    await alice.send("resolve BILL-2 partial 50.00 EUR half of it")
    await alice.click("Resolve anyway")
    alice.expect("Outcome: Partial credit: 50.00 EUR", "Resolution: half of it")
    await alice.send("resolve BILL-3 denied usage was correct")
    await alice.click("Resolve anyway")
    alice.expect("Outcome: Denied", "usage was correct")
    case = await env.store.get_case(2)
    assert case is not None and case.dispute is not None and case.dispute.credited is not None
    assert str(case.dispute.credited.amount) == "50.00"


async def test_dispute_resolve_form_with_credit(env: DeskEnv) -> None:
    case_id = await env.new_dispute()
    alice = env.chat("alice")
    await alice.send(f"resolve {case_id}")
    await alice.click("Partial credit")
    alice.expect("Credited amount")
    await alice.send("60.00 EUR")
    await alice.send("skip")
    alice.expect("was never reported to Microsoft")
    await alice.click("Resolve anyway")
    alice.expect("Partial credit: 60.00 EUR")


@pytest.mark.parametrize(
    ("setup", "command", "message"),
    [
        ([], "close BILL-1", "only a case whose customer was informed can be closed"),
        ([], "informed BILL-1 email", "resolve it before recording"),
        ([], "reopen BILL-1 why", "only resolved, informed or closed cases can be reopened"),
        (["resolve BILL-1 done"], "close BILL-1", "record it first with `informed BILL-1 email`"),
        (
            ["resolve BILL-1 done"],
            "resolve BILL-1 again",
            "already resolved, customer not told yet",
        ),
        (["resolve BILL-1 done"], "cancel BILL-1 dup", "reopen it first"),
        (["resolve BILL-1 done"], "escalate BILL-1", "reopen it first"),
        (
            ["cancel BILL-1 duplicate of BILL-3"],
            "take BILL-1",
            "was cancelled; open a new case instead",
        ),
        (["cancel BILL-1 duplicate of BILL-3"], "reopen BILL-1 x", "was cancelled"),
        (
            ["resolve BILL-1 done", "informed BILL-1 call"],
            "informed BILL-1 email",
            "already customer informed",
        ),
        (
            ["resolve BILL-1 done", "informed BILL-1 call", "close BILL-1"],
            "close BILL-1",
            "already closed",
        ),
        ([], "informed BILL-1 fax", "One of: email, call, chat, ticket, meeting"),
        ([], "cancel BILL-1", "Reason"),
    ],
)
async def test_forbidden_transitions_answer_clearly_and_change_nothing(
    env: DeskEnv, setup: list[str], command: str, message: str
) -> None:
    await env.new_question()
    alice = env.chat("alice")
    await alice.say(*setup)
    before = await env.store.get_case(1)
    await alice.send(command)
    alice.expect(message)
    after = await env.store.get_case(1)
    assert before is not None and after is not None
    assert after.version == before.version and after.state == before.state


async def test_reopen_cancel_and_close_paths(env: DeskEnv) -> None:
    await env.new_question()
    await env.new_question()
    alice = env.chat("alice")
    await alice.say(
        "resolve BILL-1 done",
        "informed BILL-1 email",
        "close BILL-1",
        "reopen BILL-1 customer wrote back",
    )
    alice.expect("BILL-1 is reopened.", "State: reopened")
    assert alice.button_labels == ["Escalate", "Resolve", "Note", "Reassign"]
    await alice.send("take BILL-1")
    alice.expect("State: in progress")
    await alice.send("cancel BILL-2 duplicate of BILL-1")
    alice.expect("BILL-2 is cancelled.", "Cancelled because: duplicate of BILL-1")
    assert alice.button_labels == []


async def test_list_filters(env: DeskEnv) -> None:
    for _ in range(5):
        await env.new_question()
    await env.new_question(customer="Fabrikam")
    alice = env.chat("alice")
    await alice.say(
        "take BILL-1",
        "take BILL-2",
        "resolve BILL-2 done",
        "escalate BILL-3 2411240010001234",
        "resolve BILL-4 done",
        "informed BILL-4 call",
        "close BILL-4",
    )
    await alice.send("list mine")
    alice.expect("Your cases (3)", "BILL-1", "BILL-2", "BILL-3")
    await alice.send("list unassigned")
    alice.expect("Cases nobody has taken (2)", "BILL-5", "BILL-6")
    await alice.send("list escalated")
    alice.expect("Cases escalated to Microsoft (1)", "BILL-3")
    await alice.send("list awaiting-customer")
    alice.expect("Resolved, customer not told yet (1)", "BILL-2")
    await alice.send("list")
    alice.expect("Open cases (5)")
    alice.expect_not("BILL-4 ")
    await alice.send("list all")
    alice.expect("All cases (6)", "BILL-4")
    await alice.send("list all customer Fabrikam")
    alice.expect("All cases of Fabrikam (1)", "BILL-6")
    await alice.send("list sideways")
    alice.expect("I can list:")
    await alice.send("list customer")
    alice.expect("Which customer?")


async def test_list_is_newest_activity_first_and_paged(env: DeskEnv) -> None:
    for _ in range(23):
        await env.new_question()
        env.advance(minutes=1)
    alice = env.chat("alice")
    await alice.send("note BILL-1 bump")
    await alice.send("list")
    lines = [line for line in alice.text.splitlines() if line.startswith("BILL-")]
    assert lines[0].startswith("BILL-1 ") and lines[1].startswith("BILL-23 ")
    assert len(lines) == 20
    alice.expect("Open cases, page 1 of 2 · 23 cases:")
    assert alice.button_labels == ["More"]
    first = lines
    await alice.send("list open page 2")
    alice.expect("Open cases, page 2 of 2 · 23 cases:")
    second = [line for line in alice.text.splitlines() if line.startswith("BILL-")]
    assert [line.split()[0] for line in second] == ["BILL-4", "BILL-3", "BILL-2"]
    assert not {line.split()[0] for line in first} & {line.split()[0] for line in second}
    assert alice.button_labels == []  # the last page
    await alice.send("list page 3")
    alice.expect("Open cases: there are only 2 pages (23 cases).")
    await alice.send("list page 0")
    alice.expect("Pages start at 1")


async def test_the_more_button_runs_the_next_page_and_keeps_the_filter(env: DeskEnv) -> None:
    for _ in range(45):
        await env.new_question(customer="Contoso")
        env.advance(minutes=1)
    await env.new_question(customer="Fabrikam")
    alice = env.chat("alice")
    await alice.send("list all customer Contoso")
    alice.expect("All cases of Contoso, page 1 of 3 · 45 cases:")
    assert alice.button("More").action.as_text() == "list all page 2 customer Contoso"
    seen: list[str] = []
    for page in (2, 3):
        await alice.click("More")
        alice.expect(f"All cases of Contoso, page {page} of 3 · 45 cases:")
        seen += [line.split()[0] for line in alice.text.splitlines() if line.startswith("BILL-")]
    assert seen == [f"BILL-{n}" for n in range(25, 0, -1)]  # stable: newest first, no gaps
    assert alice.button_labels == []
    await alice.send("list all customer Fabrikam")
    alice.expect("All cases of Fabrikam (1):")


async def test_customers_and_customer(env: DeskEnv) -> None:
    await env.new_question(customer="Contoso")
    await env.new_question(customer="Contoso")
    lena = env.chat("lena")
    await lena.send("customers")
    lena.expect("Customers (1)", "Contoso · tenant aaaaaaaa", "owner Lena Lead", "2 open")
    await lena.send("customer contoso")
    lena.expect("Contoso · tenant", "Open cases of Contoso (2)")
    await lena.send("customer Nobody")
    lena.expect("I don't know a customer called Nobody")


async def test_form_state_survives_a_new_runtime_on_the_same_store(env: DeskEnv) -> None:
    chat = env.chat("alice")
    await chat.say("ask", "Contoso", "skip")
    env2 = DeskEnv(store=env.store)
    chat2 = env2.chat("alice")
    await chat2.send("G012345678")
    chat2.expect("Category")


async def test_whole_form_submission_validates_every_field(env: DeskEnv) -> None:
    alice = env.chat("alice")
    await alice.submit(
        "dispute",
        {
            "customer": "Contoso",
            "invoice": "G1@2",
            "amount": "12,50",
            "currency": "EUR",
            "reason": "",
        },
    )
    alice.expect(
        "Please fix the form",
        "Use a dot for decimals: 12.50",
        "Reason is required",
        "Invoice number: An invoice number may only have letters A-Z, digits and . _ / # -; "
        "this one also has “@”.",
    )
    form = alice.replies[0].form
    assert form is not None and set(form.errors) == {"amount", "reason", "invoice"}
    await alice.submit(
        "dispute",
        {
            "customer": "Wingtip",
            "invoice": "G012345678",
            "amount": "12.50",
            "currency": "eur",
            "reason": "wrong",
        },
    )
    alice.expect("New customer Wingtip created.", "Dispute BILL-1 for Wingtip is open", "12.50 EUR")


async def test_clicking_a_form_answer_when_no_form_is_open(env: DeskEnv) -> None:
    alice = env.chat("alice")
    await alice.press(ActionRef("answer", value="yes"))
    alice.expect("That question is no longer open")


async def test_user_text_is_marked_for_escaping(env: DeskEnv) -> None:
    from conversations.text import START

    await env.new_question(text="<!channel> pay now <https://evil.example|bank>")
    alice = env.chat("alice")
    await alice.send("status BILL-1")
    card = alice.card
    assert card is not None
    desc = next(f.value for f in card.facts if strip_pseudo(f.label) == "Description")
    assert desc.startswith(START)


async def test_storage_failure_is_a_friendly_message(env: DeskEnv) -> None:
    from bot.storage import StorageError

    async def broken(ops: object) -> None:
        raise StorageError("disk full")

    env.store.engine.commit = broken  # type: ignore[method-assign]
    chat = env.chat("alice")
    await chat.send("help")
    chat.expect("Billing desk commands")
    await chat.send("ask")
    chat.expect("I could not save that")


async def test_the_same_request_redone_after_a_crash_is_applied_once(env: DeskEnv) -> None:
    from bot.kernel.model import Channel, Message

    case_id = await env.new_question()
    msg = Message(
        Channel.LOCAL, "alice", "dm:alice", text=f"note {case_id} called them", id="req-1"
    )
    first = await env.runtime.handle(msg)
    assert "Internal note added" in first.replies[0].text
    again = Message(
        Channel.LOCAL, "alice", "dm:alice", text=f"note {case_id} called them", id="req-1"
    )
    second = await env.runtime.handle(again)
    assert second.replies[0].kind == "stale" and "Already done" in second.replies[0].text
    case = await env.store.get_case(1)
    assert case is not None and len(case.notes) == 1
    create = Message(
        Channel.LOCAL,
        "alice",
        "c2",
        form_id="ask",
        id="req-2",
        form_values={"customer": "Contoso", "category": "tax", "description": "x"},
    )
    await env.runtime.handle(create)
    await env.runtime.handle(
        Message(
            Channel.LOCAL,
            "alice",
            "c2",
            form_id="ask",
            id="req-2",
            form_values={"customer": "Contoso", "category": "tax", "description": "x"},
        )
    )
    assert env.store.case_counts()["open"] == 2
