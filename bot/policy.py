"""The one authorization policy: role × action → allowed, plus the customer-tenant rule.

Every flow calls :func:`check` (or :func:`allowed`) before it acts; the
authorization matrix tests are generated from :data:`MATRIX`, so the table
below is the single source of truth for who may do what.
"""

from __future__ import annotations

from enum import StrEnum

from bot.domain import CUSTOMER_OPEN_STATES, STATE_LABELS, Actor, Case, DomainError, Role
from bot.i18n import _


class Action(StrEnum):
    HELP = "help"
    RESOURCES = "resources"
    ASK = "ask"
    DISPUTE = "dispute"
    STATUS = "status"
    LIST = "list"
    TAKE = "take"
    ASSIGN = "assign"
    NOTE = "note"
    VIEW_NOTES = "view_notes"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    INFORMED = "informed"
    REOPEN = "reopen"
    CANCEL = "cancel"
    CLOSE = "close"
    SNOOZE = "snooze"
    REMINDERS = "reminders"
    CUSTOMERS = "customers"
    CUSTOMER = "customer"
    OVERDUE = "overdue"
    PAID = "paid"
    SUSPEND = "suspend"
    REACTIVATE = "reactivate"
    LANGUAGE = "language"
    ADD = "add"  # a comment on a case, visible to the customer (``add``)
    WITHDRAW = "withdraw"  # a customer cancels their own case (``withdraw``)
    ATTACH = "attach"


_EVERYONE = frozenset({Action.HELP})
_CUSTOMER = _EVERYONE | {
    Action.RESOURCES,
    Action.ASK,
    Action.DISPUTE,
    Action.STATUS,
    Action.LIST,
    Action.LANGUAGE,
    Action.ADD,
    Action.WITHDRAW,
    Action.ATTACH,  # a file on their own tenant's case (see CUSTOMER_CASE_ACTIONS)
}
# PRODUCT.md lists close for neither role; a desk that cannot close cases makes no
# sense, so agents may close (after the customer was informed, which the domain enforces).
_AGENT = _CUSTOMER | {
    Action.TAKE,
    Action.ASSIGN,  # own or unowned cases only; others' cases need a lead (see check)
    Action.NOTE,
    Action.VIEW_NOTES,
    Action.ESCALATE,
    Action.RESOLVE,
    Action.INFORMED,
    Action.REOPEN,
    Action.CANCEL,
    Action.CLOSE,
    Action.SNOOZE,
    Action.REMINDERS,
    Action.CUSTOMERS,
    Action.CUSTOMER,
    Action.OVERDUE,
    Action.PAID,
}
_LEAD = _AGENT | {Action.SUSPEND, Action.REACTIVATE}

MATRIX: dict[Role, frozenset[Action]] = {
    Role.NONE: frozenset(_EVERYONE),
    Role.CUSTOMER: frozenset(_CUSTOMER),
    Role.AGENT: frozenset(_AGENT),
    Role.LEAD: frozenset(_LEAD),
}

# Actions on a case that a customer may perform on their own tenant's cases.
CUSTOMER_CASE_ACTIONS = frozenset({Action.STATUS, Action.ADD, Action.WITHDRAW, Action.ATTACH})
# ... of which these only while the case is open (bot.domain.CUSTOMER_OPEN_STATES).
CUSTOMER_OPEN_CASE_ACTIONS = frozenset({Action.ADD, Action.WITHDRAW})


class Forbidden(DomainError):
    """The actor's role does not allow the action."""


def _refusal(actor: Actor, action: Action) -> str:
    if action in (Action.SUSPEND, Action.REACTIVATE):
        return _("Only a lead can suspend or reactivate subscriptions.")
    if actor.role == Role.NONE:
        return _(
            "You don't have a role on this billing desk yet, so I can only show `help`. "
            "Ask your billing team lead to add you."
        )
    if actor.role == Role.CUSTOMER:
        return _(
            "That is for the billing team. You can ask a question (`ask`), open a dispute "
            "(`dispute`), check your cases (`list`, `status BILL-n`), add to one "
            "(`add BILL-n text`) or withdraw it (`withdraw BILL-n`)."
        )
    return _("You are not allowed to {action}.").format(action=action.value)


def allowed(
    actor: Actor, action: Action, case: Case | None = None, *, customer_tenant: str | None = None
) -> bool:
    """True when ``actor`` may do ``action`` on ``case`` (customer tenant ``customer_tenant``)."""
    try:
        check(actor, action, case, customer_tenant=customer_tenant)
    except Forbidden:
        return False
    return True


def check(
    actor: Actor,
    action: Action,
    case: Case | None = None,
    *,
    customer_tenant: str | None = None,
) -> None:
    """Raise :class:`Forbidden` unless ``actor`` may do ``action``.

    For a case action, ``customer_tenant`` is the tenant id of the case's
    customer: a customer actor only ever reaches cases of their own tenant
    (and the refusal does not reveal whether the case exists).
    """
    if action not in MATRIX[actor.role]:
        raise Forbidden(_refusal(actor, action))
    if case is None:
        return
    if actor.role == Role.CUSTOMER:
        if actor.tenant_id is None or customer_tenant != actor.tenant_id:
            # Same words as a missing case: a customer learns nothing of other tenants.
            raise Forbidden(_("I can't find {case}.").format(case=case.id))
        if action not in CUSTOMER_CASE_ACTIONS:
            raise Forbidden(_refusal(actor, action))
        if action in CUSTOMER_OPEN_CASE_ACTIONS and case.state not in CUSTOMER_OPEN_STATES:
            raise Forbidden(
                _(
                    "{case} is {state}, so it can no longer be changed. "
                    "Ask a new question with `ask` if something is still open."
                ).format(case=case.id, state=_(STATE_LABELS[case.state]))
            )
    if action == Action.ASSIGN and actor.role == Role.AGENT:
        if case.owner not in (None, actor.user_id):
            raise Forbidden(
                _("{case} belongs to someone else; only a lead can reassign it.").format(
                    case=case.id
                )
            )
    if action == Action.TAKE and actor.role == Role.AGENT:
        if case.owner not in (None, actor.user_id):
            raise Forbidden(
                _("{case} already has an owner; ask a lead to assign it to you.").format(
                    case=case.id
                )
            )


def can_see_internal(actor: Actor) -> bool:
    """Internal notes and service-request details are for staff only."""
    return actor.role in (Role.AGENT, Role.LEAD)
