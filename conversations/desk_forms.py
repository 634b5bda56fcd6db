"""The desk's forms: the declarations (``FORMS``) and the change each ends in.

Each form is a declaration (conversations/formengine.py runs them): what it
asks, the checks at each step, the rules across fields, the policy action that
guards it and its end — a new question or dispute, or a change of its case
through the desk's ``do_*`` methods. ``FORM_ACTIONS`` is what each of these
forms does; the running desk's ``forms.actions`` adds the flows' forms (escalate).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from bot.domain import (
    Case,
    Category,
    Customer,
    Dispute,
    DomainError,
    InformedVia,
    Kind,
    Outcome,
    Role,
)
from bot.i18n import N_, _
from bot.kernel.model import FieldKind, read_stage
from bot.money import CURRENCIES, Money, MoneyError, parse_money
from bot.policy import Action
from bot.storage import Op
from conversations.desk_commands import DeskCommands
from conversations.formengine import (
    Answers,
    Confirm,
    Field,
    FormDecl,
    FormEnv,
    NewValue,
    Rule,
)
from conversations.forms import (
    CATEGORY_LABELS,
    OUTCOME_LABELS,
    SEVERITY_LABELS,
    SNOOZE_LABELS,
    VIA_LABELS,
    ValidationError,
    invoice_number,
    request_number,
    subscription_id,
)
from conversations.text import u
from conversations.turn import Result, Turn

# ---------------------------------------------------------------------------- the forms
# Each form is a declaration (conversations/formengine.py runs them): what it asks, the
# checks at each step, the rules across fields, the policy action that guards it and the
# change it ends in. A flow module adds its own (escalation.py: the escalate form).


def _staff(env: FormEnv) -> bool:
    return env.turn.actor.role != Role.CUSTOMER


def _is_dispute(env: FormEnv) -> bool:
    return env.case is not None and env.case.kind == Kind.DISPUTE


def _denied(env: FormEnv) -> bool:
    return env.values.get("outcome") == Outcome.DENIED.value


async def _find_customer(env: FormEnv, name: str) -> str | None:
    customer = await env.host.directory.find_customer(name)
    return customer.name if customer else None


async def _create_customer(env: FormEnv, name: str) -> str:
    customer = await env.host.directory.ensure_customer(name)
    return str(customer.name)


NEW_CUSTOMER = NewValue(
    find=_find_customer,
    create=_create_customer,
    applies=_staff,
    question=N_("I don't know a customer called {name} yet. Create it?"),
    created=N_("Customer {name} created."),
    created_now=N_("New customer {name} created."),
)
CUSTOMER = Field(
    "customer",
    N_("Customer"),
    hint=N_("The customer's company name"),
    when=_staff,  # a customer asks for their own tenant
    new_value=NEW_CUSTOMER,
)


def amount_fits_currency(env: FormEnv, values: Answers) -> None:
    """The disputed amount has no more decimal places than its currency (EUR 2, JPY 0)."""
    currency = values["currency"]
    places = CURRENCIES.get(currency, 2)
    exponent = Decimal(values["amount"]).as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise ValidationError(
            _(
                "{amount} has more decimal places than {currency} allows ({places}); "
                "please type the amount again."
            ).format(amount=values["amount"], currency=currency, places=places)
        )


def credit_fits_dispute(env: FormEnv, text: str) -> str:
    """A credit for the dispute's outcome (the domain's rule); no currency: the dispute's."""
    assert env.case is not None and env.case.dispute is not None
    disputed = env.case.dispute.amount
    try:
        credit = parse_money(text, default_currency=disputed.currency)
        # Until the outcome is known (a whole form's first pass) the rule of a full credit.
        outcome = Outcome(env.values.get("outcome") or Outcome.CREDIT_GRANTED.value)
        env.case.check_credit(outcome, credit)
    except (MoneyError, DomainError) as exc:
        raise ValidationError(str(exc)) from None
    return str(credit.amount)


async def assignee(env: FormEnv, who: str) -> str:
    """Someone on the billing team: an @mention or a name from the config."""
    user = await env.host.directory.find_assignee(who, env.turn.msg)
    if user is None:
        raise ValidationError(
            _(
                "I don't know anyone called {name}. Use an @mention or a name from the config."
            ).format(name=u(who))
        )
    if user.role not in (Role.AGENT, Role.LEAD):
        raise ValidationError(
            _("{name} is not on the billing team, so cannot own cases.").format(
                name=u(user.display_name)
            )
        )
    return who


