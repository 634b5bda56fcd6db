"""Disputes on the web page (issue 19): the partial-credit rule on the resolve form, an
invoice number with slashes, and the confirmation of a dispute never reported to Microsoft,
clicked twice."""

from __future__ import annotations

from tests.web.conftest import AppFactory
from tests.web.helpers import button, form_context


async def test_the_web_page_confirms_once(make_web: AppFactory) -> None:
    b, runtime, _client = await make_web()
    await b.login("alice")
    out = await b.submit(
        "dispute",
        {"customer": "Contoso", "invoice": "INV/2026/01", "amount": "1234.56",
         "currency": "CNY", "reason": "Seats billed twice"},
    )  # fmt: skip
    assert 'data-case="BILL-1"' in out, out[:2000]
    out = await b.click(button(await b.say("status BILL-1"), "resolve", "BILL-1"))
    ctx = form_context(out, "resolve")
    values = {"outcome": "partial_credit", "credited": "1234.56", "resolution": ""}
    out = await b.submit("resolve", values, ctx)
    assert "A partial credit is less than the disputed 1,234.56 CNY" in out
    out = await b.submit("resolve", {**values, "outcome": "credit_granted"}, ctx)
    assert "was never reported to Microsoft" in out and "Resolve anyway" in out
    yes = "answer|||yes"
    assert f'value="{yes}"' in out
    out = await b.click(yes)
    assert "BILL-1 is resolved." in out
    await b.click(yes)  # a double click
    stored = await runtime.store.get_case(1)
    assert stored is not None and [a.action for a in stored.audit].count("resolved") == 1
