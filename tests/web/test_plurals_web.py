"""The dashboard's overdue totals count with ngettext: "1 account · 1 invoice" (issue 19, 7)."""

from __future__ import annotations

from conversations.collections import flow_of
from tests.harness import TENANT_A, TENANT_B
from tests.web.conftest import AppFactory

HEADER = (
    "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
    "subscription_ids,amount_paid"
)


async def test_overdue_totals_say_1_account_and_2_accounts(make_web: AppFactory) -> None:
    b, runtime, _client = await make_web()
    rows = [
        f"{TENANT_A},Contoso,INV-1,1200.00,EUR,2026-01-05,,,",  # suspend stage: one account
        f"{TENANT_B},Fabrikam,INV-2,80.00,EUR,2026-11-10,,,",  # remind stage: two accounts
        ",Northwind,INV-3,10.00,EUR,2026-11-12,,,",
        ",Northwind,INV-4,10.00,EUR,2026-11-13,,,",
    ]
    csv = "\n".join([HEADER, *rows]) + "\n"
    await flow_of(runtime).import_csv(csv, actor="lena", channel="cli", file="ar.csv")
    await b.login("lena")
    page = await b.get("/dashboard")
    assert 'id="overdue"' in page
    assert "1 accounts" not in page and "1 invoices" not in page
    assert "1 account · 1 invoice" in page
    assert "2 accounts · 3 invoices" in page
