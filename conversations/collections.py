"""Collections: receivables, the daily collections policy, and suspend / reactivate.

Registered by the runtime (``register(runtime)``):

* commands ``overdue``, ``paid INVOICE [amount]``, ``suspend CUSTOMER``,
  ``reactivate CUSTOMER`` and ``collections`` (the policy; "I sent it" clicks);
* job types ``collections_run`` (the daily run at ``[collections] run_at`` in
  the desk's time zone) and ``collections_dm`` (one DM to a customer's owner,
  delivered in the owner's working hours, with buttons and a drafted text for
  the customer).

Storage: ``receivables`` (one document per invoice), ``collections``
(``customer:<id>``: the stages already fired and the subscription status;
``op:<id>``: a suspend/reactivate operation, whose state is written *before*
any Partner Center call, so a double click or a retry never PATCHes twice) and
the append-only ``audit`` table for imports, policy runs, payments and every
step of a suspension.

Suspending and reactivating need the ``lead`` role and an explicit
confirmation naming the customer, the subscriptions and the amount overdue.
Without Partner Center credentials (or without the customer's tenant id) the
bot works in manual mode: it says exactly what to do in the Partner Center
portal and records it when the lead presses *Done in Partner Center*.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from time import time_ns
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.config import CollectionsStage, Settings, configured_user
from bot.domain import Customer, DomainError, NotFound, Role, User, customer_key
from bot.i18n import N_, _, format_date, ngettext, use_locale
from bot.kernel.model import ActionRef, Button, ButtonStyle, Reply
from bot.kernel.scheduler import iso
from bot.money import MoneyError, parse_money
from bot.partner_center import PartnerCenterClient, PartnerCenterError, SubscriptionStatus
from bot.policy import Action, Forbidden, check
from bot.receivables import (
    CustomerOverdue,
    Receivable,
    ReceivableError,
    RowError,
    invoice_key,
    merge_row,
    overdue_by_customer,
    parse_csv,
    stage_id,
    suspension_date,
)
from bot.storage import COLLECTIONS_TABLES, Op, Store, VersionConflict, declare_tables
from bot.workhours import zone_or_utc
from conversations.cards import local_time
from conversations.commands import Command
from conversations.desk import Result, Turn
from conversations.registry import command
from conversations.text import u

if TYPE_CHECKING:
    from conversations.runtime import Runtime

log = logging.getLogger(__name__)

RUN_KEY = "collections:run"
RUN_TYPE = "collections_run"
DM_TYPE = "collections_dm"
REACTIVATE = "reactivate"
OP_VERBS = frozenset({"confirm", "cancel", "done", "retry"})
OP_TTL = timedelta(hours=24)  # an unanswered confirmation must be asked again after this
RUNNING_TIMEOUT = timedelta(minutes=10)  # a run left "running" by a crash may be retried
MAX_DM_BACKOFF_MINUTES = 60
_OP_ID = re.compile(r"^[0-9a-f]{12}$")
PORTAL_URL = "https://partner.microsoft.com/dashboard"

_AUDIT_SEQ = itertools.count()
_FLOWS: weakref.WeakKeyDictionary[Runtime, Collections] = weakref.WeakKeyDictionary()


# The flow's tables: declared when this module is imported (before a store opens).
declare_tables(*COLLECTIONS_TABLES)


def register(runtime: Runtime) -> None:
    """Add the collections commands and job types to ``runtime`` (called by the Runtime)."""
    _FLOWS[runtime] = Collections(runtime)


def flow_of(runtime: Runtime) -> Collections:
    """The collections flow registered on ``runtime`` (the CLI route and tests use it)."""
    return _FLOWS[runtime]


# ---- small helpers shared by the import (no runtime) and the flow --------------------
def local_today(now: datetime, settings: Settings) -> date:
    """Today in the desk's time zone: days past due are counted in it."""
    return now.astimezone(zone_or_utc(settings.time_zone)).date()


