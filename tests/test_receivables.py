"""Receivables, pure: CSV parsing with line numbers, merging re-imports, payments, stages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import CollectionsPolicy, CollectionsStage, ConfigError, load_settings
from bot.money import Money
from bot.receivables import (
    Receivable,
    ReceivableError,
    merge_row,
    overdue_by_customer,
    parse_csv,
    stage_for,
    stage_id,
    suspension_date,
)

HEADER = (
    "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
    "subscription_ids,amount_paid"
)
T1 = "aaaaaaaa-0000-4000-8000-00000000000a"
T2 = "bbbbbbbb-0000-4000-8000-00000000000b"
S1 = "11111111-0000-4000-8000-000000000001"
S2 = "22222222-0000-4000-8000-000000000002"
STAGES = CollectionsPolicy().stages
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def csv_text(*rows: str) -> str:
    return "\n".join((HEADER, *rows)) + "\n"


def test_good_rows_are_parsed_with_exact_money_and_normalised_ids() -> None:
    parsed = parse_csv(
        csv_text(
            f"{T1.upper()},  Contoso ,INV-1,1200.50,eur,2026-11-01,,{S1}; {S2.upper()};{S1},",
            f"{T2},Fabrikam,INV-2,80,USD,2026-11-10,2026-11-12,,",
            f'{T2},Fabrikam,INV-3,"1,000.00",USD,2026-11-20,,,250.00',
        )
    )
    assert parsed.errors == []
    a, b, c = parsed.rows
    assert (a.line, a.tenant_id, a.customer_name, a.customer_id) == (2, T1, "Contoso", "contoso")
    assert a.amount == Money(Decimal("1200.50"), "EUR") and a.amount_paid == 0
    assert a.subscription_ids == (S1, S2)  # lower-cased, de-duplicated, order kept
    assert b.amount_paid == Decimal("80")  # a paid_date without amount_paid: paid in full
    assert c.amount == Money(Decimal("1000.00"), "USD") and c.amount_paid == Decimal("250.00")
    assert isinstance(c.amount.amount, Decimal)


def test_bad_rows_are_reported_with_their_line_in_the_file_and_good_rows_kept() -> None:
    text = "\n".join(
        [
            HEADER,  # 1
            f"{T1},Contoso,INV-1,100.00,EUR,2026-11-01,,{S1},",  # 2 good
            f"{T1},Contoso,INV-2,12,50,EUR,2026-11-01,,,",  # 3 comma decimal, unquoted
            "",  # 4 blank: skipped, still counted
            ',"Contoso',  # 5 a quoted name spanning two lines...
            'Ltd",INV-3,10.00,EUR,2026-11-01,,,',  # 6 ...is one record starting on line 5
            f"not-a-guid,Contoso,INV-4,-5,EUR,01/11/2026,,{S1};nope,",  # 7 four problems
            f"{T1},Contoso,INV-1,100.00,EUR,2026-11-01,,,",  # 8 duplicate of line 2
            f"{T2},Contoso,INV-5,100.00,EUR,2026-11-01,,,",  # 9 Contoso's tenant is T1
            f"{T1},,INV-6,10.00,XYZ,2026-11-01,,,",  # 10 no name, bad currency
            f"{T2},Fabrikam,INV-7,10.00,EUR,2026-11-01,,,20.00",  # 11 paid more than amount
            f"{T2},Fabrikam,INV 8,10.00,JPY,2026-11-01,,,",  # 12 space in invoice
            f"{T2},Fabrikam,INV-9,10.5,JPY,2026-11-01,,,",  # 13 JPY has no decimals
            f"{T2},Fabrikam,INV-10,10.00,EUR,2026-11-01,,,",  # 14 good
        ]
    )
    parsed = parse_csv(text)
    assert [r.line for r in parsed.rows] == [2, 5, 14]
    assert parsed.rows[1].customer_name == "Contoso Ltd"  # the newline inside quotes became a space
    errors = {e.line: e.message for e in parsed.errors}
    assert sorted(errors) == [3, 7, 8, 9, 10, 11, 12, 13]
    assert "has 10 fields but the header has 9" in errors[3] and "Quote the value" in errors[3]
    assert "customer_tenant_id" in errors[7] and "amount" in errors[7]
    assert "due_date" in errors[7] and "YYYY-MM-DD" in errors[7] and "nope" in errors[7]
    assert "already on line 2" in errors[8]
    assert "tenant" in errors[9] and "line 2" in errors[9]
    assert "customer_name is empty" in errors[10] and "XYZ" in errors[10]
    assert "more than the amount" in errors[11]
    assert 'invoice_number "INV 8"' in errors[12] and "also has a space" in errors[12]
    assert "JPY has 0 decimal places" in errors[13]
    assert str(parsed.errors[0]).startswith("line 3: ")


def test_header_problems_are_line_one() -> None:
    parsed = parse_csv("customer_name,invoice_number,amount\nContoso,INV-1,10\n")
    assert [e.line for e in parsed.errors] == [1] and parsed.rows == []
    assert "missing columns: customer_tenant_id" in parsed.errors[0].message
    assert parse_csv("").errors[0].line == 1
    bom = "\ufeff" + csv_text(f"{T1},Contoso,INV-1,1.00,EUR,2026-11-01,,,")
    assert parse_csv(bom).errors == []  # Excel's UTF-8 BOM
    spaced = HEADER.replace("customer_name", " Customer Name ")
    assert parse_csv(spaced + f"\n{T1},Contoso,INV-1,1.00,EUR,2026-11-01,,,\n").errors == []


def test_amount_paid_column_is_optional() -> None:
    header = HEADER.removesuffix(",amount_paid")
    parsed = parse_csv(f"{header}\n{T1},Contoso,INV-1,10.00,EUR,2026-11-01,,\n")
    assert parsed.errors == [] and parsed.rows[0].amount_paid == 0


def test_merge_new_unchanged_updated() -> None:
    row = parse_csv(csv_text(f"{T1},Contoso,INV-1,100.00,EUR,2026-11-01,,{S1},")).rows[0]
    status, rec, warnings = merge_row(None, row)
    assert status == "new" and rec.fingerprint == row.fingerprint and warnings == []
    status, same, _w = merge_row(rec, row)
    assert status == "unchanged" and same is rec
    # "100" and "100.00" are the same amount: still unchanged.
    row2 = parse_csv(csv_text(f"{T1},Contoso,INV-1,100,EUR,2026-11-01,,{S1},")).rows[0]
    assert merge_row(rec, row2)[0] == "unchanged"
    moved = parse_csv(csv_text(f"{T1},Contoso,INV-1,100.00,EUR,2026-11-15,,{S1},")).rows[0]
    status, updated, _w = merge_row(rec, moved)
    assert status == "updated" and updated.due_date == date(2026, 11, 15)


def test_a_changed_row_never_lowers_a_payment_recorded_in_chat() -> None:
    row = parse_csv(csv_text(f"{T1},Contoso,INV-1,100.00,EUR,2026-11-01,,,")).rows[0]
    _s, rec, _w = merge_row(None, row)
    rec.record_payment(Decimal("40"), "alice", NOW)
    changed = parse_csv(csv_text(f"{T1},Contoso,INV-1,100.00,EUR,2026-11-02,,,10.00")).rows[0]
    status, updated, warnings = merge_row(rec, changed)
    assert status == "updated" and updated.amount_paid == Decimal("40")
    assert warnings and "kept 40.00 EUR" in warnings[0]
    assert updated.payments == rec.payments


def test_an_invoice_of_another_customer_is_refused() -> None:
    row = parse_csv(csv_text(f"{T1},Contoso,INV-1,100.00,EUR,2026-11-01,,,")).rows[0]
    _s, rec, _w = merge_row(None, row)
    other = parse_csv(csv_text(f"{T2},Fabrikam,INV-1,100.00,EUR,2026-11-01,,,")).rows[0]
    with pytest.raises(ReceivableError, match="belongs to Contoso"):
        merge_row(rec, other)


def receivable(
    invoice: str = "INV-1",
    amount: str = "100.00",
    due: date = date(2026, 11, 1),
    customer: str = "contoso",
    currency: str = "EUR",
) -> Receivable:
    return Receivable(
        invoice=invoice,
        customer_id=customer,
        customer_name=customer.title(),
        amount=Money(Decimal(amount), currency),
        due_date=due,
        subscription_ids=(S1,),
    )


def test_partial_and_full_payments() -> None:
    r = receivable()
    assert r.record_payment(Decimal("30.00"), "alice", NOW) == Money(Decimal("30.00"), "EUR")
    assert r.outstanding == Money(Decimal("70.00"), "EUR") and not r.settled
    with pytest.raises(ReceivableError, match="more than the 70.00 EUR still open"):
        r.record_payment(Decimal("70.01"), "alice", NOW)
    assert r.record_payment(None, "alice", NOW) == Money(Decimal("70.00"), "EUR")
    assert r.settled and r.paid_date == NOW.date() and len(r.payments) == 2
    with pytest.raises(ReceivableError, match="already paid in full"):
        r.record_payment(None, "alice", NOW)
    again = Receivable.from_doc(r.to_doc())
    assert again.amount_paid == Decimal("100.00") and again.payments == r.payments


def test_days_past_due_stages_and_suspension_date() -> None:
    today = date(2026, 11, 24)
    assert receivable(due=date(2026, 11, 24)).days_past_due(today) == 0
    assert receivable(due=date(2026, 11, 23)).days_past_due(today) == 1
    assert stage_for(0, STAGES) is None
    assert stage_for(1, STAGES) == CollectionsStage(1, "remind")
    assert stage_for(14, STAGES) == CollectionsStage(1, "remind")
    assert stage_for(15, STAGES) == CollectionsStage(15, "warn")
    assert stage_for(400, STAGES) == CollectionsStage(30, "suspend")
    assert stage_id(CollectionsStage(15, "warn")) == "warn@15"
    assert suspension_date(date(2026, 11, 1), STAGES) == date(2026, 12, 1)


def test_overdue_by_customer_sums_per_currency_oldest_first() -> None:
    today = date(2026, 11, 24)
    paid = receivable("INV-9", due=date(2026, 10, 1))
    paid.record_payment(None, "alice", NOW)
    items = overdue_by_customer(
        [
            receivable("INV-1", "100.00", date(2026, 11, 20)),
            receivable("INV-2", "50.00", date(2026, 11, 5)),
            receivable("INV-3", "10", date(2026, 11, 5), currency="USD"),
            receivable("INV-4", "999.00", date(2026, 12, 1)),  # not due yet
            paid,  # paid: not overdue
            receivable("INV-5", "5.00", date(2026, 10, 20), customer="fabrikam"),
        ],
        today,
        STAGES,
    )
    assert [c.customer_id for c in items] == ["fabrikam", "contoso"]  # most days first
    contoso = items[1]
    assert contoso.invoice_numbers == ("INV-2", "INV-3", "INV-1")
    assert contoso.days == 19 and contoso.stage == CollectionsStage(15, "warn")
    assert contoso.amount_text == "150.00 EUR + 10.00 USD"
    assert items[0].stage == CollectionsStage(30, "suspend")


def test_collections_config(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(
        '[collections]\nrun_at = "07:30"\n'
        'stages = [{ days = 3, action = "remind" }, { days = 10, action = "remind" },'
        ' { days = 20, action = "warn" }, { days = 45, action = "suspend" }]\n'
    )
    policy = load_settings({}, config_path=str(path)).collections
    assert policy.run_at == "07:30"
    assert [(s.days, s.action) for s in policy.stages] == [
        (3, "remind"),
        (10, "remind"),
        (20, "warn"),
        (45, "suspend"),
    ]
    for bad, message in [
        ('run_at = "9am"', "run_at"),
        ('stages = [{ days = 0, action = "remind" }]', "at least 1"),
        ('stages = [{ days = 5, action = "shout" }]', "remind, warn, suspend"),
        ('stages = [{ days = 5, action = "remind" }, { days = 5, action = "warn" }]', "more than"),
        ('stages = [{ days = 5, action = "warn" }]', "end with a suspend stage"),
        ('stages = [{ days = 5, action = "suspend" }, { days = 9, action = "remind" }]', "last"),
    ]:
        path.write_text(f"[collections]\n{bad}\n")
        with pytest.raises(ConfigError, match=message):
            load_settings({}, config_path=str(path))


def test_default_policy_is_1_15_30() -> None:
    assert [(s.days, s.action) for s in CollectionsPolicy().stages] == [
        (1, "remind"),
        (15, "warn"),
        (30, "suspend"),
    ]
