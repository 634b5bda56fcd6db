"""``billing-bot demo-data``: a realistic desk in an empty store, so a newcomer sees it live.

Customers with tenant ids, billing staff, and cases in every state with their
audit trails (made by the domain's own methods, so trails and states agree),
internal notes, disputes with exact money, Microsoft service requests, and
the close-the-loop reminder jobs of resolved cases. When the receivables
module exists (``bot/receivables.py`` with its ``receivables`` table), some
overdue invoices too. A store that already holds cases, customers or
receivables is refused: demo data never mixes with real data.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from adapters.web import receivables as recv
from bot.config import Settings, configured_user
from bot.domain import (
    Actor,
    Case,
    Category,
    Customer,
    Dispute,
    InformedVia,
    Kind,
    Outcome,
    Role,
    ServiceRequest,
    User,
    customer_key,
)
from bot.i18n import ngettext
from bot.kernel.scheduler import iso, loop_key, watch_key
from bot.money import Money
from bot.storage import Op, Store

CUSTOMERS = (
    "Contoso Ltd",
    "Fabrikam Inc",
    "Northwind Traders",
    "Tailspin Toys",
    "Woodgrove Bank",
    "Adventure Works Cycles",
)
DEMO_STAFF = (
    ("maria", "Maria Rossi", Role.LEAD),
    ("li.wei", "Li Wei", Role.AGENT),
    ("sam", "Sam Okafor", Role.AGENT),
    ("jonas", "Jonas Berg", Role.AGENT),
)
CHANNELS = ("slack", "teams", "web", "local")

log = logging.getLogger(__name__)


class DemoRefused(Exception):
    """The store is not empty; the text says what it holds."""


def holdings(store: Store) -> dict[str, int]:
    """What business data a store holds (users and conversations do not count)."""
    out = {"cases": store.cases_held(), "customers": store.customer_count()}
    numbers = store.case_numbers_given()
    if not out["cases"] and numbers is not None:
        out["case numbers"] = numbers
    docs = recv.table(store)
    if docs:
        out["receivables"] = len(docs)
    return {k: v for k, v in out.items() if v}


def counts_text(counts: dict[str, int]) -> str:
    """``3 customers, 1 case``: what :func:`holdings` or :func:`fill_demo` counted (not 0s)."""
    words = {
        "cases": lambda n: ngettext("{n} case", "{n} cases", n),
        "customers": lambda n: ngettext("{n} customer", "{n} customers", n),
        "case numbers": lambda n: ngettext("{n} case number", "{n} case numbers", n),
        "receivables": lambda n: ngettext("{n} receivable", "{n} receivables", n),
        "users": lambda n: ngettext("{n} user", "{n} users", n),
    }
    return ", ".join(words[k](n).format(n=n) for k, n in counts.items() if n)


@dataclass(slots=True)
class _Plan:
    """One demo case: who, what, and how far along it got."""

    customer: str
    kind: Kind
    category: Category
    description: str
    age_hours: float
    steps: list[str]  # take, note, escalate, attention, resolve, informed, close, reopen, cancel
    invoice: str | None = None
    subscription: str | None = None
    amount: str | None = None
    currency: str = "EUR"
    outcome: Outcome | None = None
    credited: str | None = None
    resolution: str = ""
    note: str = ""
    reason: str = ""
    reminders: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _plans() -> list[_Plan]:
    q, d = Kind.QUESTION, Kind.DISPUTE
    c = Category
    return [
        # open, nobody has taken them yet
        _Plan("Contoso Ltd", q, c.CHARGES, "Why were we charged twice for Microsoft 365 E3 "
              "in October?", 3, [], invoice="G012345678"),
        _Plan("Tailspin Toys", q, c.INVOICE, "The November invoice shows the old billing "
              "address; can you reissue it?", 20, [], invoice="G013002211"),
        _Plan("Woodgrove Bank", q, c.TAX, "VAT is missing on the Azure invoice for our "
              "German entity.", 52, [], invoice="G013100045"),
        # in progress
        _Plan("Fabrikam Inc", q, c.PAYMENT, "We paid invoice G012998877 by wire on the 3rd "
              "but it still shows as unpaid.", 30, ["take", "note"], invoice="G012998877",
              note="Asked finance for the remittance advice."),
        _Plan("Northwind Traders", q, c.CREDIT, "How do we use the credit note from last "
              "quarter?", 75, ["take"]),
        _Plan("Adventure Works Cycles", q, c.REFUND, "Refund for 10 Teams Phone licences "
              "cancelled within 7 days.", 100, ["take", "note"],
              subscription="8f3c2b1e-1234-4abc-9def-0123456789ab",
              note="Cancelled within the 7-day window: full refund applies."),
        _Plan("Contoso Ltd", q, c.INVOICE, "Please split the Azure invoice by cost centre.",
              200, ["take", "note"], note="Customer wants cost-centre tags on the invoice."),
        _Plan("Tailspin Toys", d, c.CHARGES, "Seats billed for users deleted in September.",
              160, ["take"], invoice="G012877001", amount="450.00", currency="USD"),
        # escalated to Microsoft
        _Plan("Fabrikam Inc", d, c.CHARGES, "Dynamics 365 billed at list price instead of "
              "the agreed discount.", 260, ["take", "escalate", "note"], invoice="G012700555",
              amount="1240.00", note="Microsoft asked for the signed price sheet."),
        _Plan("Woodgrove Bank", q, c.CHARGES, "Azure reservation charged monthly and upfront.",
              420, ["take", "escalate", "attention"], invoice="G012600123",
              extra={"mode": "api"}),
        _Plan("Northwind Traders", q, c.OTHER, "Marketplace charge we do not recognise.",
              90, ["take", "escalate"]),
        # resolved, customer not told yet (close-the-loop reminders running)
        _Plan("Contoso Ltd", d, c.CHARGES, "Duplicate charge for Power BI Pro in August.",
              330, ["take", "escalate", "resolve"], invoice="G012444321", amount="120.00",
              outcome=Outcome.CREDIT_GRANTED, credited="120.00",
              resolution="Microsoft credited the duplicate charge.", reminders=4),
        _Plan("Tailspin Toys", q, c.INVOICE, "Invoice in the wrong currency.", 140,
              ["take", "resolve"], resolution="Reissued in USD.", reminders=2),
        _Plan("Adventure Works Cycles", q, c.PAYMENT, "Card payment failed twice.", 60,
              ["take", "resolve"], resolution="The card issuer blocked it; a new mandate is "
              "set up.", reminders=1),
        _Plan("Fabrikam Inc", q, c.TAX, "Withholding tax certificate needed.", 26,
              ["take", "resolve"], resolution="Certificate sent to the tax portal.",
              reminders=0),
        # customer informed, waiting to be closed
        _Plan("Northwind Traders", q, c.INVOICE, "PO number missing on the invoice.", 300,
              ["take", "resolve", "informed"], resolution="PO number added; invoice reissued."),
        _Plan("Woodgrove Bank", d, c.CHARGES, "Overage billed for Azure egress during an "
              "outage.", 500, ["take", "escalate", "resolve", "informed"],
              invoice="G012300777", amount="980.50", outcome=Outcome.PARTIAL_CREDIT,
              credited="400.00", resolution="Microsoft credited the outage window only."),
        _Plan("Contoso Ltd", q, c.CREDIT, "When will the promotional credit show?", 180,
              ["take", "resolve", "informed"], resolution="It shows on the next invoice."),
        # reopened
        _Plan("Tailspin Toys", q, c.CHARGES, "Licences still billed after downgrade.", 400,
              ["take", "resolve", "informed", "reopen"], resolution="Downgrade applied.",
              reason="The December invoice still bills the old plan."),
        # closed and cancelled: the archive, for KPIs
        _Plan("Fabrikam Inc", q, c.INVOICE, "Need invoices as PDF for the auditor.", 700,
              ["take", "resolve", "informed", "close"], resolution="PDFs sent."),
        _Plan("Adventure Works Cycles", d, c.REFUND, "Refund for a cancelled Azure plan.",
              900, ["take", "escalate", "resolve", "informed", "close"], invoice="G011900404",
              amount="310.00", outcome=Outcome.DENIED,
              resolution="Denied: cancelled after the refund window."),
        _Plan("Northwind Traders", q, c.PAYMENT, "Change the payment method to invoice.",
              560, ["take", "resolve", "informed", "close"], resolution="Switched."),
        _Plan("Woodgrove Bank", q, c.OTHER, "Who is our billing contact?", 620,
              ["take", "resolve", "informed", "close"], resolution="Answered by email."),
        _Plan("Contoso Ltd", q, c.CHARGES, "Charged twice (same as BILL-1).", 2, ["cancel"],
              reason="duplicate of BILL-1"),
    ]  # fmt: skip


def _tenant(name: str, settings: Settings) -> str:
    for cfg in settings.customers:
        if customer_key(cfg.name) == customer_key(name) and cfg.tenant_id:
            return cfg.tenant_id
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{customer_key(name)}.demo.billing-bot"))


def _staff(settings: Settings) -> list[User]:
    staff = [
        configured_user(cfg, settings.time_zone)
        for cfg in settings.users
        if cfg.role in (Role.AGENT, Role.LEAD)
    ]
    taken = {u.id.casefold() for u in staff}
    for user_id, name, role in DEMO_STAFF:
        if len(staff) >= 4 and any(u.role == Role.LEAD for u in staff):
            break
        if user_id not in taken:
            staff.append(User(user_id, name, role, settings.time_zone, "en"))
    return staff


async def fill_demo(store: Store, settings: Settings, now: datetime) -> dict[str, int]:
    """Fill an empty store; returns how many of each thing were made. Raises DemoRefused."""
    held = holdings(store)
    if held:
        raise DemoRefused(
            f"the store already holds data ({counts_text(held)}); demo-data only fills an "
            "empty store. "
            "Point BOT_DB at a new file to try it."
        )
    rng = random.Random(20261124)
    staff = _staff(settings)
    lead = next(u for u in staff if u.role == Role.LEAD)
    agents = [u for u in staff if u.role == Role.AGENT] or [lead]
    for user in staff:
        existing = await store.get_user(user.id)
        if existing is None:
            await store.save_user(user)
    names = list(CUSTOMERS) + [
        c.name
        for c in settings.customers
        if customer_key(c.name) not in map(customer_key, CUSTOMERS)
    ]
    customers: dict[str, Customer] = {}
    for i, name in enumerate(names):
        customer = Customer(
            id=customer_key(name),
            name=name,
            tenant_id=_tenant(name, settings),
            owner=(agents[i % len(agents)] if i % 3 else lead).id,
            created_at=now - timedelta(days=90 - i),
        )
        await store.save_customer(customer)
        customers[customer.id] = customer
    made = {"customers": len(customers), "users": len(staff), "cases": 0, "receivables": 0}
    for i, plan in enumerate(_plans()):
        owner = agents[i % len(agents)] if i % 5 else lead
        build = _builder(plan, customers[customer_key(plan.customer)], owner, lead, now, rng)
        case = await store.create_case(build, functools.partial(_jobs, plan=plan, now=now))
        assert case.number >= 1
        made["cases"] += 1
    if recv.available(store):
        made["receivables"] = await _receivables(store, settings, customers, now)
    return made


def _builder(
    plan: _Plan,
    customer: Customer,
    owner: User,
    lead: User,
    now: datetime,
    rng: random.Random,
) -> Callable[[int], Case]:
    def build(number: int) -> Case:
        t = now - timedelta(hours=plan.age_hours)
        channel = CHANNELS[number % len(CHANNELS)]
        creator = Actor(owner.id, owner.role, channel, display_name=owner.display_name)
        me = Actor(owner.id, owner.role, CHANNELS[(number + 1) % len(CHANNELS)])
        dispute = None
        if plan.kind == Kind.DISPUTE:
            assert plan.amount is not None and plan.invoice is not None
            dispute = Dispute(
                plan.invoice, Money(Decimal(plan.amount), plan.currency), plan.description
            )
        case = Case.new(
            number,
            kind=plan.kind,
            customer_id=customer.id,
            category=plan.category,
            description=plan.description,
            actor=creator,
            now=t,
            subscription_id=plan.subscription,
            invoice=plan.invoice,
            dispute=dispute,
        )
        remaining = plan.age_hours

        def later(share: float) -> datetime:
            nonlocal t, remaining
            step = max(0.2, remaining * share * rng.uniform(0.6, 1.0))
            remaining = max(0.1, remaining - step)
            t = t + timedelta(hours=step)
            return t

        for step in plan.steps:
            if step == "take":
                when = later(0.15)
                case.set_owner(owner.id, me, when)
                case.start(me, when)
            elif step == "note":
                case.add_note(plan.note or "Called the customer.", me, later(0.2))
            elif step == "escalate":
                when = later(0.2)
                mode = str(plan.extra.get("mode", "manual"))
                sr_id = f"24{number:02d}{rng.randrange(10**11, 10**12)}"
                case.escalate(
                    ServiceRequest(
                        sr_id, mode, "open", when, f"Billing {plan.kind.value} for {case.id}"
                    ),
                    me,
                    when,
                )
            elif step == "attention":
                bot = Actor("billing-bot", Role.LEAD, "partner_center")
                case.record_service_request_status("attention_needed", bot, later(0.3))
            elif step == "resolve":
                credited = Money(Decimal(plan.credited), plan.currency) if plan.credited else None
                case.resolve(
                    plan.resolution,
                    me,
                    later(0.5),
                    outcome=plan.outcome,
                    credited=credited,
                )
            elif step == "informed":
                via = rng.choice(list(InformedVia))
                case.mark_informed(via, "Told the customer.", me, later(0.4))
            elif step == "close":
                case.close(me, later(0.5))
            elif step == "reopen":
                customer_side = Actor(lead.id, lead.role, "teams")
                case.reopen(plan.reason, customer_side, later(0.5))
            elif step == "cancel":
                case.cancel(plan.reason, Actor(lead.id, lead.role, "slack"), later(0.3))
        return case

    return build


def _jobs(case: Case, plan: _Plan, now: datetime) -> list[Op]:
    """The reminder jobs a real desk would have for this case right now."""
    if case.state.value == "resolved":
        return [
            Store.job_op(
                loop_key(case.number),
                {
                    "type": "loop",
                    "case": case.number,
                    "due": iso(now + timedelta(hours=2)),
                    "count": plan.reminders,
                    "escalated": plan.reminders > 3,
                    "last_sent": iso(now - timedelta(hours=2)),
                },
            )
        ]
    if case.state.value in ("open", "in_progress", "escalated", "reopened"):
        due = now + timedelta(hours=1 if case.owner is None else 24)
        return [Store.job_op(watch_key(case.number), {"type": "watch", "case": case.number,
                                                      "due": iso(due)})]  # fmt: skip
    return []


async def _receivables(
    store: Store, settings: Settings, customers: dict[str, Customer], now: datetime
) -> int:
    """Invoices, some overdue at each collections stage, through the receivables CSV import."""
    try:
        from conversations.collections import import_receivables
    except ImportError:
        return 0
    today = now.date()
    rows = [  # customer, invoice, amount, currency, amount paid, days past due
        ("contoso ltd", "INV-2026-0912", "4200.00", "EUR", "", 34),
        ("fabrikam inc", "INV-2026-0977", "1850.00", "EUR", "850.00", 18),
        ("fabrikam inc", "INV-2026-1021", "320.00", "EUR", "", 9),
        ("northwind traders", "INV-2026-1004", "760.00", "USD", "", 5),
        ("woodgrove bank", "INV-2026-1010", "12500.00", "EUR", "", 2),
        ("tailspin toys", "INV-2026-1033", "640.00", "USD", "", -10),
        ("adventure works cycles", "INV-2026-0890", "990.00", "EUR", "990.00", 40),
    ]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "customer_tenant_id",
            "customer_name",
            "invoice_number",
            "amount",
            "currency",
            "due_date",
            "paid_date",
            "subscription_ids",
            "amount_paid",
        ]
    )
    for customer_id, invoice, amount, currency, paid, days in rows:
        customer = customers.get(customer_id)
        if customer is None:
            continue
        due = today - timedelta(days=days)
        paid_date = (due + timedelta(days=3)).isoformat() if paid == amount else ""
        subscription = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{customer.id}/{invoice}"))
        writer.writerow(
            [
                customer.tenant_id or "",
                customer.name,
                invoice,
                amount,
                currency,
                due.isoformat(),
                paid_date,
                subscription,
                "" if paid_date else paid,
            ]
        )
    report = await import_receivables(
        store, settings, out.getvalue(), actor="demo-data", channel="cli", file="demo.csv", now=now
    )
    errors = getattr(report, "errors", [])
    if errors:
        log.warning("demo receivables: %s", "; ".join(str(e) for e in errors))
    return len(rows) - len(errors)