def audit_op(
    now: datetime, actor: str, channel: str, action: str, subject: str, **details: Any
) -> Op:
    """One append-only audit entry (``expect=None``: an entry is never overwritten)."""
    # Sorted by time; within one instant (a fake clock) by the order they were made.
    key = f"{iso(now)}|{time_ns():020d}|{next(_AUDIT_SEQ):08d}|{uuid.uuid4().hex[:8]}"
    doc = {
        "at": iso(now),
        "actor": actor,
        "channel": channel,
        "action": action,
        "subject": subject,
        "details": details,
    }
    return Store.audit_entry_op(key, doc)


def audit_log(store: Store, subject: str | None = None) -> list[dict[str, Any]]:
    """The audit entries, oldest first (optionally of one subject: a customer id, a file)."""
    entries = store.audit_entries()
    return [dict(d) for d in entries if subject is None or d.get("subject") == subject]


def load_receivables(store: Store) -> list[Receivable]:
    return [Receivable.from_doc(d) for d in store.receivable_docs().values()]


def _state(store: Store, customer_id: str) -> dict[str, Any]:
    doc = store.collections_state(customer_id)
    return _copy(doc) if doc else {"customer": customer_id, "episode": 1, "stages": {}}


def _state_op(old: dict[str, Any], new: dict[str, Any]) -> Op:
    """Write a customer's collections state if nobody changed it since ``old`` was read."""
    version = old.get("version")
    doc = {**new, "version": int(version or 0) + 1}
    return Store.collections_state_op(new["customer"], doc, expect=version)


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(json.dumps(doc)))


def _default_owner(settings: Settings) -> str | None:
    return next((u.name for u in settings.users if u.role == Role.LEAD), None)


def _dm_op(
    customer_id: str, stage: str, episode: int, user_id: str, due: datetime
) -> tuple[str, Op]:
    key = f"collections:dm:{customer_id}:{episode}:{stage}:{user_id}"
    doc = {
        "type": DM_TYPE,
        "user_id": user_id,
        "customer": customer_id,
        "stage": stage,
        "episode": episode,
        "due": iso(due),
    }
    return key, Store.job_op(key, doc)


def _offer_recipients(store: Store, settings: Settings, customer: Customer) -> list[str]:
    """Who is offered Reactivate: the owner, and the first lead if the owner is not a lead."""
    owner = customer.owner or _default_owner(settings)
    if owner is None:
        return []
    cfg = settings.user_by_name(owner)
    role = store.user_role(owner) or (cfg.role.value if cfg else None)
    lead = _default_owner(settings)
    if role != Role.LEAD.value and lead is not None and lead != owner:
        return [owner, lead]
    return [owner]


def _settled_ops(
    store: Store,
    settings: Settings,
    customer: Customer,
    receivables: list[Receivable],
    now: datetime,
    actor: str,
    channel: str,
) -> list[Op]:
    """A customer with nothing overdue any more: its stages start over for the next time,
    and if its subscriptions are suspended, Reactivate is offered (once per suspension)."""
    today = local_today(now, settings)
    if any(r.customer_id == customer.id and r.is_overdue(today) for r in receivables):
        return []
    state = _state(store, customer.id)
    new = dict(state)
    ops: list[Op] = []
    if state.get("stages"):
        new["stages"] = {}
        new["episode"] = int(state.get("episode", 1)) + 1
        ops.append(audit_op(now, actor, channel, "collections_cleared", customer.id))
    suspension = state.get("suspended") or {}
    if state.get("status") == "suspended" and state.get("reactivate_offered") != suspension.get(
        "op"
    ):
        recipients = _offer_recipients(store, settings, customer)
        for user_id in recipients:
            _key, job = _dm_op(customer.id, REACTIVATE, int(new.get("episode", 1)), user_id, now)
            ops.append(job)
        if recipients:
            new["reactivate_offered"] = suspension.get("op")
            ops.append(
                audit_op(now, actor, channel, "reactivate_offered", customer.id, to=recipients)
            )
    if new == state:
        return ops
    return [_state_op(state, new), *ops]


