"""The daily collections run: each overdue customer's due stage fired once, as a DM to its owner.

The ``collections_run`` job (at ``[collections] run_at`` in the desk's time
zone) fires the stages and starts over a customer with nothing overdue; the
``collections_dm`` job delivers one DM in the owner's working hours, with the
drafted text for the customer and its buttons. The ``collections`` command
shows the policy and records the DM's "I sent it".
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain import Customer, DomainError, NotFound, User
from bot.i18n import _, format_days, ngettext, use_locale
from bot.kernel.model import ActionRef, Button, ButtonStyle, Reply
from bot.kernel.scheduler import iso
from bot.policy import Action, check
from bot.receivables import CustomerOverdue, stage_id, suspension_date
from bot.storage import VersionConflict
from bot.workhours import zone_or_utc
from conversations.collections.base import CollectionsBase
from conversations.collections.letters import _stage_label, draft_text
from conversations.collections.state import (
    DM_TYPE,
    REACTIVATE,
    _dm_op,
    _settled_ops,
    _state,
    _state_op,
    audit_op,
    load_receivables,
)
from conversations.commands import Command
from conversations.desk import Result, Turn
from conversations.registry import command
from conversations.text import u

log = logging.getLogger(__name__)


MAX_DM_BACKOFF_MINUTES = 60


class DailyRun(CollectionsBase):
    """The daily run, the owner's DM, and the ``collections`` command."""

    # ---- collections: the policy, and "I sent it" -------------------------------------
    @command(
        "collections",
        action=Action.OVERDUE,
        usage="collections [sent STAGE CUSTOMER-ID]",
        help=None,  # the collections policy, and the "I sent it" buttons: not in help
    )
    async def cmd_collections(self, turn: Turn, cmd: Command) -> Result:
        check(turn.actor, Action.OVERDUE)
        words = cmd.words
        if len(words) >= 3 and words[0].lower() == "sent":
            return await self._sent(turn, words[1], " ".join(words[2:]))
        steps = ", ".join(
            _("day {days}: {label}").format(days=s.days, label=_stage_label(s.action))
            for s in self.stages
        )
        mode = (
            _("Partner Center API mode")
            if self.client.can_change_subscriptions
            else _("manual mode (no Partner Center credentials)")
        )
        text = _(
            "Collections policy: {steps}. The daily run is at {run_at} ({tz}); each owner gets "
            "the step that is due once, in their working hours. Suspensions: {mode}."
        ).format(steps=steps, run_at=self.policy.run_at, tz=self.settings.time_zone, mode=mode)
        return Result([Reply(text=text, kind="help")])

    async def _sent(self, turn: Turn, sid: str, customer_id: str) -> Result:
        for _attempt in range(3):
            state = _state(self.store, customer_id)
            stage = state.get("stages", {}).get(sid)
            if stage is None:
                raise NotFound(_("That step is no longer open."))
            if stage.get("told_by"):
                names = await self._names()
                return Result(
                    [
                        Reply(
                            text=_("Already recorded: {who} sent it.").format(
                                who=u(names.get(stage["told_by"], stage["told_by"]))
                            ),
                            kind="stale",
                        )
                    ]
                )
            stages = {
                **state["stages"],
                sid: {**stage, "told_by": turn.actor.user_id, "told_at": iso(turn.now)},
            }
            try:
                await self.store.commit(
                    [
                        _state_op(state, {**state, "stages": stages}),
                        audit_op(
                            turn.now,
                            turn.actor.user_id,
                            turn.actor.channel,
                            "customer_notified",
                            customer_id,
                            stage=sid,
                        ),
                    ]
                )
            except VersionConflict:
                continue
            return Result(
                [
                    Reply(
                        text=_("Recorded: the customer was sent the {label}.").format(
                            label=_stage_label(sid.split("@")[0])
                        ),
                        replace=True,
                    )
                ]
            )
        raise DomainError(_("That kept changing; please try again."))

    # ---- the daily run ------------------------------------------------------------------
    def next_run(self, now: datetime) -> datetime:
        """The next daily run after ``now`` at ``run_at`` in the desk's time zone."""
        zone = zone_or_utc(self.settings.time_zone)
        at = time.fromisoformat(self.policy.run_at)
        local = now.astimezone(zone)
        candidate = datetime.combine(local.date(), at, tzinfo=zone)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
        return candidate.astimezone(ZoneInfo("UTC"))

    async def run_job(self, key: str, job: dict[str, Any], now: datetime) -> int:
        """The ``collections_run`` job: run the policy, then come back tomorrow."""
        await self.run_policy(now)
        await self.runtime.scheduler.finish(
            key, {**job, "due": iso(self.next_run(now)), "last_run": iso(now)}
        )
        return 0

    async def run_policy(self, now: datetime) -> list[tuple[str, str]]:
        """Fire each overdue customer's due stage once: a DM job for its owner.

        Returns (customer id, stage id) for every stage fired. A customer that
        jumped several stages (a late import) gets only the latest; the earlier
        ones are marked skipped. A customer with nothing overdue starts over.
        """
        fired: list[tuple[str, str]] = []
        overdue = self.overdue(now)
        for co in overdue:
            if co.stage is None:
                continue
            for _attempt in range(3):
                state = _state(self.store, co.customer_id)
                sid = stage_id(co.stage)
                stages = dict(state.get("stages", {}))
                if sid in stages:
                    break
                for s in self.stages:
                    if s.days <= co.stage.days and stage_id(s) not in stages:
                        stages[stage_id(s)] = {
                            "at": iso(now),
                            "days": co.days,
                            "skipped": s != co.stage,
                        }
                customer = await self.store.get_customer(co.customer_id)
                owner = await self._owner_id(customer) if customer else None
                user = await self._user(owner) if owner else None
                episode = int(state.get("episode", 1))
                ops = [
                    _state_op(state, {**state, "stages": stages}),
                    audit_op(
                        now,
                        "collections",
                        "scheduler",
                        "collections_stage_due",
                        co.customer_id,
                        stage=sid,
                        days=co.days,
                        overdue=co.amount_text,
                        owner=owner,
                        invoices=list(co.invoice_numbers),
                    ),
                ]
                if user is not None:
                    due = self.runtime.scheduler.hours_of(user).next_working(now)
                    _key, job = _dm_op(co.customer_id, sid, episode, user.id, due)
                    ops.append(job)
                try:
                    await self.store.commit(ops)
                except VersionConflict:
                    continue
                fired.append((co.customer_id, sid))
                break
        overdue_ids = {co.customer_id for co in overdue}
        receivables = load_receivables(self.store)
        for doc in self.store.collections_states().values():
            if doc["customer"] in overdue_ids:
                continue
            customer = await self.store.get_customer(doc["customer"])
            if customer is None:
                continue
            ops = _settled_ops(
                self.store, self.settings, customer, receivables, now, "collections", "scheduler"
            )
            if ops:
                try:
                    await self.store.commit(ops)
                except VersionConflict:
                    log.info("collections state of %s changed during the run", customer.id)
        await self.store.commit(
            [
                audit_op(
                    now,
                    "collections",
                    "scheduler",
                    "collections_run",
                    "policy",
                    as_of=self.today(now).isoformat(),
                    overdue_customers=len(overdue),
                    fired=[f"{c}:{s}" for c, s in fired],
                )
            ]
        )
        return fired

    # ---- the owner's DM -------------------------------------------------------------------
    async def dm_job(self, key: str, job: dict[str, Any], now: datetime) -> int:
        """Deliver one collections DM in the owner's working hours, unless it moved on."""
        scheduler = self.runtime.scheduler
        user = await self._user(job["user_id"])
        customer = await self.store.get_customer(job["customer"])
        if user is None or customer is None:
            await scheduler.finish(key, None)
            return 0
        stage = str(job["stage"])
        overdue = self.overdue_of(customer.id, now)
        state = _state(self.store, customer.id)
        if stage == REACTIVATE:
            moved_on = overdue is not None or state.get("status") != "suspended"
        else:
            moved_on = overdue is None or int(state.get("episode", 1)) != int(job["episode"])
        if moved_on:
            await scheduler.finish(key, None)  # paid, reactivated or started over meanwhile
            return 0
        hours = scheduler.hours_of(user)
        if not hours.is_working(now):
            await scheduler.finish(key, {**job, "due": iso(hours.next_working(now))})
            return 0
        with use_locale(user.locale):
            replies = await self._dm_replies(user, customer, stage, overdue, now)
        sent = {"case": None, "type": DM_TYPE, "customer": customer.id, "stage": stage}
        if not await scheduler.deliver_with_backoff(
            key, job, user, replies, now, sent=sent, max_backoff_minutes=MAX_DM_BACKOFF_MINUTES
        ):
            return 0  # rescheduled with backoff
        await scheduler.finish(
            key,
            None,
            [
                audit_op(
                    now,
                    "collections",
                    "scheduler",
                    "collections_dm_sent",
                    customer.id,
                    stage=stage,
                    to=user.id,
                )
            ],
        )
        return 1

    async def _dm_replies(
        self,
        user: User,
        customer: Customer,
        stage: str,
        overdue: CustomerOverdue | None,
        now: datetime,
    ) -> list[Reply]:
        name = u(customer.name)
        if stage == REACTIVATE:
            return [
                Reply(
                    text=_(
                        "Collections · {customer} has paid everything overdue, and its "
                        "subscriptions are suspended. Reactivate them? (A lead confirms.)"
                    ).format(customer=name),
                    buttons=[
                        Button(
                            _("Reactivate {name}…").format(name=name),
                            ActionRef("reactivate", value=customer.name),
                            ButtonStyle.PRIMARY,
                        )
                    ],
                )
            ]
        assert overdue is not None
        action, _sep, days = stage.partition("@")
        suspend_on = suspension_date(overdue.oldest_due, self.stages)
        head = _(
            "Collections · {customer} is {how_long} overdue: {amount} (invoices {invoices}). "
            "Step due: {label} (day {stage_days} of the policy)."
        ).format(
            customer=name,
            how_long=format_days(overdue.days),
            amount=overdue.amount_text,
            invoices=", ".join(u(i) for i in overdue.invoice_numbers),
            label=_stage_label(action),
            stage_days=days,
        )
        buttons = []
        if action == "suspend":
            head += "\n" + ngettext(
                "A lead can now suspend its {n} subscription: press Suspend (you will be asked "
                "to confirm). Then send the customer the notice below.",
                "A lead can now suspend its {n} subscriptions: press Suspend (you will be asked "
                "to confirm). Then send the customer the notice below.",
                len(overdue.subscription_ids),
            ).format(n=len(overdue.subscription_ids))
            buttons.append(
                Button(
                    _("Suspend {name}…").format(name=name),
                    ActionRef("suspend", value=customer.name),
                    ButtonStyle.DANGER,
                )
            )
            told = _("I sent the notice")
        else:
            head += "\n" + _("Send the customer this text (edit as you like):")
            told = _("I sent it")
        buttons.append(Button(told, ActionRef("collections", value=f"sent {stage} {customer.id}")))
        buttons.append(Button(_("Overdue list"), ActionRef("overdue")))
        draft = draft_text(action, customer.name, overdue, user.display_name, suspend_on)
        return [Reply(text=head), Reply(text=draft, buttons=buttons)]
