"""The receivables CSV import: good rows kept, bad rows reported, all in one commit.

:func:`import_receivables` (the CLI's ``receivables import``, ``POST
/local/receivables``, the web demo) and its :class:`ImportReport`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.domain import Customer, DomainError, customer_key
from bot.i18n import _, ngettext
from bot.kernel.scheduler import iso
from bot.receivables import Receivable, ReceivableError, RowError, invoice_key, merge_row, parse_csv
from bot.storage import Op, Store, VersionConflict
from conversations.collections.state import (
    RUN_KEY,
    RUN_TYPE,
    _default_owner,
    _settled_ops,
    audit_op,
    load_receivables,
)

log = logging.getLogger(__name__)


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
        total = len(self.new) + len(self.updated) + self.unchanged
        invoices = ngettext(
            "{n} invoice: {new} new, {updated} updated, {unchanged} unchanged",
            "{n} invoices: {new} new, {updated} updated, {unchanged} unchanged",
            total,
        ).format(n=total, new=len(self.new), updated=len(self.updated), unchanged=self.unchanged)
        created = len(self.customers_created)
        customers = ngettext(
            "{n} customer created, {updated} updated",
            "{n} customers created, {updated} updated",
            created,
        ).format(n=created, updated=len(self.customers_updated))
        lines = [
            _("{file}: {invoices}; {customers}.").format(
                file=self.file, invoices=invoices, customers=customers
            )
        ]
        if self.errors:
            lines.append(
                ngettext(
                    "{n} bad row was skipped (the header is line 1):",
                    "{n} bad rows were skipped (the header is line 1):",
                    len(self.errors),
                ).format(n=len(self.errors))
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