# ---- the import ------------------------------------------------------------------------
@dataclass(slots=True)
class ImportReport:
    """What an import did: invoices new / updated / unchanged, customers, bad rows."""

    file: str
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    customers_created: list[str] = field(default_factory=list)
    customers_updated: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "customers_created": self.customers_created,
            "customers_updated": self.customers_updated,
            "errors": [{"line": e.line, "message": e.message} for e in self.errors],
            "warnings": [{"line": w.line, "message": w.message} for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImportReport:
        return cls(
            file=d["file"],
            new=list(d.get("new", [])),
            updated=list(d.get("updated", [])),
            unchanged=int(d.get("unchanged", 0)),
            customers_created=list(d.get("customers_created", [])),
            customers_updated=list(d.get("customers_updated", [])),
            errors=[RowError(int(e["line"]), e["message"]) for e in d.get("errors", [])],
            warnings=[RowError(int(w["line"]), w["message"]) for w in d.get("warnings", [])],
        )

    def text(self) -> str:
        lines = [
            _(
                "{file}: {new} new, {updated} updated, {unchanged} unchanged invoices; "
                "{created} customers created, {cupdated} updated."
            ).format(
                file=self.file,
                new=len(self.new),
                updated=len(self.updated),
                unchanged=self.unchanged,
                created=len(self.customers_created),
                cupdated=len(self.customers_updated),
            )
        ]
        if self.errors:
            lines.append(
                _("{n} bad rows were skipped (the header is line 1):").format(n=len(self.errors))
            )
            lines += [f"  {e}" for e in self.errors]
        for w in self.warnings:
            lines.append(f"  {_('note')}: {w}")
        return "\n".join(lines)


async def import_receivables(
    store: Store,
    settings: Settings,
    text: str,
    *,
    actor: str,
    channel: str,
    file: str,
    now: datetime,
) -> ImportReport:
    """Import a receivables CSV: good rows kept, bad rows reported, all in one commit.

    Customers are created (keyed by ``customer_key(name)``) or given their
    tenant id. A row identical to its last import changes nothing. The import
    is audited, and the daily collections run is scheduled if it is not yet.
    """
    parsed = parse_csv(text)
    for _attempt in range(5):
        report = ImportReport(file=file, errors=list(parsed.errors))
        tenant_owner = store.tenant_holders()
        customers: dict[str, Customer] = {}
        changed_customers: set[str] = set()
        changed: dict[str, Receivable] = {}
        ops: list[Op] = []
        for row in parsed.rows:
            cid = row.customer_id
            customer = customers.get(cid) or store.customer_now(cid)
            if customer and customer.tenant_id and row.tenant_id not in (None, customer.tenant_id):
                report.errors.append(
                    RowError(
                        row.line,
                        _("{customer} has tenant {known} in the billing desk, not {tenant}").format(
                            customer=customer.name, known=customer.tenant_id, tenant=row.tenant_id
                        ),
                    )
                )
                continue
            cfg = next((c for c in settings.customers if customer_key(c.name) == cid), None)
            known = cfg.tenant_id.lower() if cfg and cfg.tenant_id else None
            if customer is None and known and row.tenant_id not in (None, known):
                report.errors.append(
                    RowError(
                        row.line,
                        _("the config gives {customer} tenant {known}, not {tenant}").format(
                            customer=cfg.name if cfg else row.customer_name,
                            known=known,
                            tenant=row.tenant_id,
                        ),
                    )
                )
                continue
            holder = tenant_owner.get(row.tenant_id) if row.tenant_id else None
            if holder is not None and holder != cid:
                report.errors.append(
                    RowError(
                        row.line,
                        _("tenant {tenant} belongs to the customer {other}").format(
                            tenant=row.tenant_id, other=holder
                        ),
                    )
                )
                continue
            doc = store.receivable_doc(invoice_key(row.invoice))
            existing = Receivable.from_doc(doc) if doc else None
            try:
                status, receivable, warnings = merge_row(existing, row)
            except ReceivableError as exc:
                report.errors.append(RowError(row.line, str(exc)))
                continue
            report.warnings += [RowError(row.line, w) for w in warnings]
            if customer is None:
                customer = Customer(
                    id=cid,
                    name=cfg.name if cfg else row.customer_name,
                    tenant_id=row.tenant_id or (cfg.tenant_id if cfg else None),
                    owner=(cfg.owner if cfg and cfg.owner else None) or _default_owner(settings),
                    created_at=now,
                )
                report.customers_created.append(customer.name)
                changed_customers.add(cid)
            elif row.tenant_id and not customer.tenant_id:
                customer = Customer(
                    id=customer.id,
                    name=customer.name,
                    tenant_id=row.tenant_id,
                    owner=customer.owner,
                    created_at=customer.created_at,
                )
                if cid not in changed_customers:
                    report.customers_updated.append(customer.name)
                changed_customers.add(cid)
            customers[cid] = customer
            if row.tenant_id:
                tenant_owner[row.tenant_id] = cid
            if status == "unchanged":
                report.unchanged += 1
                continue
            (report.new if status == "new" else report.updated).append(receivable.invoice)
            doc_out = receivable.to_doc()
            doc_out["version"] = receivable.version + 1
            ops.append(
                store.receivable_op(
                    receivable.key, doc_out, expect=existing.version if existing else None
                )
            )
            changed[receivable.key] = receivable
        report.errors.sort(key=lambda e: e.line)
        ops += [store.customer_op(customers[cid]) for cid in sorted(changed_customers)]
        if (changed or store.receivable_docs()) and store.job(RUN_KEY) is None:
            ops.append(store.job_op(RUN_KEY, {"type": RUN_TYPE, "due": iso(now)}, expect=None))
        if changed:
            everything = {r.key: r for r in load_receivables(store)} | changed
            for cid in sorted({r.customer_id for r in changed.values()}):
                customer = customers.get(cid)
                if customer is not None:
                    ops += _settled_ops(
                        store, settings, customer, list(everything.values()), now, actor, channel
                    )
        ops.append(
            audit_op(
                now,
                actor,
                channel,
                "receivables_imported",
                file,
                new=report.new,
                updated=report.updated,
                unchanged=report.unchanged,
                customers_created=report.customers_created,
                customers_updated=report.customers_updated,
                bad_lines=[e.line for e in report.errors],
            )
        )
        try:
            await store.commit(ops)
        except VersionConflict:
            continue
        log.info(
            "receivables import %s: %d new, %d updated, %d unchanged, %d bad rows",
            file,
            len(report.new),
            len(report.updated),
            report.unchanged,
            len(report.errors),
        )
        return report
    raise DomainError(_("The receivables kept changing during the import; please try again."))


# ---- texts ---------------------------------------------------------------------------
def _stage_label(action: str) -> str:
    return {
        "remind": _("friendly reminder"),
        "warn": _("warning: access will be impacted"),
        "suspend": _("suspension"),
    }.get(action, action)


def draft_text(
    action: str,
    customer: str,
    overdue: CustomerOverdue,
    sender: str,
    suspend_on: date | None,
    subscriptions: list[str] | None = None,
) -> str:
    """The customer-facing text for a stage, for the owner to send (``reactivated`` too)."""
    invoices = ", ".join(u(r.invoice) for r in overdue.invoices)
    amount = overdue.amount_text
    subs = subscriptions if subscriptions is not None else list(overdue.subscription_ids)
    sub_lines = "\n".join(f"  • {s}" for s in subs) or _("  • (your subscriptions)")
    if action == "remind":
        body = _(
            "Subject: Friendly reminder: invoice {invoices} is overdue\n\n"
            "Hello {customer},\n\n"
            "This is a friendly reminder that {amount} on invoice {invoices} was due on "
            "{due} and is now {days} days overdue. If you have already paid, thank you, and "
            "please ignore this message. Otherwise please arrange payment soon, or tell us if "
            "anything about the invoice is unclear."
        )
    elif action == "warn":
        body = _(
            "Subject: Overdue invoice: access to your Microsoft subscriptions will be "
            "impacted on {suspend_on}\n\n"
            "Hello {customer},\n\n"
            "{amount} on invoice {invoices} was due on {due} and is now {days} days overdue. "
            "Under our collections policy, if we have not received payment by {suspend_on}, "
            "access to these Microsoft subscriptions will be suspended on that day:\n{subs}\n\n"
            "Please pay {amount} before {suspend_on}. If you have paid already, please send "
            "us the payment details so we can match it."
        )
    elif action == "suspend":
        body = _(
            "Subject: Your Microsoft subscriptions are suspended for non-payment\n\n"
            "Hello {customer},\n\n"
            "Because {amount} on invoice {invoices} is {days} days overdue, we have suspended "
            "access to these Microsoft subscriptions, as our collections policy announced:\n"
            "{subs}\n\n"
            "Your data is kept. We restore access as soon as we receive payment of {amount}."
        )
    else:
        body = _(
            "Subject: Access to your Microsoft subscriptions is restored\n\n"
            "Hello {customer},\n\n"
            "Thank you for your payment. We have reactivated these Microsoft subscriptions:\n"
            "{subs}"
        )
    body += "\n\n" + _("Kind regards,\n{sender}")
    return body.format(
        customer=u(customer),
        amount=amount,
        invoices=invoices,
        due=format_date(overdue.oldest_due),
        days=overdue.days,
        suspend_on=format_date(suspend_on) if suspend_on else _("the suspension date"),
        subs=sub_lines,
        sender=u(sender),
    )


_OP_STATE_LABELS = {"cancelled": N_("cancelled"), "expired": N_("expired")}
_SUB_STATUS_LABELS = {"active": N_("active"), "suspended": N_("suspended")}


def _sub_status(value: object) -> str:
    """A subscription status from Partner Center (``suspended``…) in the current locale."""
    text = str(value or "")
    return _(_SUB_STATUS_LABELS[text]) if text in _SUB_STATUS_LABELS else text


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _empty_overdue(customer: Customer, today: date) -> CustomerOverdue:
    return CustomerOverdue(customer.id, customer.name, customer.tenant_id, 0, today, (), (), None)


# ---- the flow ----------------------------------------------------------------------------
class Collections:
    """The collections commands and jobs of one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.settings = runtime.settings
        self.policy = runtime.settings.collections
        self.client = PartnerCenterClient(runtime.settings, clock=runtime.clock)
        runtime.closers.append(self.client.close)
        desk = runtime.desk
        desk.add_commands(self)
        runtime.scheduler.add_job_type(RUN_TYPE, self.run_job)
        runtime.scheduler.add_job_type(DM_TYPE, self.dm_job)

    # ---- reading -------------------------------------------------------------------
    def today(self, now: datetime) -> date:
        return local_today(now, self.settings)

    def overdue(self, now: datetime) -> list[CustomerOverdue]:
        return overdue_by_customer(load_receivables(self.store), self.today(now), self.stages)

    @property
    def stages(self) -> tuple[CollectionsStage, ...]:
        return self.policy.stages

    def overdue_of(self, customer_id: str, now: datetime) -> CustomerOverdue | None:
        return next((c for c in self.overdue(now) if c.customer_id == customer_id), None)

    async def import_csv(self, text: str, *, actor: str, channel: str, file: str) -> ImportReport:
        """Import a receivables file into this runtime's store (``POST /local/receivables``)."""
        report = await import_receivables(
            self.store,
            self.settings,
            text,
            actor=actor,
            channel=channel,
            file=file,
            now=self.runtime.clock.now(),
        )
        self.runtime.kick()
        return report

    async def _user(self, user_id: str) -> User | None:
        user = await self.store.get_user(user_id)
        if user is not None:
            return user
        cfg = self.settings.user_by_name(user_id)
        if cfg is None:
            return None
        user = configured_user(cfg, self.settings.time_zone)
        await self.store.save_user(user)
        return user

    async def _owner_id(self, customer: Customer) -> str | None:
        if customer.owner:
            return customer.owner
        owner = _default_owner(self.settings)
        if owner:
            return owner
        leads = await self.runtime.scheduler.leads()
        return leads[0].id if leads else None

    async def _names(self) -> dict[str, str]:
        return self.store.user_names()

    async def _customer(self, name: str) -> Customer:
        customer = await self.runtime.desk.directory.find_customer(name)
        if customer is None:
            raise NotFound(
                _("I don't know a customer called {name}. `overdue` lists who owes what.").format(
                    name=u(name)
                )
            )
        return customer

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
                line = _("• {name} · {days} days · {amount} · {invoices} · owner {owner}").format(
                    name=u(c.customer_name),
                    days=c.days,
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
        invoice, amount_text = words[0], " ".join(words[1:])
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

    # ---- suspend / reactivate --------------------------------------------------------
    @command(
        "suspend",
        needs="word",
        aliases=("暂停",),
        action=Action.SUSPEND,
        usage="suspend CUSTOMER",
        help=N_("suspend a customer's subscriptions for non-payment (you confirm first)"),
        handler_checks=True,  # a refusal is audited
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
        if len(words) == 2 and words[0].lower() in OP_VERBS and _OP_ID.match(words[1]):
            return await self._op_step(turn, verb, words[0].lower(), words[1])
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
        names = await self._names()
        if kind == "suspend":
            if overdue is None:
                raise DomainError(
                    _("{customer} has nothing overdue, so there is nothing to suspend for.").format(
                        customer=u(customer.name)
                    )
                )
            if state.get("status") == "suspended":
                done = state.get("suspended") or {}
                raise DomainError(
                    _(
                        "{customer}'s subscriptions are already suspended (since {when}, by "
                        "{who}); nothing was changed. `reactivate {name}` once it has paid."
                    ).format(
                        customer=u(customer.name),
                        when=local_time(datetime.fromisoformat(done["at"]), turn.user.time_zone)
                        if done.get("at")
                        else "?",
                        who=u(names.get(done.get("by", ""), done.get("by", "?"))),
                        name=u(customer.name),
                    )
                )
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
                _("Overdue: {amount}, {days} days (invoices {invoices})").format(
                    amount=op["overdue"],
                    days=op["days"],
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
            new = {**op, "state": "cancelled", "cancelled_by": actor.user_id}
            if not await self._cas_op(
                op_id,
                op,
                new,
                audit_op(
                    now, actor.user_id, actor.channel, f"{kind}_cancelled", op["customer"], op=op_id
                ),
            ):
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
        if kind == "suspend" and self.overdue_of(customer.id, now) is None:
            new = {**op, "state": "cancelled", "cancelled_by": "paid"}
            await self._cas_op(
                op_id,
                op,
                new,
                audit_op(
                    now,
                    actor.user_id,
                    actor.channel,
                    "suspend_cancelled",
                    customer.id,
                    op=op_id,
                    why="nothing overdue any more",
                ),
            )
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
            "Collections · {customer} is {days} days overdue: {amount} (invoices {invoices}). "
            "Step due: {label} (day {stage_days} of the policy)."
        ).format(
            customer=name,
            days=overdue.days,
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


__all__ = [
    "Collections",
    "ImportReport",
    "audit_log",
    "draft_text",
    "flow_of",
    "import_receivables",
    "local_today",
    "register",
]
