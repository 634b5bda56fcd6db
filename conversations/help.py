"""Help texts and the Microsoft resources of duty 1 ("Answer billing questions")."""

from __future__ import annotations

from bot.domain import Role
from bot.i18n import N_, _

# (command, usage, what it does, roles that see it)
_STAFF = (Role.AGENT, Role.LEAD)
_CUSTOMER = (Role.CUSTOMER, Role.AGENT, Role.LEAD)
COMMAND_HELP: list[tuple[str, str, str, tuple[Role, ...]]] = [
    ("help", "help [command]", N_("this help, or help on one command"), (Role.NONE, *_CUSTOMER)),
    ("resources", "resources", N_("Microsoft's resources for billing questions"), _CUSTOMER),
    ("ask", "ask [text]", N_("a new billing question (a short form)"), _CUSTOMER),
    ("dispute", "dispute [invoice]", N_("a new billing dispute to report to Microsoft"), _CUSTOMER),
    ("status", "status BILL-n", N_("a case card and its history (or just BILL-n)"), _CUSTOMER),
    (
        "list",
        "list [mine|open|unassigned|escalated|awaiting-customer|all] [customer NAME]",
        N_("cases, newest activity first"),
        _CUSTOMER,
    ),
    ("take", "take BILL-n", N_("the case becomes yours"), _STAFF),
    ("assign", "assign BILL-n USER", N_("give the case to someone (@mention or name)"), _STAFF),
    ("note", "note BILL-n text", N_("an internal note, never shown to the customer"), _STAFF),
    ("escalate", "escalate BILL-n", N_("file a Microsoft service request for the case"), _STAFF),
    (
        "srstatus",
        "srstatus BILL-n open|attention_needed|closed [text]",
        N_("record the Microsoft service request's status by hand (manual mode)"),
        _STAFF,
    ),
    (
        "resolve",
        "resolve BILL-n text",
        N_("the outcome; a dispute: credit 120.00 EUR, partial 50.00 EUR or denied text"),
        _STAFF,
    ),
    (
        "informed",
        "informed BILL-n email|call|chat|ticket|meeting [text]",
        N_("the customer has been told the result: reminders stop"),
        _STAFF,
    ),
    ("reopen", "reopen BILL-n text", N_("work on a resolved or closed case again"), _STAFF),
    ("cancel", "cancel BILL-n reason", N_("cancel a case, e.g. a duplicate"), _STAFF),
    ("close", "close BILL-n", N_("close a case once the customer was informed"), _STAFF),
    ("snooze", "snooze BILL-n 1h|4h|tomorrow", N_("pause the close-the-loop reminders"), _STAFF),
    ("reminders", "reminders", N_("what is due for you, and when"), _STAFF),
    ("language", "language en|zh", N_("the language I answer you in"), _CUSTOMER),
    ("customers", "customers", N_("customers and their open cases"), _STAFF),
    ("customer", "customer NAME", N_("one customer and its open cases"), _STAFF),
    ("overdue", "overdue", N_("overdue customers by collections stage, days and amount"), _STAFF),
    ("paid", "paid INVOICE [amount]", N_("record a payment: all that is open, or a part"), _STAFF),
    (
        "suspend",
        "suspend CUSTOMER",
        N_("suspend a customer's subscriptions for non-payment (you confirm first)"),
        (Role.LEAD,),
    ),
    (
        "reactivate",
        "reactivate CUSTOMER",
        N_("reactivate a customer's suspended subscriptions (you confirm first)"),
        (Role.LEAD,),
    ),
]

RESOURCES: list[tuple[str, str]] = [
    (
        N_(
            "Product and troubleshooting training via MPN, including Customer Immersion "
            "Experience (CIE) hands-on training"
        ),
        "https://partner.microsoft.com/training",
    ),
    (
        N_("Documentation in the virtual knowledge base (vKB)"),
        "https://learn.microsoft.com/partner-center/",
    ),
    (
        N_(
            "Published technical solutions on TechNet, and partner-specific support as part "
            "of your MPN membership"
        ),
        "https://learn.microsoft.com/partner-center/report-problems-with-partner-center",
    ),
    (
        N_("Premier Support for more support benefits"),
        "https://www.microsoft.com/enterprise/services/support",
    ),
    (
        N_("Report a problem to Microsoft on a customer's behalf (billing disputes)"),
        "https://learn.microsoft.com/partner-center/report-problems-on-behalf-of-a-customer",
    ),
    (
        N_("Escalate a problem to Microsoft through Partner Support"),
        "https://learn.microsoft.com/partner-center/escalate-problems-to-microsoft",
    ),
]


def help_text(role: Role, topic: str = "") -> str:
    """The commands this role may use, or the help of one command."""
    visible = [row for row in COMMAND_HELP if role in row[3]]
    if topic:
        for name, usage, what, _roles in visible:
            if name == topic:
                return f"`{usage}` — {_(what)}"
        return _("No help for “{topic}”. Commands: {names}").format(
            topic=topic[:40], names=", ".join(r[0] for r in visible)
        )
    if role == Role.NONE:
        return _(
            "I am the billing desk's bot. You don't have a role here yet, so ask your "
            "billing team lead to add you."
        )
    lines = [_("Billing desk commands (on Slack after /billing):")]
    lines += [f"• `{usage}` — {_(what)}" for _name, usage, what, _roles in visible]
    lines.append(_("In a form, `cancel` stops and `skip` leaves out an optional field."))
    return "\n".join(lines)


def resources_text() -> str:
    lines = [_("Microsoft resources for answering billing questions:")]
    lines += [f"• {_(label)}: {url}" for label, url in RESOURCES]
    return "\n".join(lines)
