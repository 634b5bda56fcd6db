"""Working on one case: the helpers every desk command, form and flow module uses.

:class:`CaseWork` loads a case and checks the policy on it (a click on a card
older than the case raises :class:`_Stale`: answered with the current card),
saves it with the request's id in the same commit (:func:`applied_key`: a
request redone after a crash answers "already done"), shows its card, starts
work on it, notifies its people, opens a new case from a form, and names it in
a Microsoft service request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.domain import (
    Actor,
    Case,
    Customer,
    DomainError,
    Kind,
    NotFound,
    Role,
    State,
    User,
    format_case_id,
)
from bot.i18n import _, use_locale
from bot.kernel.model import Notification, Reply
from bot.kernel.scheduler import escalation_leads, notify_key, notify_op, watch_op
from bot.policy import Action, Forbidden, check
from bot.storage import Op, Store
from conversations.cards import case_card
from conversations.directory import Directory, tenant_key
from conversations.formengine import FormEngine
from conversations.registry import Registry
from conversations.text import u
from conversations.turn import Result, Turn


class _Stale(Exception):
    """A click on a card older than the case: answered with the current card."""

    def __init__(self, case: Case) -> None:
        super().__init__(case.id)
        self.case = case


def applied_key(message_id: str | None) -> str:
    return f"applied:{message_id}"


def _reply(text: str, **kw: Any) -> Result:
    return Result([Reply(text=text, **kw)])


class CaseWork:
    """A case loaded, checked, saved and shown: the base of the desk's commands."""

    # Set by :class:`~conversations.desk.Desk` (the runtime sets ``scheduler_view``).
    store: Store
    settings: Settings
    clock: Clock
    directory: Directory
    scheduler_view: Callable[[User, datetime], Awaitable[list[tuple[datetime, str, str]]]]
    forms: FormEngine
    commands: Registry

    # ---------------------------------------------------------------- helpers
    async def _names(self) -> dict[str, str]:
        return self.store.user_names()

    async def _customer_tenant(self, case: Case) -> str | None:
        customer = await self.store.get_customer(case.customer_id)
        return tenant_key(customer) if customer else None

    async def card_for(self, turn: Turn, case: Case) -> Any:
        customer = await self.store.get_customer(case.customer_id)
        return case_card(
            case,
            customer,
            turn.actor,
            turn.user.time_zone,
            await self._names(),
            turn.now,
            tenant_key(customer) if customer else None,
        )

    async def load_case(self, turn: Turn, number: int | None, action: Action, usage: str) -> Case:
        if number is None:
            raise DomainError(_("Which case? Use it like this: `{usage}`").format(usage=usage))
        case = await self.store.get_case(number)
        if case is None:
            raise NotFound(_("I can't find {case}.").format(case=format_case_id(number)))
        turn.case_number = case.number
        tenant = await self._customer_tenant(case)
        if self._stale(turn, case):
            check(turn.actor, Action.STATUS, case, customer_tenant=tenant)
            raise _Stale(case)
        check(turn.actor, action, case, customer_tenant=tenant)
        return case

    def _stale(self, turn: Turn, case: Case) -> bool:
        clicked = turn.clicked
        return bool(
            clicked
            and clicked.case_id == case.id
            and clicked.stage is not None
            and clicked.stage != case.stage
        )

    async def stale_reply(self, turn: Turn, case: Case) -> Result:
        return Result(
            [
                Reply(
                    text=_(
                        "Already done: {case} changed since this card was shown. Here it is now."
                    ).format(case=case.id),
                    kind="stale",
                    private=True,
                ),
                Reply(card=await self.card_for(turn, case), replace=True),
            ]
        )

    async def save_and_show(
        self,
        turn: Turn,
        case: Case,
        text: str,
        notifications: list[Notification] | None = None,
        extra_ops: list[Op] | None = None,
    ) -> Result:
        await self.store.save_case(case, [*(extra_ops or []), *self._applied(turn, case.number)])
        card = await self.card_for(turn, case)
        return Result(
            [Reply(text=text, card=card, replace=turn.clicked is not None)],
            notifications or [],
        )

    def ensure_started(self, turn: Turn, case: Case) -> None:
        """Work on an open or reopened case starts it (and gives it an owner if it has none)."""
        if case.state in (State.OPEN, State.REOPENED):
            if case.owner is None:
                case.set_owner(turn.actor.user_id, turn.actor, turn.now)
            case.start(turn.actor, turn.now)

    def _notify_op(self, user_id: str, case: Case, kind: str, text: str, turn: Turn) -> Op:
        """A durable notification job, written in the same commit as the change it reports."""
        key = notify_key(case.id, case.stage, kind, user_id)
        return notify_op(key, user_id, text, case.number, turn.now)

    async def _tell_the_desk(
        self, turn: Turn, case: Case, kind: str, text: Callable[[], str]
    ) -> list[Op]:
        """DMs about ``case``'s news to its owner, or to the unassigned queue: who gets the
        first-response pings (the escalation target, else every lead). Never to the actor.

        ``text()`` is called in each recipient's language; the jobs go in the change's commit.
        """
        owner = await self.store.get_user(case.owner) if case.owner else None
        people = [owner] if owner is not None else await escalation_leads(self.store, self.settings)
        ops = []
        for person in people:
            if person.id == turn.actor.user_id:
                continue
            with use_locale(person.locale):
                ops.append(self._notify_op(person.id, case, kind, text(), turn))
        return ops

    def _applied(self, turn: Turn, case_number: int) -> list[Op]:
        """Marks this request as done, in the same commit as the change it made."""
        if not turn.msg.id:
            return []
        doc = {"case": case_number, "expires": (turn.now + timedelta(days=2)).isoformat()}
        return [self.store.event_record_op(applied_key(turn.msg.id), doc, expect=None)]

    def sr_title(self, case: Case) -> str:
        if case.kind == Kind.DISPUTE:
            return _("Billing dispute for {case}").format(case=case.id)
        return _("Billing question for {case}").format(case=case.id)

    @staticmethod
    def sr_description(case: Case, customer: Customer | None) -> str:
        parts = [
            f"Customer: {customer.name if customer else case.customer_id}"
            + (f" (tenant {customer.tenant_id})" if customer and customer.tenant_id else ""),
        ]
        if case.subscription_id:
            parts.append(f"Subscription: {case.subscription_id}")
        if case.invoice:
            parts.append(f"Invoice: {case.invoice}")
        if case.dispute:
            parts.append(f"Disputed: {case.dispute.amount} on invoice {case.dispute.invoice}")
            parts.append(f"Reason: {case.dispute.reason}")
        if not case.dispute or case.description != case.dispute.reason:
            parts.append(case.description)
        return "\n".join(parts)

    async def new_case(
        self,
        turn: Turn,
        values: dict[str, str],
        build: Callable[[int, Customer], Case],
        clear_op: Op,
    ) -> Result:
        """A question or dispute from its form: the case, its watch, the form's end, one commit."""
        actor = turn.actor
        if actor.role == Role.CUSTOMER:
            customer = await self._customer_of(actor)
        else:
            customer = await self.directory.ensure_customer(values["customer"])
        case = await self.store.create_case(
            lambda number: build(number, customer),
            lambda new: [
                clear_op,
                watch_op(new, turn.now, self.settings),
                *self._applied(turn, new.number),
            ],
        )
        turn.case_number = case.number  # the new case is the case in context
        card = await self.card_for(turn, case)
        return Result([Reply(text=self.created_text(turn, case, customer), card=card)])

    @staticmethod
    def created_text(turn: Turn, case: Case, customer: Customer) -> str:
        """What the person who filed a case reads: worded for their role.

        A customer hands it to the billing team; staff *are* the billing team, so they
        read where the case stands (open, nobody has taken it) and what comes next.
        """
        dispute = case.kind == Kind.DISPUTE
        if turn.actor.role == Role.CUSTOMER:
            if dispute:
                text = _(
                    "Thanks! Your dispute is {case}. The billing team will report it to Microsoft."
                )
            else:
                text = _("Thanks! Your question is {case}. The billing team will pick it up.")
        elif dispute:
            text = _(
                "Dispute {case} for {customer} is open and nobody has taken it yet: `take {case}` "
                "to work on it, then `escalate {case}` to report it to Microsoft."
            )
        else:
            text = _(
                "Question {case} for {customer} is open and nobody has taken it yet: "
                "`take {case}` to work on it, or `assign {case} NAME` to give it to someone."
            )
        return text.format(case=case.id, customer=u(customer.name))

    async def _customer_of(self, actor: Actor) -> Customer:
        for customer in await self.store.customers():
            if tenant_key(customer) == actor.tenant_id:
                return customer
        raise Forbidden(_("This conversation is not linked to a customer; ask the billing team."))
