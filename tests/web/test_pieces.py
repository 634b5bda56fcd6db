"""The web page's pure parts: escaping, CSV cells, redirects, the chart, KPIs, receivables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.web.auth import check_token, safe_next, token_digest
from adapters.web.chart import age_chart_svg
from adapters.web.csvout import safe_cell, to_csv
from adapters.web.receivables import overdue_accounts, stage_totals
from adapters.web.render import rich
from adapters.web.views import (
    Filters,
    Period,
    age_chart,
    kpis,
    search_hit,
    visible_customers,
)
from bot.domain import Actor, Case, Category, Customer, Kind, Role, State
from bot.money import Money
from bot.receivables import Receivable
from bot.storage import MemoryEngine, Op, Store
from conversations.text import u
from tests.web.helpers import TOKENS, web_settings

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
STAFF = Actor("alice", Role.AGENT, "web")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
        (12.5, "12.5"),
        (datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "2026-01-02T03:04+00:00"),
    ],
)
def test_csv_cells_cannot_start_a_formula(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


def test_csv_quotes_and_lines() -> None:
    text = to_csv(["a", "=b"], [["x,y", 'say "hi"'], ["-3", "line\nbreak"]])
    assert text == 'a,\'=b\r\n"x,y","say ""hi"""\r\n\'-3,"line\nbreak"\r\n'


def test_rich_escapes_typed_text_and_formats_only_the_bots() -> None:
    html = str(rich("Use `take BILL-1` — see https://learn.microsoft.com/x. " + u("<b>`y`</b>")))
    assert "<code>take BILL-1</code>" in html
    assert '<a href="https://learn.microsoft.com/x" rel="noopener noreferrer">' in html
    assert "&lt;b&gt;`y`&lt;/b&gt;" in html and "<b>" not in html
    assert str(rich("a < b & c")) == "a &lt; b &amp; c"
    assert str(rich(u('https://evil.example/"x'))) == "https://evil.example/&quot;x"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/dashboard#awaiting", "/dashboard#awaiting"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/ok\r\nSet-Cookie: x", "/"),
        (None, "/"),
    ],
)
def test_only_local_redirects(target: object, expected: str) -> None:
    assert safe_next(target) == expected


def test_tokens_are_compared_as_digests() -> None:
    settings = web_settings()
    assert check_token(settings, "alice", TOKENS["alice"]) is not None
    assert check_token(settings, "ALICE", TOKENS["alice"]) is not None  # names as in chat
    assert check_token(settings, "alice", TOKENS["lena"]) is None
    assert check_token(settings, "alice", token_digest(TOKENS["alice"])) is None
    assert check_token(settings, "bob", "") is None
    assert check_token(settings, "", TOKENS["alice"]) is None


def _case(number: int, customer: str, age: timedelta, state: State = State.OPEN) -> Case:
    case = Case.new(
        number,
        kind=Kind.QUESTION,
        customer_id=customer,
        category=Category.INVOICE if number % 2 else Category.TAX,
        description=f"case {number}",
        actor=STAFF,
        now=NOW - age,
        invoice=f"G00{number}2345",
    )
    case.state = state
    return case


def test_search_by_case_id_customer_and_invoice() -> None:
    customers = {"contoso": Customer("contoso", "Contoso Ltd")}
    case = _case(7, "contoso", timedelta(hours=1))
    for q in ("BILL-7", "bill7", "7", "conto", "G0072345", "g007"):
        assert search_hit(case, q, customers), q
    for q in ("BILL-8", "fabrikam", "G999"):
        assert not search_hit(case, q, customers), q
    assert Filters.from_query({"state": "bogus", "kind": "dispute"}).query() == {"kind": "dispute"}


def test_kpi_medians_over_cases_created_in_the_period() -> None:
    cases = []
    for i, (first, resolved, told) in enumerate([(1, 10, 2), (3, 20, 4), (5, 30, None)], 1):
        case = _case(i, "c", timedelta(days=2))
        case.first_response_at = case.created_at + timedelta(hours=first)
        case.resolved_at = case.created_at + timedelta(hours=resolved)
        if told:
            case.informed_at = case.resolved_at + timedelta(hours=told)
        cases.append(case)
    cases.append(_case(9, "c", timedelta(days=60)))  # before the period
    result = kpis(cases, Period.from_query({}, NOW.date()))
    assert result.created == 3
    first, resolution, informed = result.medians
    assert (first.seconds, first.n) == (3 * 3600, 3) and first.text == "3.0 h"
    assert (resolution.seconds, resolution.n) == (20 * 3600, 3)
    assert (informed.seconds, informed.n) == (3 * 3600, 2)
    assert {c.key: c.n for c in result.per_category} == {"invoice": 2, "tax": 1}
    period = Period.from_query({"from": "2026-12-01", "to": "2026-11-01"}, NOW.date())
    assert period.start < period.end  # swapped, not empty


