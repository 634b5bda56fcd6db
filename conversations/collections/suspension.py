"""Suspend and reactivate a customer's subscriptions: the confirmed, idempotent operation.

``suspend CUSTOMER`` / ``reactivate CUSTOMER`` need the ``lead`` role (a
refusal is audited) and propose an operation (``op:<id>``) that names the
customer, the subscriptions and the amount overdue. Confirming it stores the
confirmed state *before* any Partner Center call, so a double click or a retry
never PATCHes twice; each subscription's result is recorded as it comes.
Without Partner Center credentials (or without the customer's tenant id) it is
manual mode: the steps in the Partner Center portal, then *Done in Partner
Center*. ``cancel``, ``done`` and ``retry`` move the same operation; an old or
second click says where it stands and changes nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from bot.domain import Customer, DomainError, NotFound
from bot.i18n import N_, _, format_days, ngettext
from bot.kernel.model import ActionRef, Button, ButtonStyle, Reply
from bot.kernel.scheduler import iso
from bot.partner_center import PartnerCenterError, SubscriptionStatus
from bot.policy import Action, Forbidden, check
from bot.receivables import CustomerOverdue
from bot.storage import Op, VersionConflict
from conversations.cards import local_time
from conversations.collections.base import CollectionsBase
from conversations.collections.letters import _upper_first, draft_text
from conversations.collections.state import _copy, _state, _state_op, audit_op, load_receivables
from conversations.commands import Command
from conversations.desk import Result, Turn
from conversations.registry import command
from conversations.text import u

log = logging.getLogger(__name__)


OP_VERBS = frozenset({"confirm", "cancel", "done", "retry"})
# The words of the operation's steps (``suspend confirm <id>``), with the Chinese ones.
_OP_WORDS = {"confirm": ("确认",), "cancel": ("取消",), "done": ("完成",), "retry": ("重试",)}
OP_TTL = timedelta(hours=24)  # an unanswered confirmation must be asked again after this
RUNNING_TIMEOUT = timedelta(minutes=10)  # a run left "running" by a crash may be retried
_OP_ID = re.compile(r"^[0-9a-f]{12}$")
PORTAL_URL = "https://partner.microsoft.com/dashboard"


_OP_STATE_LABELS = {"cancelled": N_("cancelled"), "expired": N_("expired")}
_SUB_STATUS_LABELS = {"active": N_("active"), "suspended": N_("suspended")}


def _sub_status(value: object) -> str:
    """A subscription status from Partner Center (``suspended``…) in the current locale."""
    text = str(value or "")
    return _(_SUB_STATUS_LABELS[text]) if text in _SUB_STATUS_LABELS else text


def _empty_overdue(customer: Customer, today: date) -> CustomerOverdue:
    return CustomerOverdue(customer.id, customer.name, customer.tenant_id, 0, today, (), (), None)


class Suspensions(CollectionsBase):
    """``suspend`` and ``reactivate``: propose, confirm, run (API or manual), report."""

    # ---- suspend / reactivate --------------------------------------------------------
    @command(
        "suspend",
        needs="word",
        aliases=("暂停",),
        action=Action.SUSPEND,
        usage="suspend CUSTOMER",
        help=N_("suspend a customer's subscriptions for non-payment (you confirm first)"),
        handler_checks=True,  # a refusal is audited
        words=_OP_WORDS,
    )
    async def cmd_suspend(self, turn: Turn, cmd: Command) -> Result:
        await self._check_lead(turn, Action.SUSPEND, cmd)
        return await self._subscriptions(turn, cmd, "suspended")

    @command(
        "reactivate",
        needs="word",
        aliases=("恢复", "重新激活"),
        action=Action.REACTIVATE,
        usage="reactivate CUSTOMER",
        help=N_("reactivate a customer's suspended subscriptions (you confirm first)"),
        handler_checks=True,  # a refusal is audited
        words=_OP_WORDS,
    )
    async def cmd_reactivate(self, turn: Turn, cmd: Command) -> Result:
        await self._check_lead(turn, Action.REACTIVATE, cmd)
        return await self._subscriptions(turn, cmd, "active")

    async def _check_lead(self, turn: Turn, action: Action, cmd: Command) -> None:
        """The policy check; a refusal is audited too (someone tried)."""
        try:
            check(turn.actor, action)
        except Forbidden:
            await self.store.commit(
                [
                    audit_op(
                        turn.now,
                        turn.actor.user_id,
                        turn.actor.channel,
                        f"{action.value}_refused",
                        "policy",
                        role=turn.actor.role.value,
                        asked=cmd.args[:200],
                    )
                ]
            )
            raise

    async def _subscriptions(self, turn: Turn, cmd: Command, status: SubscriptionStatus) -> Result:
        verb = "suspend" if status == "suspended" else "reactivate"
        words = cmd.words
        if len(words) == 2 and cmd.word(0) in OP_VERBS and _OP_ID.match(words[1]):
            return await self._op_step(turn, verb, cmd.word(0), words[1])
        name = cmd.args.strip()
        if not name:
            raise DomainError(_("Which customer? `{verb} Contoso`").format(verb=verb))
        customer = await self._customer(name)
        return await self._propose(turn, customer, status)

    def _mode(self, customer: Customer) -> tuple[str, str | None]:
        """("api" | "manual", why manual)."""
        if not self.client.can_change_subscriptions:
            missing = [
                m for m in self.client.missing_settings() if m != "PARTNER_CENTER_REFRESH_TOKEN"
            ]
            return "manual", _("Partner Center API mode is off ({missing} not set)").format(
                missing=", ".join(missing)
            )
        if not customer.tenant_id:
            return "manual", _("the tenant id of {customer} is not known").format(
                customer=u(customer.name)
            )
        return "api", None

    async def _propose(self, turn: Turn, customer: Customer, status: SubscriptionStatus) -> Result:
        kind = "suspend" if status == "suspended" else "reactivate"
        state = _state(self.store, customer.id)
        overdue = self.overdue_of(customer.id, turn.now)
        receivables = [r for r in load_receivables(self.store) if r.customer_id == customer.id]
        if kind == "suspend" and overdue is None:
            raise DomainError(
                _("{customer} has nothing overdue, so there is nothing to suspend for.").format(
                    customer=u(customer.name)
                )
            )
        already = await self._already_there(turn, customer, kind, state)
        if already:
            raise DomainError(already)  # nothing is proposed: there is nothing to confirm
        if overdue is not None and kind == "suspend":
            subscriptions = list(overdue.subscription_ids)
        else:
            done = state.get("suspended") or {}
            subscriptions = list(done.get("subscriptions") or [])
            if not subscriptions:
                for r in receivables:
                    subscriptions += [s for s in r.subscription_ids if s not in subscriptions]
        if not subscriptions:
            raise DomainError(
                _(
                    "No subscription ids are recorded for {customer}'s invoices; add them in "
                    "the subscription_ids column of the receivables file and import it again."
                ).format(customer=u(customer.name))
            )
        mode, why = self._mode(customer)
        op_id = uuid.uuid4().hex[:12]
        shown = overdue or _empty_overdue(customer, self.today(turn.now))
        op: dict[str, Any] = {
            "kind": kind,
            "status": status,
            "customer": customer.id,
            "customer_name": customer.name,
            "tenant": customer.tenant_id,
            "subscriptions": subscriptions,
            "overdue": shown.amount_text if overdue else "0",
            "days": shown.days,
            "invoices": list(shown.invoice_numbers),
            "mode": mode,
            "state": "proposed",
            "proposed_by": turn.actor.user_id,
            "proposed_at": iso(turn.now),
            "results": {},
            "version": 1,
        }
        await self.store.commit(
            [
                self.store.collections_operation_op(op_id, op, expect=None),
                audit_op(
                    turn.now,
                    turn.actor.user_id,
                    turn.actor.channel,
                    f"{kind}_proposed",
                    customer.id,
                    op=op_id,
                    subscriptions=subscriptions,
                    overdue=op["overdue"],
                    mode=mode,
                ),
            ]
        )
        return Result([self._confirmation(op_id, op, why)])

    async def _already_there(
        self, turn: Turn, customer: Customer, kind: str, state: dict[str, Any]
    ) -> str | None:
        """Why ``kind`` has nothing to do: the customer is already suspended / active; or None.

        The bot's record of the customer decides: suspended once a suspension was done
        (by API or by hand), active before it and after a reactivation.
        """
        suspended = state.get("status") == "suspended"
        if (kind == "suspend") != suspended:
            return None
        done = (state.get("suspended") if suspended else state.get("reactivated")) or {}
        names = await self._names()
        when = (
            local_time(datetime.fromisoformat(done["at"]), turn.user.time_zone)
            if done.get("at")
            else "?"
        )
        who = u(names.get(done.get("by", ""), done.get("by", "?")))
        name = u(customer.name)
        if suspended:
            text = _(
                "{customer}'s subscriptions are already suspended (since {when}, by "
                "{who}); nothing was changed. `reactivate {name}` once it has paid."
            )
        elif done:
            text = _(
                "{customer} is already active (reactivated at {when} by {who}): there is "
                "nothing to reactivate, and nothing was changed."
            )
        else:
            text = _(
                "{customer} is active: its subscriptions were never suspended here, so there "
                "is nothing to reactivate, and nothing was changed. (A subscription suspended "
                "directly in Partner Center is reactivated there.)"
            )
        return text.format(customer=name, when=when, who=who, name=name)

    def _confirmation(self, op_id: str, op: dict[str, Any], why: str | None) -> Reply:
        kind = op["kind"]
        name = op["customer_name"]
        subs = op["subscriptions"]
        if kind == "suspend":
            head = _("Please confirm: suspend {customer}'s subscriptions for non-payment.")
        else:
            head = _("Please confirm: reactivate {customer}'s subscriptions.")
        lines = [head.format(customer=u(name))]
        lines.append(
            _("Customer: {customer} (tenant {tenant})").format(
                customer=u(name), tenant=op.get("tenant") or _("unknown")
            )
        )
        if op["invoices"]:
            lines.append(
                _("Overdue: {amount}, {how_long} (invoices {invoices})").format(
                    amount=op["overdue"],
                    how_long=format_days(int(op["days"])),
                    invoices=", ".join(u(i) for i in op["invoices"]),
                )
            )
        else:
            lines.append(_("Overdue: nothing"))
        lines.append(_("Subscriptions ({n}):").format(n=len(subs)))
        lines += [f"• {s}" for s in subs]
        if op["mode"] == "api":
            lines.append(
                _(
                    "I will read each subscription in Partner Center and set its status to "
                    '"{status}" (only if it is not already).'
                ).format(status=_sub_status(op["status"]))
            )
        else:
            lines.append(
                _(
                    "Manual mode: {why}. I will tell you what to do in the Partner Center portal."
                ).format(why=why or "")
            )
        lines.append(
            _("Or type `{kind} confirm {op}` / `{kind} cancel {op}`.").format(kind=kind, op=op_id)
        )
        if kind == "suspend":
            label = ngettext(
                "Suspend {customer} ({n} subscription)",
                "Suspend {customer} ({n} subscriptions)",
                len(subs),
            )
        else:
            label = ngettext(
                "Reactivate {customer} ({n} subscription)",
                "Reactivate {customer} ({n} subscriptions)",
                len(subs),
            )
        return Reply(
            text="\n".join(lines),
            buttons=[
                Button(
                    label.format(customer=u(name), n=len(subs)),
                    ActionRef(kind, value=f"confirm {op_id}"),
                    ButtonStyle.DANGER if kind == "suspend" else ButtonStyle.PRIMARY,
                ),
                Button(_("Cancel"), ActionRef(kind, value=f"cancel {op_id}")),
            ],
        )

    def _op(self, op_id: str) -> dict[str, Any] | None:
        doc = self.store.collections_operation(op_id)
        return _copy(doc) if doc else None

    async def _cancel_op(
        self, turn: Turn, op_id: str, op: dict[str, Any], by: str, *, why: str | None = None
    ) -> bool:
        """Cancel the proposed change ``op`` (by a person, or ``already``/``paid``), audited.

        False: someone else changed it first (see :meth:`_cas_op`).
        """
        kind = op["kind"]
        extra = {"why": why} if why else {}
        audit = audit_op(
            turn.now,
            turn.actor.user_id,
            turn.actor.channel,
            f"{kind}_cancelled",
            op["customer"],
            op=op_id,
            **extra,
        )
        return await self._cas_op(
            op_id, op, {**op, "state": "cancelled", "cancelled_by": by}, audit
        )

    async def _cas_op(
        self, op_id: str, old: dict[str, Any], new: dict[str, Any], *extra: Op
    ) -> bool:
        """Write ``new`` if ``op`` is still ``old`` (False: someone else moved it first)."""
        doc = {**new, "version": int(old["version"]) + 1}
        try:
            await self.store.commit(
                [self.store.collections_operation_op(op_id, doc, expect=old["version"]), *extra]
            )
        except VersionConflict:
            return False
        new["version"] = doc["version"]
        return True

    async def _op_step(self, turn: Turn, kind: str, verb: str, op_id: str) -> Result:
        op = self._op(op_id)
        if op is None or op["kind"] != kind:
            raise NotFound(
                _("I don't know that confirmation. Start again with `{kind} CUSTOMER`.").format(
                    kind=kind
                )
            )
        now = turn.now
        actor = turn.actor
        state = op["state"]
        customer = await self.store.get_customer(op["customer"])
        if customer is None:
            raise NotFound(_("That customer no longer exists."))
        if verb == "cancel":
            if state != "proposed" and state != "manual":
                return await self._already(turn, op_id, op)
            if not await self._cancel_op(turn, op_id, op, actor.user_id):
                return await self._already(turn, op_id, self._op(op_id) or op)
            return Result([Reply(text=_("Cancelled: nothing was changed."), replace=True)])
        if verb == "done":
            if state != "manual":
                return await self._already(turn, op_id, op)
            return await self._manual_done(turn, op_id, op, customer)
        if verb == "retry":
            stale_run = (
                state == "running"
                and now - datetime.fromisoformat(op.get("confirmed_at") or op["proposed_at"])
                > RUNNING_TIMEOUT
            )
            if state != "failed" and not stale_run:
                return await self._already(turn, op_id, op)
            new = {**op, "state": "running", "confirmed_at": iso(now)}
            if not await self._cas_op(
                op_id,
                op,
                new,
                audit_op(
                    now, actor.user_id, actor.channel, f"{kind}_retried", op["customer"], op=op_id
                ),
            ):
                return await self._already(turn, op_id, self._op(op_id) or op)
            return await self._execute(turn, op_id, new, customer)
        # confirm
        if state != "proposed":
            return await self._already(turn, op_id, op)
        if now - datetime.fromisoformat(op["proposed_at"]) > OP_TTL:
            new = {**op, "state": "expired"}
            await self._cas_op(op_id, op, new)
            raise DomainError(
                _(
                    "That confirmation has expired; nothing was changed. Run `{kind} {name}` again."
                ).format(kind=kind, name=u(op["customer_name"]))
            )
        already = await self._already_there(turn, customer, kind, _state(self.store, customer.id))
        if already:  # another confirmation did it since this one was proposed
            await self._cancel_op(turn, op_id, op, "already", why=f"already {op['status']}")
            return Result([Reply(text=already, replace=True)])
        if kind == "suspend" and self.overdue_of(customer.id, now) is None:
            await self._cancel_op(turn, op_id, op, "paid", why="nothing overdue any more")
            return Result(
                [
                    Reply(
                        text=_(
                            "{customer} has nothing overdue any more, so nothing was suspended."
                        ).format(customer=u(customer.name)),
                        replace=True,
                    )
                ]
            )
        target = "running" if op["mode"] == "api" else "manual"
        new = {
            **op,
            "state": target,
            "confirmed_by": actor.user_id,
            "confirmed_at": iso(now),
            "results": {s: {"state": "pending"} for s in op["subscriptions"]},
        }
        # The idempotency key: the confirmed state is stored before any call is made, so a
        # second click (or a concurrent one) finds it taken and sends nothing.
        if not await self._cas_op(
            op_id,
            op,
            new,
            audit_op(
                now,
                actor.user_id,
                actor.channel,
                f"{kind}_confirmed",
                customer.id,
                op=op_id,
                subscriptions=op["subscriptions"],
                overdue=op["overdue"],
                mode=op["mode"],
            ),
        ):
            return await self._already(turn, op_id, self._op(op_id) or op)
        if target == "manual":
            return Result([self._manual_steps(op_id, new, customer)])
        return await self._execute(turn, op_id, new, customer)

    async def _execute(
        self, turn: Turn, op_id: str, op: dict[str, Any], customer: Customer
    ) -> Result:
        """Change each subscription still pending (or failed) through Partner Center."""
        kind, status = op["kind"], op["status"]
        actor = turn.actor
        results: dict[str, dict[str, Any]] = op["results"]
        for sub in op["subscriptions"]:
            if results.get(sub, {}).get("state") in ("done", "unchanged"):
                continue
            now = self.runtime.clock.now()
            try:
                change = await self.client.set_subscription_status(op["tenant"], sub, status)
            except Exception as exc:  # noqa: BLE001 - recorded as failed; Retry is offered
                if isinstance(exc, PartnerCenterError):
                    message, detail = exc.user_message, exc.detail
                    log.warning("%s of %s failed: %s", kind, sub, detail)
                else:
                    log.exception("%s of %s failed unexpectedly", kind, sub)
                    message = _("Something went wrong on our side; nothing more was changed.")
                    detail = type(exc).__name__
                results[sub] = {"state": "failed", "message": message}
                entry = audit_op(
                    now,
                    actor.user_id,
                    actor.channel,
                    f"subscription_{kind}_failed",
                    customer.id,
                    op=op_id,
                    subscription=sub,
                    error=detail,
                )
            else:
                name = change.resource.get("friendlyName") or change.resource.get("offerName")
                results[sub] = {
                    "state": "done" if change.changed else "unchanged",
                    "message": change.message,
                    "previous": change.previous_status,
                    "status": change.status,
                    "name": name,
                }
                entry = audit_op(
                    now,
                    actor.user_id,
                    actor.channel,
                    f"subscription_{'suspended' if kind == 'suspend' else 'reactivated'}"
                    if change.changed
                    else f"subscription_already_{change.status}",
                    customer.id,
                    op=op_id,
                    subscription=sub,
                    previous=change.previous_status,
                    status=change.status,
                )
            fresh = self._op(op_id) or op
            new = {**fresh, "results": results}
            if not await self._cas_op(op_id, fresh, new, entry):
                log.error("operation %s changed while it ran; progress kept in the audit", op_id)
                await self.store.commit([entry])
            op = new
        failed = [s for s, r in results.items() if r.get("state") == "failed"]
        now = self.runtime.clock.now()
        final = {**op, "state": "failed" if failed else "done", "finished_at": iso(now)}
        extra: list[Op] = []
        if not failed:
            extra += self._status_ops(customer.id, op_id, kind, actor.user_id, now)
        extra.append(
            audit_op(
                now,
                actor.user_id,
                actor.channel,
                f"{kind}_{'failed' if failed else 'done'}",
                customer.id,
                op=op_id,
                failed=failed,
            )
        )
        fresh = self._op(op_id) or op
        if not await self._cas_op(op_id, fresh, {**final, "version": fresh["version"]}, *extra):
            await self.store.commit(extra)
        return await self._outcome(turn, op_id, final, customer)

    def _status_ops(
        self, customer_id: str, op_id: str, kind: str, by: str, now: datetime
    ) -> list[Op]:
        state = _state(self.store, customer_id)
        op = self._op(op_id) or {}
        if kind == "suspend":
            new = {
                **state,
                "status": "suspended",
                "suspended": {
                    "at": iso(now),
                    "by": by,
                    "op": op_id,
                    "subscriptions": op.get("subscriptions", []),
                },
            }
        else:
            new = {
                **state,
                "status": "active",
                "reactivated": {"at": iso(now), "by": by, "op": op_id},
            }
        return [_state_op(state, new)]

    async def _outcome(
        self, turn: Turn, op_id: str, op: dict[str, Any], customer: Customer
    ) -> Result:
        kind = op["kind"]
        lines = []
        for sub in op["subscriptions"]:
            r = op["results"].get(sub, {})
            label = f"{sub}" + (f" ({r['name']})" if r.get("name") else "")
            if r.get("state") == "done":
                lines.append(
                    "✓ "
                    + _("{sub}: now {status}").format(
                        sub=label, status=_sub_status(r.get("status"))
                    )
                )
            elif r.get("state") == "unchanged":
                lines.append(
                    "✓ "
                    + _("{sub}: was already {status}").format(
                        sub=label, status=_sub_status(r.get("status"))
                    )
                )
            elif r.get("state") == "failed":
                lines.append("✗ " + _("{sub}: {error}").format(sub=label, error=r.get("message")))
        if op["state"] == "failed":
            head = _("Not every subscription of {customer} could be changed:").format(
                customer=u(customer.name)
            )
            return Result(
                [
                    Reply(
                        text=head + "\n" + "\n".join(lines),
                        kind="error",
                        buttons=[Button(_("Retry"), ActionRef(kind, value=f"retry {op_id}"))],
                    )
                ]
            )
        if kind == "suspend":
            head = _("{customer} is suspended:").format(customer=u(customer.name))
        else:
            head = _("{customer} is reactivated:").format(customer=u(customer.name))
        replies = [Reply(text=head + "\n" + "\n".join(lines), replace=True)]
        replies.append(self._notice(turn, op, customer))
        return Result(replies)

    def _notice(self, turn: Turn, op: dict[str, Any], customer: Customer) -> Reply:
        """The drafted customer notice after a suspension or a reactivation."""
        overdue = self.overdue_of(customer.id, turn.now) or _empty_overdue(
            customer, self.today(turn.now)
        )
        action = "suspend" if op["kind"] == "suspend" else "reactivated"
        draft = draft_text(
            action,
            customer.name,
            overdue,
            turn.user.display_name,
            None,
            subscriptions=list(op["subscriptions"]),
        )
        return Reply(
            text=_("Send {customer} this notice:").format(customer=u(customer.name))
            + "\n\n"
            + draft
        )

    def _manual_steps(self, op_id: str, op: dict[str, Any], customer: Customer) -> Reply:
        kind = op["kind"]
        target = _("Suspended") if kind == "suspend" else _("Active")
        _mode, why = self._mode(customer)
        lines = [
            _("{why}, so please do it by hand in the Partner Center portal:").format(
                why=_upper_first(why or _("Manual mode"))
            ),
            _("1. Sign in at {url} and open Customers.").format(url=PORTAL_URL),
            _("2. Open {customer} (tenant {tenant}) and go to its Subscriptions.").format(
                customer=u(customer.name), tenant=op.get("tenant") or _("unknown")
            ),
            _(
                '3. Open each of these subscriptions, change its status to "{status}" and submit:'
            ).format(status=target),
        ]
        lines += [f"   • {s}" for s in op["subscriptions"]]
        lines.append(
            _("4. Then press Done in Partner Center (or type `{kind} done {op}`).").format(
                kind=kind, op=op_id
            )
        )
        return Reply(
            text="\n".join(lines),
            buttons=[
                Button(
                    _("Done in Partner Center"),
                    ActionRef(kind, value=f"done {op_id}"),
                    ButtonStyle.PRIMARY,
                ),
                Button(_("Cancel"), ActionRef(kind, value=f"cancel {op_id}")),
            ],
        )

    async def _manual_done(
        self, turn: Turn, op_id: str, op: dict[str, Any], customer: Customer
    ) -> Result:
        actor, now = turn.actor, turn.now
        kind = op["kind"]
        results = {
            s: {"state": "done", "status": op["status"], "manual": True}
            for s in op["subscriptions"]
        }
        new = {
            **op,
            "state": "done",
            "results": results,
            "finished_at": iso(now),
            "done_by": actor.user_id,
        }
        ops = self._status_ops(customer.id, op_id, kind, actor.user_id, now)
        ops.append(
            audit_op(
                now,
                actor.user_id,
                actor.channel,
                f"{kind}_done_manually",
                customer.id,
                op=op_id,
                subscriptions=op["subscriptions"],
            )
        )
        if not await self._cas_op(op_id, op, new, *ops):
            return await self._already(turn, op_id, self._op(op_id) or op)
        return await self._outcome(turn, op_id, new, customer)

    async def _already(self, turn: Turn, op_id: str, op: dict[str, Any]) -> Result:
        """A second click, or a click on an old confirmation: say where it stands, do nothing."""
        kind, state = op["kind"], op["state"]
        names = await self._names()
        name = u(op["customer_name"])
        who = u(names.get(op.get("confirmed_by") or "", op.get("confirmed_by") or "?"))
        when = op.get("finished_at") or op.get("confirmed_at")
        at = local_time(datetime.fromisoformat(when), turn.user.time_zone) if when else "?"
        buttons: list[Button] = []
        if state == "running":
            text = _(
                "Already in progress: {who} confirmed it at {at}. Nothing was sent twice."
            ).format(who=who, at=at)
            started = datetime.fromisoformat(op.get("confirmed_at") or op["proposed_at"])
            if turn.now - started > RUNNING_TIMEOUT:
                buttons.append(Button(_("Retry"), ActionRef(kind, value=f"retry {op_id}")))
        elif state == "done":
            if kind == "suspend":
                text = _("Already done: {customer} was suspended at {at}. Nothing was sent again.")
            else:
                text = _(
                    "Already done: {customer} was reactivated at {at}. Nothing was sent again."
                )
            text = text.format(customer=name, at=at)
        elif state == "manual":
            text = _(
                "Waiting for the change in the Partner Center portal: press Done in Partner "
                "Center when it is done."
            )
            buttons.append(
                Button(_("Done in Partner Center"), ActionRef(kind, value=f"done {op_id}"))
            )
        elif state == "failed":
            text = _("Some subscriptions could not be changed last time.")
            buttons.append(Button(_("Retry"), ActionRef(kind, value=f"retry {op_id}")))
        else:
            text = _(
                "That confirmation is {state}; nothing was changed. Run `{kind} {customer}` again."
            ).format(
                state=_(_OP_STATE_LABELS[state]) if state in _OP_STATE_LABELS else state,
                kind=kind,
                customer=name,
            )
        return Result([Reply(text=text, kind="stale", buttons=buttons, private=True)])
