"""Form definitions and field validation, shared by every channel.

A form is filled either at once (a Slack modal, a Teams card, the web page)
or field by field in text (the terminal, a DM). Both paths run the same
validators, so ``12,50`` gets the same "use a dot for decimals" everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.domain import (
    Category,
    InformedVia,
    InvoiceNumberError,
    Outcome,
    check_invoice_number,
    is_guid,
)
from bot.i18n import N_, _, ngettext
from bot.kernel.model import Choice, FieldKind, FormField
from bot.money import MoneyError, parse_amount, parse_currency, parse_money

_REQUEST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{4,39}$")

CATEGORY_LABELS = {
    Category.INVOICE: N_("Invoice"),
    Category.CHARGES: N_("Charges"),
    Category.PAYMENT: N_("Payment"),
    Category.REFUND: N_("Refund"),
    Category.TAX: N_("Tax"),
    Category.CREDIT: N_("Credit"),
    Category.OTHER: N_("Other"),
}
OUTCOME_LABELS = {
    Outcome.CREDIT_GRANTED: N_("Credit granted"),
    Outcome.PARTIAL_CREDIT: N_("Partial credit"),
    Outcome.DENIED: N_("Denied"),
}
VIA_LABELS = {
    InformedVia.EMAIL: N_("Email"),
    InformedVia.CALL: N_("Call"),
    InformedVia.CHAT: N_("Chat"),
    InformedVia.TICKET: N_("Ticket"),
    InformedVia.MEETING: N_("Meeting"),
}
SNOOZE_LABELS = {
    "1h": N_("1 hour"),
    "4h": N_("4 hours"),
    "tomorrow": N_("Tomorrow morning"),
}
SEVERITY_LABELS = {
    "minimal": N_("Minimal"),
    "moderate": N_("Moderate"),
    "critical": N_("Critical"),
}


class ValidationError(ValueError):
    """A field value is not acceptable; the text says how to write it."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A validated value, plus other fields it filled (``12.50 EUR`` fills the currency)."""

    value: str
    also: tuple[tuple[str, str], ...] = ()


def choices(
    labels: Mapping[str, str]
    | Mapping[Category, str]
    | Mapping[Outcome, str]
    | Mapping[InformedVia, str],
) -> tuple[Choice, ...]:
    return tuple(Choice(str(k), _(v)) for k, v in labels.items())


def pick(raw: str, options: tuple[Choice, ...]) -> str:
    """A choice typed as its number, value or label (case-insensitive)."""
    text = raw.strip().casefold()
    if text.isdigit() and 1 <= int(text) <= len(options):
        return options[int(text) - 1].value
    for opt in options:
        if text in (opt.value.casefold(), opt.label.casefold()):
            return opt.value
    listed = ", ".join(o.label for o in options)
    raise ValidationError(_("Please choose one of: {options}.").format(options=listed))


def validate(field: FormField, raw: str) -> Parsed:
    """Check one answer against its field; raise :class:`ValidationError` with a friendly text."""
    text = (raw or "").strip()
    if not text:
        if field.required:
            raise ValidationError(_("{label} is required.").format(label=field.label))
        return Parsed("")
    if len(text) > field.max_length:
        raise ValidationError(
            ngettext(
                "That is too long: at most {n} character.",
                "That is too long: at most {n} characters.",
                field.max_length,
            ).format(n=field.max_length)
        )
    try:
        if field.kind == FieldKind.CHOICE:
            return Parsed(pick(text, field.choices))
        if field.kind == FieldKind.CURRENCY:
            return Parsed(parse_currency(text))
        if field.kind == FieldKind.AMOUNT:
            if len(text.split()) == 2:
                money = parse_money(text)
                return Parsed(str(money.amount), (("currency", money.currency),))
            return Parsed(str(parse_amount(text)))
    except MoneyError as exc:
        raise ValidationError(str(exc)) from exc
    return Parsed(text)


# Per-field checks, named in the form declarations (``Field(checks=...)``): each takes the
# form's environment (unused here) and the answer, and returns the value to keep.
def subscription_id(env: object, text: str) -> str:
    if not is_guid(text):
        raise ValidationError(
            _(
                "A subscription id looks like 8f3c2b1e-1234-4abc-9def-0123456789ab "
                "(Partner Center → Customers → Subscriptions)."
            )
        )
    return text


def invoice_number(env: object, text: str) -> str:
    """The domain's one rule for invoice numbers (:func:`bot.domain.check_invoice_number`)."""
    try:
        return check_invoice_number(text)
    except InvoiceNumberError as exc:
        raise ValidationError(str(exc)) from None


def request_number(env: object, text: str) -> str:
    """A Partner Center service request number (also checked when typed after ``escalate``)."""
    text = text.strip()
    if not _REQUEST.match(text):
        raise ValidationError(
            _("Paste the service request number Partner Center showed, like 2411240010001234.")
        )
    return text


def credited_field() -> FormField:
    return FormField(
        "credited",
        _("Credited amount"),
        FieldKind.AMOUNT,
        hint=_("For example 120.00 EUR"),
    )
