"""The ``overdue`` and ``paid`` commands: who owes what, by stage, and recording a payment."""

from __future__ import annotations

from decimal import Decimal

from bot.config import CollectionsStage
from bot.domain import DomainError, NotFound, Role, check_invoice_number
from bot.i18n import N_, _, format_date, format_days
from bot.kernel.model import ActionRef, Button, ButtonStyle, Reply
from bot.money import MoneyError, parse_money
from bot.policy import Action, check
from bot.receivables import CustomerOverdue, Receivable, ReceivableError, invoice_key
from bot.storage import Op, VersionConflict
from conversations.collections.base import CollectionsBase
from conversations.collections.letters import _stage_label, _upper_first
from conversations.collections.state import _copy, _settled_ops, _state, audit_op, load_receivables
from conversations.commands import Command
from conversations.desk import Result, Turn
from conversations.registry import command
from conversations.text import u


class OverdueCommands(CollectionsBase):
    """``overdue`` (the list by collections stage) and ``paid INVOICE [amount]``."""

    # ---- overdue ---------------------------------------------------------------------
    @command(
        "overdue",
        aliases=("逾期",),
        action=Action.OVERDUE,
        usage="overdue",
        help=N_("overdue customers by collections stage, days and amount"),
    )
    async def cmd_overdue(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.OVERDUE)
        items = self.overdue(turn.now)
        today = self.today(turn.now)
        if not items:
            return Result(
                [
                    Reply(
                        text=_(
                            "Nothing is overdue as of {today}. Receivables come in with "
                            "`billing-bot receivables import FILE.csv`."
                        ).format(today=format_date(today)),
                        kind="list",
                    )
                ]
            )
        names = await self._names()
        customers = {c.id: c for c in await self.store.customers()}
        lines = [
            _("Overdue customers ({n}) as of {today}, by stage:").format(
                n=len(items), today=format_date(today)
            )
        ]
        buttons: list[Button] = []
        groups: list[tuple[CollectionsStage | None, list[CustomerOverdue]]] = []
        for policy_stage in reversed(self.stages):
            groups.append((policy_stage, [c for c in items if c.stage == policy_stage]))
        groups.append((None, [c for c in items if c.stage is None]))
        for stage, group in groups:
            if not group:
                continue
            if stage is None:
                lines.append(_("Not yet at a stage:"))
            else:
                lines.append(
                    _("{label} (day {days}+):").format(
                        label=_upper_first(_stage_label(stage.action)), days=stage.days
                    )
                )
            for c in group:
                customer = customers.get(c.customer_id)
                owner_id = customer.owner if customer and customer.owner else None
                owner = names.get(owner_id or "", owner_id or _("no owner"))
                state = _state(self.store, c.customer_id)
                line = _("• {name} · {how_long} · {amount} · {invoices} · owner {owner}").format(
                    name=u(c.customer_name),
                    how_long=format_days(c.days),
                    amount=c.amount_text,
                    invoices=", ".join(u(i) for i in c.invoice_numbers),
                    owner=u(owner),
                )
                if state.get("status") == "suspended":
                    line += " · " + _("suspended")
                lines.append(line)
                if (
                    stage is not None
                    and stage.action == "suspend"
                    and state.get("status") != "suspended"
                    and turn.actor.role == Role.LEAD
                ):
                    buttons.append(
                        Button(
                            _("Suspend {name}…").format(name=u(c.customer_name)),
                            ActionRef("suspend", value=c.customer_name),
                            ButtonStyle.DANGER,
                        )
                    )
        lines.append(_("Record a payment with `paid INVOICE [amount]`."))
        return Result([Reply(text="\n".join(lines), buttons=buttons[:5], kind="list")])

    # ---- paid ------------------------------------------------------------------------
    @command(
        "paid",
        needs="word",
        aliases=("已付款",),
        action=Action.PAID,
        usage="paid INVOICE [amount]",
        help=N_("record a payment: all that is open, or a part"),
    )
    async def cmd_paid(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.PAID)
        words = cmd.words
        if not words:
            raise DomainError(_("Which invoice? `paid INV-1001` or `paid INV-1001 250.00`"))
        invoice, amount_text = check_invoice_number(words[0]), " ".join(words[1:])
        for _attempt in range(3):
            doc = self.store.receivable_doc(invoice_key(invoice))
            if doc is None:
                raise NotFound(
                    _("I don't know invoice {invoice}. Import receivables first.").format(
                        invoice=u(invoice)
                    )
                )
            receivable = Receivable.from_doc(_copy(doc))
            amount: Decimal | None = None
            if amount_text:
                money = parse_money(amount_text, default_currency=receivable.currency)
                if money.currency != receivable.currency:
                    raise MoneyError(
                        _("Invoice {invoice} is in {currency}, not {other}.").format(
                            invoice=u(receivable.invoice),
                            currency=receivable.currency,
                            other=money.currency,
                        )
                    )
                amount = money.amount
            try:
                applied = receivable.record_payment(amount, turn.actor.user_id, turn.now)
            except ReceivableError as exc:
                raise DomainError(str(exc)) from None
            doc_out = receivable.to_doc()
            doc_out["version"] = receivable.version + 1
            ops = [
                self.store.receivable_op(receivable.key, doc_out, expect=receivable.version),
                audit_op(
                    turn.now,
                    turn.actor.user_id,
                    turn.actor.channel,
                    "payment_recorded",
                    receivable.customer_id,
                    invoice=receivable.invoice,
                    amount=str(applied),
                    outstanding=str(receivable.outstanding),
                ),
            ]
            customer = await self.store.get_customer(receivable.customer_id)
            all_receivables = [
                r if r.key != receivable.key else receivable for r in load_receivables(self.store)
            ]
            offer: list[Op] = []
            if customer is not None:
                offer = _settled_ops(
                    self.store,
                    self.settings,
                    customer,
                    all_receivables,
                    turn.now,
                    turn.actor.user_id,
                    turn.actor.channel,
                )
            try:
                await self.store.commit(ops + offer)
            except VersionConflict:
                continue
            break
        else:
            raise DomainError(_("That invoice kept changing; please try again."))
        if receivable.settled:
            text = _("Recorded {amount} paid on invoice {invoice} ({customer}): paid in full.")
        else:
            text = _(
                "Recorded {amount} paid on invoice {invoice} ({customer}); {outstanding} is "
                "still open."
            )
        text = text.format(
            amount=str(applied),
            invoice=u(receivable.invoice),
            customer=u(receivable.customer_name),
            outstanding=str(receivable.outstanding),
        )
        buttons: list[Button] = []
        state = _state(self.store, receivable.customer_id)
        if (
            state.get("status") == "suspended"
            and self.overdue_of(receivable.customer_id, turn.now) is None
        ):
            names = await self._names()
            owner = customer.owner if customer else None
            text += "\n" + _(
                "{customer} has nothing overdue any more and its subscriptions are suspended: "
                "{owner} is offered Reactivate."
            ).format(customer=u(receivable.customer_name), owner=u(names.get(owner or "", owner)))
            if turn.actor.role == Role.LEAD:
                buttons.append(
                    Button(
                        _("Reactivate {name}…").format(name=u(receivable.customer_name)),
                        ActionRef("reactivate", value=receivable.customer_name),
                        ButtonStyle.PRIMARY,
                    )
                )
        return Result([Reply(text=text, buttons=buttons)])
