"""Overdue accounts for the dashboard, read defensively from the stored receivables.

The receivables model and collections policy live in ``bot/receivables.py``
and ``conversations/collections/`` (built separately). The dashboard shows
this section only when that module imports and the store has the receivables
(the collections flow declared its tables); a document it cannot read is
skipped (and logged), never the page failed. The stage of each account is the
policy's (``[collections] stages``), and a suspended subscription comes from
the customer's collections state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.config import Settings
from bot.domain import Customer
from bot.i18n import _, ngettext
from bot.money import Money

log = logging.getLogger(__name__)

NO_STAGE = "none"
_STAGE_NAMES = {"remind": "Friendly reminder", "warn": "Warning", "suspend": "Suspension"}


def _model() -> Any | None:
    """The receivables module, or None when it is not installed (or does not import)."""
    try:
        import bot.receivables as model
    except ImportError:
        return None
    needed = ("Receivable", "overdue_by_customer", "totals", "money_text")
    return model if all(hasattr(model, n) for n in needed) else None


def table(store: Any) -> Mapping[str, dict[str, Any]] | None:
    """The stored receivables by key; None when the store has none to give."""
    try:
        docs = store.receivable_docs()
    except Exception:  # noqa: BLE001 - no receivables table declared: the section stays hidden
        return None
    return docs if isinstance(docs, Mapping) else None


def _states(store: Any) -> Mapping[str, dict[str, Any]]:
    """Every customer's collections state by customer id ({} when there are none)."""
    try:
        states = store.collections_states()
    except Exception:  # noqa: BLE001 - no collections table declared: no suspensions shown
        return {}
    return states if isinstance(states, Mapping) else {}


def available(store: Any) -> bool:
    """True when the receivables module is installed and the store has its table."""
    return _model() is not None and table(store) is not None


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One customer with overdue invoices, and the collections stage reached."""

    customer_id: str
    customer: str
    days: int
    oldest_due: date
    amounts: tuple[Money, ...]
    amount_text: str
    invoices: tuple[str, ...]
    stage: str  # remind | warn | suspend | none
    stage_label: str
    suspended: bool
    suspension_date: date | None


@dataclass(frozen=True, slots=True)
class StageTotal:
    stage: str
    label: str
    accounts: int
    invoices: int
    amount_text: str

    def counts_text(self) -> str:
        """``1 account · 2 invoices`` in the current locale."""
        return " · ".join(
            (
                ngettext("{n} account", "{n} accounts", self.accounts).format(n=self.accounts),
                ngettext("{n} invoice", "{n} invoices", self.invoices).format(n=self.invoices),
            )
        )


def stage_label(action: str | None, days: int | None) -> str:
    if not action:
        return _("Not yet at a stage")
    name = _(_STAGE_NAMES.get(action, action.capitalize()))
    return _("{stage} (day {days}+)").format(stage=name, days=days)


def overdue_accounts(
    store: Any,
    settings: Settings,
    customers: Mapping[str, Customer],
    today: date,
) -> list[AccountRow]:
    """Every customer with an overdue invoice, most days past due first."""
    model = _model()
    docs = table(store)
    if model is None or docs is None:
        return []
    receivables = []
    for key, doc in docs.items():
        try:
            receivables.append(model.Receivable.from_doc(doc))
        except Exception:  # noqa: BLE001 - one odd document must not hide the others
            log.warning("receivable %s could not be read; left out of the dashboard", key)
    collections = getattr(settings, "collections", None)
    stages = tuple(getattr(collections, "stages", ()) or ())
    states = _states(store)
    rows = []
    for item in model.overdue_by_customer(receivables, today, stages):
        stage = item.stage
        customer = customers.get(item.customer_id)
        state = states.get(item.customer_id) or {}
        suspend_on = None
        if hasattr(model, "suspension_date"):
            suspend_on = model.suspension_date(item.oldest_due, stages)
        rows.append(
            AccountRow(
                customer_id=item.customer_id,
                customer=customer.name if customer else item.customer_name,
                days=item.days,
                oldest_due=item.oldest_due,
                amounts=tuple(item.amounts),
                amount_text=item.amount_text,
                invoices=tuple(item.invoice_numbers),
                stage=stage.action if stage else NO_STAGE,
                stage_label=stage_label(stage.action, stage.days)
                if stage
                else stage_label(None, 0),
                suspended=state.get("status") == "suspended",
                suspension_date=suspend_on,
            )
        )
    return rows


def stage_totals(rows: list[AccountRow]) -> list[StageTotal]:
    """Accounts, invoices and amounts (per currency, never mixed) per collections stage."""
    model = _model()
    order = {"suspend": 0, "warn": 1, "remind": 2, NO_STAGE: 9}
    by_stage: dict[str, list[AccountRow]] = {}
    for row in rows:
        by_stage.setdefault(row.stage, []).append(row)
    out = []
    for stage, group in sorted(by_stage.items(), key=lambda kv: (order.get(kv[0], 5), kv[0])):
        amounts = [m for r in group for m in r.amounts]
        text = (
            model.money_text(model.totals(amounts))
            if model
            else " + ".join(str(m) for m in amounts)
        )
        out.append(
            StageTotal(
                stage=stage,
                label=group[0].stage_label,
                accounts=len(group),
                invoices=sum(len(r.invoices) for r in group),
                amount_text=text,
            )
        )
    return out
