"""Receivables: what each customer owes the partner, how late it is, and which step is due.

Pure and synchronous (no I/O, no clock: callers pass ``today`` or ``now``).

* :class:`Receivable` is one invoice: exact :class:`~bot.money.Money` (Decimal +
  ISO 4217 currency), due date, how much was paid (CSV ``amount_paid`` and
  payments recorded in chat) and the subscriptions it pays for.
* :func:`parse_csv` reads the import file. Every bad row is reported with its
  line number in the file (the header is line 1; a quoted field spanning lines
  counts from the line it starts on) and why; good rows are kept.
* :func:`merge_row` applies one imported row to what is stored: an identical
  row changes nothing (its fingerprint matches), so a re-import is a no-op.
* :func:`overdue_by_customer` sums the overdue invoices per customer and picks
  the collections stage (remind / warn / suspend) the days past due have reached.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.config import CollectionsStage
from bot.domain import (
    DomainError,
    InvoiceNumberError,
    check_invoice_number,
    customer_key,
    is_guid,
)
from bot.i18n import _, ngettext
from bot.money import CURRENCIES, Money, MoneyError, parse_amount, parse_currency

REQUIRED_COLUMNS = (
    "customer_tenant_id",
    "customer_name",
    "invoice_number",
    "amount",
    "currency",
    "due_date",
    "paid_date",
    "subscription_ids",
)
OPTIONAL_COLUMNS = ("amount_paid",)
MAX_NAME = 200

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ZERO = Decimal(0)


class ReceivableError(DomainError):
    """A receivable cannot be changed that way; ``str(err)`` says why, for a person."""


def invoice_key(invoice: str) -> str:
    """The storage key of an invoice number: case-insensitive (``inv-1`` finds ``INV-1``)."""
    return invoice.strip().casefold()


def stage_id(stage: CollectionsStage) -> str:
    """A stable name for a policy stage (``warn@15``): what "once per stage" is keyed by."""
    return f"{stage.action}@{stage.days}"


def _d(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment recorded in chat (``paid INVOICE [amount]``)."""

    amount: Decimal
    at: datetime
    by: str

    def to_doc(self) -> dict[str, str]:
        return {"amount": str(self.amount), "at": self.at.isoformat(), "by": self.by}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Payment:
        return cls(Decimal(doc["amount"]), datetime.fromisoformat(doc["at"]), doc["by"])


