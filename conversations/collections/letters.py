"""The words of collections: each stage's label and the customer-facing text of each stage.

:func:`draft_text` is the message the owner sends the customer (friendly
reminder, warning, suspension, reactivation), drafted in the owner's language.
"""

from __future__ import annotations

from datetime import date

from bot.i18n import _, format_date, format_days
from bot.receivables import CustomerOverdue
from conversations.text import u


# ---- texts ---------------------------------------------------------------------------
def _stage_label(action: str) -> str:
    return {
        "remind": _("friendly reminder"),
        "warn": _("warning: access will be impacted"),
        "suspend": _("suspension"),
    }.get(action, action)


def draft_text(
    action: str,
    customer: str,
    overdue: CustomerOverdue,
    sender: str,
    suspend_on: date | None,
    subscriptions: list[str] | None = None,
) -> str:
    """The customer-facing text for a stage, for the owner to send (``reactivated`` too)."""
    invoices = ", ".join(u(r.invoice) for r in overdue.invoices)
    amount = overdue.amount_text
    subs = subscriptions if subscriptions is not None else list(overdue.subscription_ids)
    sub_lines = "\n".join(f"  • {s}" for s in subs) or _("  • (your subscriptions)")
    if action == "remind":
        body = _(
            "Subject: Friendly reminder: invoice {invoices} is overdue\n\n"
            "Hello {customer},\n\n"
            "This is a friendly reminder that {amount} on invoice {invoices} was due on "
            "{due} and is now {how_long} overdue. If you have already paid, thank you, and "
            "please ignore this message. Otherwise please arrange payment soon, or tell us if "
            "anything about the invoice is unclear."
        )
    elif action == "warn":
        body = _(
            "Subject: Overdue invoice: access to your Microsoft subscriptions will be "
            "impacted on {suspend_on}\n\n"
            "Hello {customer},\n\n"
            "{amount} on invoice {invoices} was due on {due} and is now {how_long} overdue. "
            "Under our collections policy, if we have not received payment by {suspend_on}, "
            "access to these Microsoft subscriptions will be suspended on that day:\n{subs}\n\n"
            "Please pay {amount} before {suspend_on}. If you have paid already, please send "
            "us the payment details so we can match it."
        )
    elif action == "suspend":
        body = _(
            "Subject: Your Microsoft subscriptions are suspended for non-payment\n\n"
            "Hello {customer},\n\n"
            "Because {amount} on invoice {invoices} is {how_long} overdue, we have suspended "
            "access to these Microsoft subscriptions, as our collections policy announced:\n"
            "{subs}\n\n"
            "Your data is kept. We restore access as soon as we receive payment of {amount}."
        )
    else:
        body = _(
            "Subject: Access to your Microsoft subscriptions is restored\n\n"
            "Hello {customer},\n\n"
            "Thank you for your payment. We have reactivated these Microsoft subscriptions:\n"
            "{subs}"
        )
    body += "\n\n" + _("Kind regards,\n{sender}")
    return body.format(
        customer=u(customer),
        amount=amount,
        invoices=invoices,
        due=format_date(overdue.oldest_due),
        how_long=format_days(overdue.days),
        suspend_on=format_date(suspend_on) if suspend_on else _("the suspension date"),
        subs=sub_lines,
        sender=u(sender),
    )


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]