async def _question(env: FormEnv, values: Answers, clear_op: Op) -> Result:
    turn = env.turn
    category = Category(values["category"])

    def build(number: int, customer: Customer) -> Case:
        return Case.new(
            number,
            kind=Kind.QUESTION,
            customer_id=customer.id,
            category=category,
            description=values["description"],
            actor=turn.actor,
            now=turn.now,
            subscription_id=values.get("subscription_id") or None,
            invoice=values.get("invoice") or None,
        )

    return await env.host.new_case(turn, values, build, clear_op)


async def _dispute(env: FormEnv, values: Answers, clear_op: Op) -> Result:
    turn = env.turn
    amount = Money(Decimal(values["amount"]), values["currency"])

    def build(number: int, customer: Customer) -> Case:
        return Case.new(
            number,
            kind=Kind.DISPUTE,
            customer_id=customer.id,
            category=Category.CHARGES,
            description=values["reason"],
            actor=turn.actor,
            now=turn.now,
            invoice=values["invoice"],
            dispute=Dispute(values["invoice"], amount, values["reason"]),
        )

    return await env.host.new_case(turn, values, build, clear_op)


CaseAct = Callable[[DeskCommands, Turn, Case, Answers], Awaitable[Result]]


def on_case(act: CaseAct) -> Callable[[FormEnv, Answers, Op], Awaitable[Result]]:
    """A form's end on its case: the form ends first; a card older than the case changes nothing."""

    async def complete(env: FormEnv, values: Answers, clear_op: Op) -> Result:
        desk: DeskCommands = env.host
        case = env.case
        assert case is not None  # the engine loaded it (or said it no longer exists)
        await desk.store.commit([clear_op])
        stage = read_stage(env.ctx)  # also the older "version" of a form sent before
        if stage is not None and stage != case.stage:
            return await desk.stale_reply(env.turn, case)
        env.turn.clicked = None
        return await act(desk, env.turn, case, values)

    return complete


async def _resolve(desk: DeskCommands, turn: Turn, case: Case, values: Answers) -> Result:
    outcome = Outcome(values["outcome"]) if values.get("outcome") else None
    credited = None
    if values.get("credited") and case.dispute:
        credited = Money(Decimal(values["credited"]), case.dispute.amount.currency)
    text = values.get("resolution") or _("{outcome}: {amount}").format(
        outcome=_(OUTCOME_LABELS[outcome]) if outcome else "",
        amount=str(credited) if credited else "",
    )
    return await desk.do_resolve(turn, case, text, outcome, credited)


def _unreported(env: FormEnv, values: Answers) -> str | None:
    """A dispute never reported to Microsoft is resolved only when the person confirms."""
    case = env.case
    if case is None or case.kind != Kind.DISPUTE or case.reported_to_microsoft:
        return None
    return _(
        "{case} was never reported to Microsoft (no service request; `escalate {case}` "
        "files one), so there is no answer from Microsoft yet. Resolve it anyway?"
    ).format(case=case.id)