@dataclass(slots=True)
class Receivable:
    """One invoice a customer owes the partner."""

    invoice: str
    customer_id: str
    customer_name: str
    amount: Money
    due_date: date
    tenant_id: str | None = None
    paid_date: date | None = None
    amount_paid: Decimal = ZERO  # everything paid so far: the CSV's amount_paid and chat payments
    subscription_ids: tuple[str, ...] = ()
    payments: list[Payment] = field(default_factory=list)
    fingerprint: str | None = None  # of the import row it last came from
    version: int = 0

    @property
    def key(self) -> str:
        return invoice_key(self.invoice)

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def outstanding(self) -> Money:
        return Money(max(self.amount.amount - self.amount_paid, ZERO), self.currency)

    @property
    def settled(self) -> bool:
        return self.outstanding.amount == 0

    def days_past_due(self, today: date) -> int:
        """Whole days since the due date while something is unpaid; 0 when not overdue."""
        if self.settled:
            return 0
        return max(0, (today - self.due_date).days)

    def is_overdue(self, today: date) -> bool:
        return self.days_past_due(today) > 0

    def record_payment(self, amount: Decimal | None, by: str, now: datetime) -> Money:
        """Pay ``amount`` (``None``: everything outstanding); returns what was applied."""
        outstanding = self.outstanding
        if outstanding.amount == 0:
            raise ReceivableError(
                _("Invoice {invoice} is already paid in full ({amount}).").format(
                    invoice=self.invoice, amount=str(self.amount)
                )
            )
        paying = outstanding.amount if amount is None else amount
        if paying <= 0:
            raise ReceivableError(_("The amount must be more than zero."))
        if paying > outstanding.amount:
            raise ReceivableError(
                _("{paid} is more than the {outstanding} still open on invoice {invoice}.").format(
                    paid=str(Money(paying, self.currency)),
                    outstanding=str(outstanding),
                    invoice=self.invoice,
                )
            )
        self.amount_paid += paying
        self.payments.append(Payment(paying, now, by))
        if self.settled:
            self.paid_date = now.date()
        return Money(paying, self.currency)

    def to_doc(self) -> dict[str, Any]:
        return {
            "invoice": self.invoice,
            "customer_id": self.customer_id,
            "customer_name": self.customer_name,
            "tenant_id": self.tenant_id,
            "amount": self.amount.to_doc(),
            "due_date": self.due_date.isoformat(),
            "paid_date": self.paid_date.isoformat() if self.paid_date else None,
            "amount_paid": str(self.amount_paid),
            "subscription_ids": list(self.subscription_ids),
            "payments": [p.to_doc() for p in self.payments],
            "fingerprint": self.fingerprint,
            "version": self.version,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Receivable:
        due = _d(doc["due_date"])
        assert due is not None
        return cls(
            invoice=doc["invoice"],
            customer_id=doc["customer_id"],
            customer_name=doc["customer_name"],
            tenant_id=doc.get("tenant_id"),
            amount=Money.from_doc(doc["amount"]),
            due_date=due,
            paid_date=_d(doc.get("paid_date")),
            amount_paid=Decimal(doc.get("amount_paid", "0")),
            subscription_ids=tuple(doc.get("subscription_ids", ())),
            payments=[Payment.from_doc(p) for p in doc.get("payments", [])],
            fingerprint=doc.get("fingerprint"),
            version=int(doc.get("version", 0)),
        )


# ---- the CSV import -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RowError:
    """A problem with one line of the file (line 1 is the header)."""

    line: int
    message: str

    def __str__(self) -> str:
        return _("line {line}: {message}").format(line=self.line, message=self.message)


@dataclass(frozen=True, slots=True)
class ReceivableRow:
    """One valid row of the import file."""

    line: int
    tenant_id: str | None
    customer_name: str
    invoice: str
    amount: Money
    due_date: date
    paid_date: date | None
    amount_paid: Decimal
    subscription_ids: tuple[str, ...]

    @property
    def customer_id(self) -> str:
        return customer_key(self.customer_name)

    @property
    def fingerprint(self) -> str:
        """The row's content, normalised: the same row imported again matches it."""
        canonical = json.dumps(
            [
                self.tenant_id,
                self.customer_name,
                self.invoice,
                str(self.amount.amount.normalize()),
                self.amount.currency,
                self.due_date.isoformat(),
                self.paid_date.isoformat() if self.paid_date else None,
                str(self.amount_paid.normalize()),
                list(self.subscription_ids),
            ]
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(slots=True)
class ParsedCsv:
    rows: list[ReceivableRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _header_name(cell: str) -> str:
    return re.sub(r"[\s-]+", "_", cell.strip().lower())


def _date(value: str, column: str, required: bool) -> date | None:
    text = value.strip()
    if not text:
        if required:
            raise ValueError(_("{column} is empty").format(column=column))
        return None
    try:
        if not _DATE.match(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            _('{column} "{value}" is not a date: write it as YYYY-MM-DD').format(
                column=column, value=text[:40]
            )
        ) from None


def parse_csv(text: str) -> ParsedCsv:
    """Read the receivables file; bad rows become :class:`RowError` with their line number."""
    out = ParsedCsv()
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        out.errors.append(
            RowError(1, _("the header is not readable as CSV ({error})").format(error=exc))
        )
        return out
    if not header or not any(cell.strip() for cell in header):
        out.errors.append(RowError(1, _("the file is empty: the header line is missing")))
        return out
    names = [_header_name(cell) for cell in header]
    doubled = sorted({n for n in names if n and names.count(n) > 1})
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if doubled or missing:
        header_problems = []
        if missing:
            header_problems.append(_("missing columns: {names}").format(names=", ".join(missing)))
        if doubled:
            header_problems.append(
                _("columns named twice: {names}").format(names=", ".join(doubled))
            )
        out.errors.append(RowError(1, "; ".join(header_problems)))
        return out
    index = {name: i for i, name in enumerate(names) if name}
    seen_invoices: dict[str, int] = {}
    tenant_of_customer: dict[str, tuple[str, int]] = {}
    customer_of_tenant: dict[str, tuple[str, int]] = {}
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            out.errors.append(RowError(start, _("not readable as CSV ({error})").format(error=exc)))
            break
        if cells is None:
            break
        if not any(c.strip() for c in cells):
            continue  # a blank line
        if len(cells) != len(names):
            out.errors.append(
                RowError(
                    start,
                    ngettext(
                        "has {n} field but the header has {m}",
                        "has {n} fields but the header has {m}",
                        len(cells),
                    ).format(n=len(cells), m=len(names))
                    + (
                        _(
                            " (a comma inside a value? Quote the value, and write "
                            "decimals with a dot)"
                        )
                        if len(cells) > len(names)
                        else ""
                    ),
                )
            )
            continue

        def cell(column: str, row: list[str] = cells) -> str:
            i = index.get(column)
            return row[i].strip() if i is not None else ""

        problems: list[str] = []
        name = re.sub(r"\s+", " ", cell("customer_name"))
        if not name:
            problems.append(_("customer_name is empty"))
        elif len(name) > MAX_NAME:
            problems.append(
                ngettext(
                    "customer_name is longer than {n} character",
                    "customer_name is longer than {n} characters",
                    MAX_NAME,
                ).format(n=MAX_NAME)
            )
        tenant_text = cell("customer_tenant_id")
        tenant: str | None = None
        if tenant_text:
            if is_guid(tenant_text):
                tenant = tenant_text.lower()
            else:
                problems.append(
                    _('customer_tenant_id "{value}" is not a tenant id (a GUID)').format(
                        value=tenant_text[:60]
                    )
                )
        invoice = cell("invoice_number")
        try:
            invoice = check_invoice_number(invoice)
        except InvoiceNumberError as exc:
            typed, invoice = invoice, ""
            problems.append(
                _('invoice_number "{value}": {why}').format(value=typed[:80], why=exc)
                if typed
                else _("invoice_number: {why}").format(why=exc)
            )
        currency: str | None = None
        try:
            currency = parse_currency(cell("currency")) if cell("currency") else None
            if currency is None:
                problems.append(_("currency is empty"))
        except MoneyError as exc:
            problems.append(f"currency: {exc}")
        amount: Decimal | None = None
        try:
            amount = parse_amount(cell("amount"), currency)
        except MoneyError as exc:
            problems.append(f"amount: {exc}")
        paid: Decimal | None = None
        if cell("amount_paid"):
            try:
                paid = parse_amount(cell("amount_paid"), currency, allow_zero=True)
            except MoneyError as exc:
                problems.append(f"amount_paid: {exc}")
        due: date | None = None
        paid_date: date | None = None
        try:
            due = _date(cell("due_date"), "due_date", required=True)
        except ValueError as exc:
            problems.append(str(exc))
        try:
            paid_date = _date(cell("paid_date"), "paid_date", required=False)
        except ValueError as exc:
            problems.append(str(exc))
        subs: list[str] = []
        for part in cell("subscription_ids").split(";"):
            sub = part.strip()
            if not sub:
                continue
            if not is_guid(sub):
                problems.append(_('subscription id "{value}" is not a GUID').format(value=sub[:60]))
            elif sub.lower() not in subs:
                subs.append(sub.lower())
        if amount is not None and paid is not None and paid > amount:
            problems.append(
                _("amount_paid {paid} is more than the amount {amount}").format(
                    paid=cell("amount_paid"), amount=cell("amount")
                )
            )
        if invoice and not problems:
            first = seen_invoices.get(invoice_key(invoice))
            if first is not None:
                problems.append(
                    _("invoice {invoice} is already on line {line}").format(
                        invoice=invoice, line=first
                    )
                )
        if name and tenant and not problems:
            key = customer_key(name)
            known = tenant_of_customer.get(key)
            if known and known[0] != tenant:
                problems.append(
                    _("{customer} has tenant {other} on line {line}, not {tenant}").format(
                        customer=name, other=known[0], line=known[1], tenant=tenant
                    )
                )
            owner = customer_of_tenant.get(tenant)
            if owner and owner[0] != key:
                problems.append(
                    _("tenant {tenant} belongs to another customer on line {line}").format(
                        tenant=tenant, line=owner[1]
                    )
                )
        if problems:
            out.errors.append(RowError(start, "; ".join(p.rstrip(".") for p in problems)))
            continue
        assert currency is not None and amount is not None and due is not None
        if paid is None:
            paid = amount if paid_date else ZERO
        seen_invoices[invoice_key(invoice)] = start
        if tenant:
            tenant_of_customer.setdefault(customer_key(name), (tenant, start))
            customer_of_tenant.setdefault(tenant, (customer_key(name), start))
        out.rows.append(
            ReceivableRow(
                line=start,
                tenant_id=tenant,
                customer_name=name,
                invoice=invoice,
                amount=Money(amount, currency),
                due_date=due,
                paid_date=paid_date,
                amount_paid=paid,
                subscription_ids=tuple(subs),
            )
        )
    return out


def merge_row(existing: Receivable | None, row: ReceivableRow) -> tuple[str, Receivable, list[str]]:
    """Apply an imported row: ``("new" | "updated" | "unchanged", receivable, warnings)``.

    An identical row changes nothing. A changed row updates the invoice, but
    never lowers what was paid: a payment recorded in chat after the file was
    exported stays (a warning says so). Raises :class:`ReceivableError` when
    the row contradicts what is stored (another customer's invoice).
    """
    if existing is None:
        return (
            "new",
            Receivable(
                invoice=row.invoice,
                customer_id=row.customer_id,
                customer_name=row.customer_name,
                tenant_id=row.tenant_id,
                amount=row.amount,
                due_date=row.due_date,
                paid_date=row.paid_date,
                amount_paid=row.amount_paid,
                subscription_ids=row.subscription_ids,
                fingerprint=row.fingerprint,
            ),
            [],
        )
    if existing.customer_id != row.customer_id:
        raise ReceivableError(
            _("invoice {invoice} belongs to {customer}, not {other}").format(
                invoice=existing.invoice, customer=existing.customer_name, other=row.customer_name
            )
        )
    if existing.fingerprint == row.fingerprint:
        return "unchanged", existing, []
    warnings: list[str] = []
    paid = row.amount_paid
    if existing.amount_paid > paid:
        if existing.currency != row.amount.currency:
            raise ReceivableError(
                _(
                    "invoice {invoice} has {paid} paid in {currency}; the file changes its "
                    "currency to {new}"
                ).format(
                    invoice=existing.invoice,
                    paid=str(Money(existing.amount_paid, existing.currency)),
                    currency=existing.currency,
                    new=row.amount.currency,
                )
            )
        paid = min(existing.amount_paid, row.amount.amount)
        warnings.append(
            _(
                "invoice {invoice}: kept {kept} paid as recorded before (the file says {file})"
            ).format(
                invoice=existing.invoice,
                kept=str(Money(paid, existing.currency)),
                file=str(Money(row.amount_paid, row.amount.currency)),
            )
        )
    updated = Receivable(
        invoice=existing.invoice,
        customer_id=existing.customer_id,
        customer_name=row.customer_name,
        tenant_id=row.tenant_id or existing.tenant_id,
        amount=row.amount,
        due_date=row.due_date,
        paid_date=row.paid_date or (existing.paid_date if paid >= row.amount.amount else None),
        amount_paid=paid,
        subscription_ids=row.subscription_ids,
        payments=list(existing.payments),
        fingerprint=row.fingerprint,
        version=existing.version,
    )
    return "updated", updated, warnings


# ---- overdue and the policy stages ----------------------------------------------------
def stage_for(days: int, stages: Sequence[CollectionsStage]) -> CollectionsStage | None:
    """The latest stage ``days`` past due has reached (stages ascending), or None."""
    reached = [s for s in stages if days >= s.days]
    return reached[-1] if reached else None


def suspend_stage(stages: Sequence[CollectionsStage]) -> CollectionsStage | None:
    return next((s for s in stages if s.action == "suspend"), None)


def suspension_date(oldest_due: date, stages: Sequence[CollectionsStage]) -> date | None:
    """The day access is impacted under the policy (the suspend stage), if there is one."""
    stage = suspend_stage(stages)
    return oldest_due + timedelta(days=stage.days) if stage else None


def totals(amounts: Iterable[Money]) -> tuple[Money, ...]:
    """Sums per currency, in currency order (a customer may owe in more than one)."""
    by: dict[str, Decimal] = {}
    for m in amounts:
        by[m.currency] = by.get(m.currency, ZERO) + m.amount
    return tuple(Money(v, c) for c, v in sorted(by.items()) if c in CURRENCIES)


def money_text(amounts: Sequence[Money]) -> str:
    return " + ".join(str(m) for m in amounts) if amounts else "0"


@dataclass(frozen=True, slots=True)
class CustomerOverdue:
    """One customer's overdue invoices, summed, and the policy stage they have reached."""

    customer_id: str
    customer_name: str
    tenant_id: str | None
    days: int  # of the oldest overdue invoice
    oldest_due: date
    amounts: tuple[Money, ...]
    invoices: tuple[Receivable, ...]  # oldest first
    stage: CollectionsStage | None

    @property
    def amount_text(self) -> str:
        return money_text(self.amounts)

    @property
    def subscription_ids(self) -> tuple[str, ...]:
        out: list[str] = []
        for r in self.invoices:
            out += [s for s in r.subscription_ids if s not in out]
        return tuple(out)

    @property
    def invoice_numbers(self) -> tuple[str, ...]:
        return tuple(r.invoice for r in self.invoices)


def overdue_by_customer(
    receivables: Iterable[Receivable], today: date, stages: Sequence[CollectionsStage]
) -> list[CustomerOverdue]:
    """Every customer with an overdue invoice, most days past due first."""
    groups: dict[str, list[Receivable]] = {}
    for r in receivables:
        if r.is_overdue(today):
            groups.setdefault(r.customer_id, []).append(r)
    out = []
    for customer_id, items in groups.items():
        items.sort(key=lambda r: (r.due_date, r.invoice))
        days = items[0].days_past_due(today)
        out.append(
            CustomerOverdue(
                customer_id=customer_id,
                customer_name=items[0].customer_name,
                tenant_id=next((r.tenant_id for r in items if r.tenant_id), None),
                days=days,
                oldest_due=items[0].due_date,
                amounts=totals(r.outstanding for r in items),
                invoices=tuple(items),
                stage=stage_for(days, stages),
            )
        )
    out.sort(key=lambda c: (-c.days, c.customer_name.casefold()))
    return out
