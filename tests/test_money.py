"""Exact money: parsing what people type, formatting, arithmetic, and property tests."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.money import (
    CURRENCIES,
    MAX_INTEGER_DIGITS,
    Money,
    MoneyError,
    parse_amount,
    parse_currency,
    parse_money,
)


def m(amount: str, currency: str = "EUR") -> Money:
    return Money(Decimal(amount), currency)


# ---- friendly refusals -----------------------------------------------------------


def refusal(text: str, default_currency: str | None = None) -> str:
    with pytest.raises(MoneyError) as err:
        parse_money(text, default_currency)
    return str(err.value)


def test_decimal_comma_gets_the_dot_hint() -> None:
    assert "Use a dot for decimals: 12.50" in refusal("12,50 EUR")
    assert "Use a dot for decimals: 12.50" in refusal("EUR 12,50")
    assert "Use a dot for decimals: 12.50" in refusal("12,50")  # before any currency hint
    assert "Use a dot for decimals: 0.5" in refusal("0,5", "EUR")


@pytest.mark.parametrize("text", ["-5", "-5 EUR", "EUR -5", "-0.01 USD"])
def test_negative_amount(text: str) -> None:
    assert "more than zero" in refusal(text)


@pytest.mark.parametrize("text", ["0 EUR", "0.00 EUR", "000 USD"])
def test_zero_amount(text: str) -> None:
    assert "more than zero" in refusal(text)


def test_zero_is_allowed_when_asked_for() -> None:
    assert parse_amount("0", "EUR", allow_zero=True) == Decimal(0)


@pytest.mark.parametrize("text", ["abc", "abc EUR", "EUR abc", "12.5.0 EUR", "1e3 EUR", "½ EUR"])
def test_not_an_amount(text: str) -> None:
    assert "not an amount" in refusal(text)


def test_not_an_amount_quotes_what_was_typed() -> None:
    assert refusal("abc").startswith('"abc" is not an amount')


@pytest.mark.parametrize(
    "text", ["12345678901234567890", "12345678901234567890 EUR", "USD 1,234,567,890,123.00"]
)
def test_too_large(text: str) -> None:
    assert "too large" in refusal(text)
    assert str(MAX_INTEGER_DIGITS) in refusal(text)


def test_largest_amount_is_fine() -> None:
    assert parse_money("999999999999.99 EUR") == m("999999999999.99")
    assert parse_money("000000000000001 EUR") == m("1")  # leading zeros do not count


@pytest.mark.parametrize("text", ["12.50 XYZ", "XYZ 12.50", "12.50 EURO", "12.50 €"])
def test_unknown_currency(text: str) -> None:
    text_out = refusal(text)
    assert "not a currency code I know" in text_out
    assert "ISO 4217" in text_out


def test_unknown_currency_names_the_code() -> None:
    assert refusal("12.50 XYZ").startswith('"XYZ" is not a currency code')


def test_amount_alone_asks_for_the_currency() -> None:
    assert "Add the currency, for example 120 EUR" in refusal("120")


@pytest.mark.parametrize("text", ["", "   ", "12 EUR extra", "1 2 3"])
def test_wrong_shape(text: str) -> None:
    refusal(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1.5 JPY", "JPY has 0 decimal places"),
        ("1.001 EUR", "EUR has 2 decimal places"),
        ("1.0001 KWD", "KWD has 3 decimal places"),
        ("100.00 JPY", "JPY has 0"),
    ],
)
def test_too_many_decimal_places(text: str, why: str) -> None:
    out = refusal(text)
    assert why in out
    assert text.split()[0] in out


# ---- accepted ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("120.00 EUR", "120.00", "EUR"),
        ("EUR 120", "120", "EUR"),
        ("eur 120", "120", "EUR"),
        ("120 usd", "120", "USD"),
        ("1,200.50 USD", "1200.50", "USD"),
        ("1,234,567.89 GBP", "1234567.89", "GBP"),
        ("100 JPY", "100", "JPY"),
        ("1,200 JPY", "1200", "JPY"),
        ("1,200 EUR", "1200", "EUR"),
        ("1.234 KWD", "1.234", "KWD"),
        ("+5 EUR", "5", "EUR"),
        ("  0.01   CHF  ", "0.01", "CHF"),
        ("１２０ CNY", "120", "CNY"),  # full-width digits from a Chinese keyboard
    ],
)
def test_valid_money(text: str, amount: str, currency: str) -> None:
    money = parse_money(text)
    assert money.currency == currency
    assert money.amount == Decimal(amount)
    assert str(money.amount) == amount  # exact digits, trailing zeros kept
    assert isinstance(money.amount, Decimal)


def test_default_currency() -> None:
    assert parse_money("120.50", "EUR") == m("120.50")
    assert parse_money("120.50 USD", "EUR") == m("120.50", "USD")
    with pytest.raises(MoneyError, match="JPY has 0 decimal places"):
        parse_money("1.5", "JPY")


def test_ambiguous_comma_without_currency_is_refused() -> None:
    """Without a currency, "1,200" could be 1.2 or 1200: ask rather than guess."""
    with pytest.raises(MoneyError, match="Use a dot for decimals"):
        parse_amount("1,200")


def test_three_decimal_currency_keeps_the_comma_hint() -> None:
    # 1,200 KWD could be 1.200 KWD (three decimals) or 1200: refuse rather than guess
    assert "Use a dot for decimals: 1.200" in refusal("1,200 KWD")


def test_parse_currency() -> None:
    assert parse_currency(" usd ") == "USD"
    assert parse_currency("Jpy") == "JPY"
    with pytest.raises(MoneyError, match='"ABC" is not a currency code'):
        parse_currency("ABC")


def test_currency_table_is_iso_shaped() -> None:
    for code, places in CURRENCIES.items():
        assert len(code) == 3 and code.isupper() and code.isalpha()
        assert places in (0, 2, 3)
    assert CURRENCIES["EUR"] == 2 and CURRENCIES["JPY"] == 0 and CURRENCIES["BHD"] == 3


# ---- exactness, formatting, arithmetic ----------------------------------------------------


def test_decimal_exactness() -> None:
    total = parse_money("0.10 EUR") + parse_money("0.20 EUR")
    assert total == m("0.30")
    assert total.amount == Decimal("0.30")
    many = m("0")
    for _ in range(1000):
        many = many + m("0.01")
    assert many == m("10.00")
    assert str(many) == "10.00 EUR"


def test_money_refuses_floats_and_unknown_currencies() -> None:
    with pytest.raises(TypeError):
        Money(0.1, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(10, "EUR")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="not a currency code"):
        Money(Decimal("1"), "XYZ")


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (m("120"), "120.00 EUR"),
        (m("1200.5"), "1,200.50 EUR"),
        (m("1234567.891", "USD"), "1,234,567.89 USD"),
        (m("100", "JPY"), "100 JPY"),
        (m("1200", "JPY"), "1,200 JPY"),
        (m("1.5", "BHD"), "1.500 BHD"),
        (m("0.125"), "0.12 EUR"),  # banker's rounding, display only
        (m("0.135"), "0.14 EUR"),
        (m("-5"), "-5.00 EUR"),
        (m("999999999999.99"), "999,999,999,999.99 EUR"),
    ],
)
def test_str(money: Money, text: str) -> None:
    assert str(money) == text


def test_to_doc_is_strings_only() -> None:
    doc = m("1200.50").to_doc()
    assert doc == {"amount": "1200.50", "currency": "EUR"}
    back = Money.from_doc(doc)
    assert back == m("1200.50")
    assert back.amount.as_tuple() == Decimal("1200.50").as_tuple()


def test_arithmetic_same_currency_only() -> None:
    assert m("10.00") + m("2.50") == m("12.50")
    assert m("10.00") - m("2.50") == m("7.50")
    assert m("1", "JPY") + m("2", "JPY") == m("3", "JPY")
    with pytest.raises(MoneyError, match="cannot combine EUR and USD"):
        m("1") + m("1", "USD")
    with pytest.raises(MoneyError, match="cannot combine USD and EUR"):
        m("1", "USD") - m("1")


def test_money_is_immutable_and_hashable() -> None:
    money = m("1.00")
    with pytest.raises(AttributeError):
        money.amount = Decimal("2")  # type: ignore[misc]
    assert len({m("1.00"), m("1.0"), m("1")}) == 1
    assert m("1") != m("1", "USD")


# ---- properties ------------------------------------------------------------------------

CODES = sorted(CURRENCIES)
MONEYISH = st.text(alphabet="0123456789,.-+ eEURSDJPYxyz١２\t", max_size=30)


@given(st.text(max_size=60))
def test_parse_money_only_raises_money_error(text: str) -> None:
    try:
        money = parse_money(text)
    except MoneyError as err:
        assert str(err)
    else:
        assert money.amount > 0 and money.currency in CURRENCIES


@given(MONEYISH, st.one_of(st.none(), st.sampled_from(CODES)))
def test_parse_money_only_raises_money_error_on_moneyish_text(
    text: str, default: str | None
) -> None:
    try:
        money = parse_money(text, default)
    except MoneyError as err:
        assert str(err)
    else:
        assert isinstance(money.amount, Decimal)
        assert money.amount > 0
        places = CURRENCIES[money.currency]
        exponent = money.amount.as_tuple().exponent
        assert isinstance(exponent, int) and -exponent <= places


@given(MONEYISH, st.one_of(st.none(), st.sampled_from(CODES)), st.booleans())
def test_parse_amount_only_raises_money_error(
    text: str, currency: str | None, allow_zero: bool
) -> None:
    try:
        value = parse_amount(text, currency, allow_zero=allow_zero)
    except MoneyError:
        return
    assert value >= 0 if allow_zero else value > 0


@st.composite
def valid_money(draw: st.DrawFn) -> Money:
    code = draw(st.sampled_from(CODES))
    places = CURRENCIES[code]
    minor = draw(st.integers(min_value=1, max_value=10 ** (MAX_INTEGER_DIGITS + places) - 1))
    return Money(Decimal(minor).scaleb(-places), code)


@given(valid_money())
def test_formatted_money_roundtrips(money: Money) -> None:
    assert parse_money(str(money)) == money
    amount, code = str(money).split(" ")
    assert parse_money(f"{code} {amount}") == money
    assert parse_money(f"{code.lower()} {amount}") == money
    assert parse_money(amount, code) == money


@given(valid_money())
def test_plain_amount_roundtrips_exactly(money: Money) -> None:
    back = parse_money(f"{money.amount} {money.currency}")
    assert back == money
    assert back.amount.as_tuple() == money.amount.as_tuple()
    assert Money.from_doc(money.to_doc()).amount.as_tuple() == money.amount.as_tuple()