def test_age_chart_buckets_and_svg() -> None:
    cases = [
        _case(1, "c", timedelta(hours=2)),
        _case(2, "c", timedelta(days=2), State.IN_PROGRESS),
        _case(3, "c", timedelta(days=2), State.RESOLVED),
        _case(4, "c", timedelta(days=40), State.ESCALATED),
        _case(5, "c", timedelta(days=40), State.CLOSED),  # archived: not in the chart
    ]
    chart = age_chart(cases, NOW)
    assert chart.total == 4
    assert sum(chart.counts[0]) == 1 and sum(chart.counts[1]) == 2 and sum(chart.counts[5]) == 1
    svg = str(age_chart_svg(chart))
    assert svg.startswith("<svg") and svg.count('<rect class="seg') == 4
    assert "2 in all" not in svg and "4 in all" in svg
    assert "<title>1 in progress, 1–3 days old</title>" in svg


async def test_overdue_accounts_by_stage_from_the_receivables_table() -> None:
    store = Store(MemoryEngine())
    settings = web_settings()
    today = NOW.date()

    def receivable(invoice: str, customer: str, amount: str, days: int, paid: str = "0") -> Op:
        r = Receivable(
            invoice=invoice,
            customer_id=customer.casefold(),
            customer_name=customer,
            amount=Money(Decimal(amount), "EUR"),
            due_date=today - timedelta(days=days),
            amount_paid=Decimal(paid),
        )
        return Op("receivables", r.key, r.to_doc())

    await store.commit(
        [
            receivable("INV-1", "Contoso", "100.00", 31),
            receivable("INV-2", "Contoso", "50.00", 3),
            receivable("INV-3", "Fabrikam", "80.00", 16, paid="30.00"),
            receivable("INV-4", "Fabrikam", "80.00", 40, paid="80.00"),  # paid: not overdue
            receivable("INV-5", "Tailspin", "10.00", -3),  # not due yet
            Op("receivables", "broken", {"invoice": "x"}),  # unreadable: left out
            Op("collections", "customer:contoso", {"customer": "contoso", "status": "suspended"}),
        ]
    )
    customers = {"contoso": Customer("contoso", "Contoso Ltd")}
    rows = overdue_accounts(store, settings, customers, today)
    assert [(r.customer, r.stage, r.days, r.amount_text) for r in rows] == [
        ("Contoso Ltd", "suspend", 31, "150.00 EUR"),
        ("Fabrikam", "warn", 16, "50.00 EUR"),
    ]
    assert rows[0].suspended and rows[0].invoices == ("INV-1", "INV-2")
    assert rows[1].suspension_date == date.fromordinal(today.toordinal() - 16 + 30)
    totals = stage_totals(rows)
    assert [(t.stage, t.accounts, t.invoices, t.amount_text) for t in totals] == [
        ("suspend", 1, 2, "150.00 EUR"),
        ("warn", 1, 1, "50.00 EUR"),
    ]


def test_the_customers_a_person_may_pick() -> None:
    contoso = Customer("contoso", "Contoso", "tenant-a")
    fabrikam = Customer("fabrikam", "fabrikam", "tenant-b")
    unknown = Customer("northwind", "Northwind")  # no tenant id yet
    every = [contoso, unknown, fabrikam]
    assert visible_customers(every, STAFF) == [contoso, fabrikam, unknown]  # by name
    lead = Actor("lena", Role.LEAD, "web")
    assert visible_customers(every, lead) == [contoso, fabrikam, unknown]
    carol = Actor("carol", Role.CUSTOMER, "web", "tenant-a")
    assert visible_customers(every, carol) == [contoso]
    assert visible_customers(every, Actor("x", Role.CUSTOMER, "web", None)) == []
    assert visible_customers(every, Actor("nora", Role.NONE, "web")) == []


def test_the_sort_comes_from_the_query_and_stays_in_its_links() -> None:
    assert Filters.from_query({}).sort == "" and not Filters.from_query({"sort": "oldest"}).active
    f = Filters.from_query({"sort": "oldest", "kind": "dispute"})
    assert f.sort == "oldest" and f.query() == {"kind": "dispute", "sort": "oldest"}
    assert f.query(sort="") == {"kind": "dispute"}
    assert (f.age_sort, f.next_age_sort) == ("descending", "newest")
    assert Filters.from_query({"sort": "newest"}).next_age_sort == "oldest"
    assert Filters.from_query({"sort": "<script>"}).sort == ""