async def _informed(desk: DeskCommands, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk.do_informed(turn, case, InformedVia(values["via"]), values.get("text", ""))


async def _reopen(desk: DeskCommands, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk.do_reopen(turn, case, values["reason"])


async def _cancel(desk: DeskCommands, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk.do_cancel(turn, case, values["reason"])


async def _snooze(desk: DeskCommands, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk.do_snooze(turn, case, values["until"])


async def _note(desk: DeskCommands, turn: Turn, case: Case, values: Answers) -> Result:
    case.add_note(values["text"], turn.actor, turn.now)
    return await desk.save_and_show(
        turn, case, _("Internal note added to {case}.").format(case=case.id)
    )


async def _add(desk: DeskCommands, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk.do_add(turn, case, values["text"])


async def _assign(desk: DeskCommands, turn: Turn, case: Case, values: Answers) -> Result:
    return await desk.do_assign(turn, case, values["user"])


async def load_customer(env: FormEnv) -> None:
    """The case's customer, for intros and suggestions (``env.data["customer"]``)."""
    if env.case is not None:
        env.data["customer"] = await env.host.store.get_customer(env.case.customer_id)


REASON = Field("reason", N_("Reason"), FieldKind.LONG_TEXT)
SEVERITY = Field(
    "severity", N_("Severity"), FieldKind.CHOICE, choices=SEVERITY_LABELS, default="moderate"
)
REQUEST_ID = Field("request_id", N_("Service request number"), checks=(request_number,))

FORMS: tuple[FormDecl, ...] = (
    FormDecl(
        "ask",
        Action.ASK,
        N_("New billing question"),
        fields=(
            CUSTOMER,
            Field(
                "subscription_id", N_("Subscription id"), required=False, checks=(subscription_id,)
            ),
            Field("invoice", N_("Invoice number"), required=False, checks=(invoice_number,)),
            Field("category", N_("Category"), FieldKind.CHOICE, choices=CATEGORY_LABELS),
            Field("description", N_("Question"), FieldKind.LONG_TEXT),
        ),
        complete=_question,
    ),
    FormDecl(
        "dispute",
        Action.DISPUTE,
        N_("New billing dispute"),
        fields=(
            CUSTOMER,
            Field("invoice", N_("Invoice number"), checks=(invoice_number,)),
            Field("amount", N_("Disputed amount"), FieldKind.AMOUNT, hint=N_("For example 120.00")),
            Field("currency", N_("Currency"), FieldKind.CURRENCY, hint=N_("EUR, USD, CNY…")),
            REASON,
        ),
        rules=(Rule(("amount", "currency"), amount_fits_currency, ask_again="amount"),),
        complete=_dispute,
    ),
    FormDecl(
        "resolve",
        Action.RESOLVE,
        N_("Resolve {case}"),
        on_case=True,
        fields=(
            Field(
                "outcome",
                N_("Microsoft's outcome"),
                FieldKind.CHOICE,
                choices=OUTCOME_LABELS,
                when=_is_dispute,
            ),
            Field(
                "credited",
                N_("Credited amount"),
                FieldKind.AMOUNT,
                hint=N_("For example 120.00 EUR"),
                checks=(credit_fits_dispute,),
                when=lambda env: _is_dispute(env) and not _denied(env),
            ),
            Field(
                "resolution",
                N_("What was done"),
                FieldKind.LONG_TEXT,
                required=lambda env: not _is_dispute(env) or _denied(env),
            ),
        ),
        complete=on_case(_resolve),
        confirm=Confirm(_unreported, N_("Resolve anyway")),
    ),
    FormDecl(
        "informed",
        Action.INFORMED,
        N_("Customer informed about {case}"),
        on_case=True,
        fields=(
            Field("via", N_("How was the customer told?"), FieldKind.CHOICE, choices=VIA_LABELS),
            Field("text", N_("Anything to add"), FieldKind.LONG_TEXT, required=False),
        ),
        complete=on_case(_informed),
    ),
    FormDecl(
        "reopen", Action.REOPEN, N_("Reopen {case}"), (REASON,), on_case(_reopen), on_case=True
    ),
    FormDecl(
        "cancel", Action.CANCEL, N_("Cancel {case}"), (REASON,), on_case(_cancel), on_case=True
    ),
    FormDecl(
        "snooze",
        Action.SNOOZE,
        N_("Snooze the reminders for {case}"),
        (Field("until", N_("Remind me again in"), FieldKind.CHOICE, choices=SNOOZE_LABELS),),
        on_case(_snooze),
        on_case=True,
    ),
    FormDecl(
        "note",
        Action.NOTE,
        N_("Note on {case}"),
        (Field("text", N_("Internal note"), FieldKind.LONG_TEXT),),
        on_case(_note),
        on_case=True,
    ),
    FormDecl(
        "add",
        Action.ADD,
        N_("Add to {case}"),
        (
            Field(
                "text",
                N_("Your comment"),
                FieldKind.LONG_TEXT,
                hint=N_("The customer and the billing team both see it"),
            ),
        ),
        on_case(_add),
        on_case=True,
    ),
    FormDecl(
        "assign",
        Action.ASSIGN,
        N_("Assign {case}"),
        (
            Field(
                "user",
                N_("Assign to"),
                hint=N_("An @mention or a name from the config"),
                checks=(assignee,),
            ),
        ),
        on_case(_assign),
        on_case=True,
    ),
)
# What each form does, checked before a form is opened by a click or taken as submitted.
FORM_ACTIONS = {decl.id: decl.action for decl in FORMS}
