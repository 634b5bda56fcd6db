"""Exact money: ``Decimal`` amounts with an ISO 4217 currency code, never floats.

``parse_money`` and ``parse_amount`` turn what a person typed into money or
raise :class:`MoneyError` whose text tells them how to write it instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from bot.i18n import _, ngettext

# Active ISO 4217 codes and their minor units (decimal places).
CURRENCIES: dict[str, int] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2,
    "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2,
    "BOB": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2,
    "CHF": 2, "CLP": 0, "CNY": 2, "COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0,
    "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2,
    "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2,
    "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0,
    "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0,
    "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
    "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
    "MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2,
    "NPR": 2, "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2,
    "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2,
    "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2,
    "SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2,
    "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0, "USD": 2, "UYU": 2, "UZS": 2, "VES": 2, "VND": 0,
    "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XOF": 0, "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2,
    "ZWG": 2,
}  # fmt: skip

# Twelve digits before the point is far beyond any invoice a CSP partner sends.
MAX_INTEGER_DIGITS = 12

_AMOUNT_RE = re.compile(r"^\d+(\.\d+)?$")
_COMMA_DECIMAL_RE = re.compile(r"^\d+,\d{1,3}$")
_ONE_THOUSANDS_COMMA_RE = re.compile(r"^\d{1,3},\d{3}$")


class MoneyError(ValueError):
    """What a person typed is not valid money; ``str(err)`` tells them why."""


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal")
        if self.currency not in CURRENCIES:
            raise MoneyError(unknown_currency_message(self.currency))

    def __str__(self) -> str:
        places = CURRENCIES[self.currency]
        quant = Decimal(1).scaleb(-places)
        return f"{self.amount.quantize(quant, rounding=ROUND_HALF_EVEN):,} {self.currency}"

    def to_doc(self) -> dict[str, str]:
        """The stored form: the amount as a string, never a float."""
        return {"amount": str(self.amount), "currency": self.currency}

    @classmethod
    def from_doc(cls, doc: dict[str, str]) -> Money:
        return cls(Decimal(doc["amount"]), doc["currency"])

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(
                _("cannot combine {a} and {b}").format(a=self.currency, b=other.currency)
            )


def unknown_currency_message(code: str) -> str:
    return _(
        '"{code}" is not a currency code I know: use a three-letter ISO 4217 code '
        "such as EUR, USD or CNY."
    ).format(code=code)


def is_currency(word: str) -> bool:
    """A word that is an ISO 4217 code (``EUR``, ``eur``)."""
    return len(word) == 3 and word.isascii() and word.upper() in CURRENCIES


def parse_currency(text: str) -> str:
    """A three-letter ISO 4217 code, upper-cased, or :class:`MoneyError`."""
    code = text.strip().upper()
    if code not in CURRENCIES:
        raise MoneyError(unknown_currency_message(text.strip()))
    return code


def parse_amount(text: str, currency: str | None = None, *, allow_zero: bool = False) -> Decimal:
    """A positive amount typed by a person (``120``, ``120.50``, ``1,200.50``).

    ``currency`` limits the decimal places to the currency's minor units.
    """
    raw = text.strip()
    if not raw:
        raise MoneyError(_("Please type an amount, for example 120.00."))
    # "1,200" is ambiguous in general, but for a currency with fewer than three decimal
    # places (JPY, EUR, USD) three digits after the comma can only group thousands; this
    # is also how str(Money) writes 1200 JPY, so the bot's own output parses back.
    comma_groups_thousands = (
        currency is not None
        and CURRENCIES.get(currency, 2) < 3
        and _ONE_THOUSANDS_COMMA_RE.match(raw) is not None
    )
    if _COMMA_DECIMAL_RE.match(raw) and not comma_groups_thousands:
        fixed = raw.replace(",", ".")
        raise MoneyError(_("Use a dot for decimals: {fixed}").format(fixed=fixed))
    if raw.startswith("-"):
        raise MoneyError(_("The amount must be more than zero."))
    cleaned = raw.lstrip("+")
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", cleaned):
        cleaned = cleaned.replace(",", "")
    if not _AMOUNT_RE.match(cleaned):
        raise MoneyError(
            _('"{text}" is not an amount: write it with digits and a dot, like 120.00.').format(
                text=raw[:40]
            )
        )
    integer_part = cleaned.split(".")[0].lstrip("0")
    if len(integer_part) > MAX_INTEGER_DIGITS:
        raise MoneyError(
            ngettext(
                "That amount is too large: at most {n} digit before the dot.",
                "That amount is too large: at most {n} digits before the dot.",
                MAX_INTEGER_DIGITS,
            ).format(n=MAX_INTEGER_DIGITS)
        )
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:  # pragma: no cover - regex already guards this
        raise MoneyError(_("That is not an amount.")) from exc
    if value == 0 and not allow_zero:
        raise MoneyError(_("The amount must be more than zero."))
    if currency is not None:
        places = CURRENCIES.get(currency, 2)
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            raise MoneyError(
                ngettext(
                    "{currency} has {n} decimal place; {text} has more.",
                    "{currency} has {n} decimal places; {text} has more.",
                    places,
                ).format(currency=currency, n=places, text=raw)
            )
    return value


def parse_money(text: str, default_currency: str | None = None) -> Money:
    """``120.00 EUR``, ``EUR 120``, or an amount alone when a default currency is given."""
    parts = text.strip().split()
    if len(parts) == 2:
        first, second = parts
        if re.fullmatch(r"[A-Za-z]{3}", first) and (
            not re.fullmatch(r"[A-Za-z]{3}", second)
            or (first.upper() in CURRENCIES and second.upper() not in CURRENCIES)
        ):
            first, second = second, first
        currency = parse_currency(second)
        return Money(parse_amount(first, currency), currency)
    if len(parts) == 1 and default_currency:
        return Money(parse_amount(parts[0], default_currency), default_currency)
    if len(parts) == 1:
        # Check the amount first: "12,50" deserves the decimal hint, not a currency one.
        parse_amount(parts[0])
        raise MoneyError(_("Add the currency, for example {amount} EUR.").format(amount=parts[0]))
    raise MoneyError(_("Write the amount and currency like this: 120.00 EUR."))
