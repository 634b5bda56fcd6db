"""Help texts and the Microsoft resources of duty 1 ("Answer billing questions").

The command lines come from the command declarations (:mod:`conversations.registry`).
"""

from __future__ import annotations

import re
from collections.abc import Container

from bot.domain import Role
from bot.i18n import N_, _, current_locale
from conversations.registry import REGISTRY, CommandSpec, Registry

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


def help_text(
    role: Role,
    topic: str = "",
    commands: Registry = REGISTRY,
    available: Container[str] | None = None,
) -> str:
    """The commands this role may use, or the help of one command.

    The commands and their lines are the declared ones (:mod:`conversations.registry`),
    in declaration order; a role sees those whose action the policy allows it.
    ``available`` narrows them to the commands a desk can run. In Chinese a command
    with a Chinese alias shows it first, with its Chinese argument words
    (``• `列表 [我的|…]` / `list` — …``); the topic may be a name or an alias.
    """
    visible = [s for s in commands.listed(role) if available is None or s.name in available]
    if topic:
        topic = commands.resolve(topic)
        for spec in visible:
            if spec.name == topic and spec.help:
                return f"{_usage(spec)} — {_(spec.help)}"
        return _("No help for “{topic}”. Commands: {names}").format(
            topic=topic[:40], names=", ".join(s.name for s in visible)
        )
    if role == Role.NONE:
        return _(
            "I am the billing desk's bot. You don't have a role here yet, so ask your "
            "billing team lead to add you."
        )
    lines = [_("Billing desk commands (on Slack after /billing):")]
    lines += [f"• {_usage(s)} — {_(s.help)}" for s in visible if s.help]
    lines.append(_("In a form, `cancel` stops and `skip` leaves out an optional field."))
    return "\n".join(lines)


# The lower-case placeholders of the declared usages (``note BILL-n text``), for the
# Chinese usage lines; the upper-case ones (``BILL-n``, ``NAME``) stay as they are.
PLACEHOLDERS = {
    "text": N_("text"),
    "reason": N_("reason"),
    "command": N_("command"),
    "invoice": N_("invoice"),
    "amount": N_("amount"),
}
_PLACEHOLDER = re.compile(r"(?<![\w-])[a-z]+(?![\w-])")


def _usage(spec: CommandSpec) -> str:
    """How to type the command: in Chinese its Chinese words first, when it has them."""
    native = spec.native_usage() if current_locale().startswith("zh") else None
    if native is None:
        return f"`{spec.usage}`"
    native = _PLACEHOLDER.sub(
        lambda m: _(PLACEHOLDERS[m.group(0)]) if m.group(0) in PLACEHOLDERS else m.group(0),
        native,
    )
    return f"`{native}` / `{spec.name}`"


def resources_text() -> str:
    lines = [_("Microsoft resources for answering billing questions:")]
    lines += [f"• {_(label)}: {url}" for label, url in RESOURCES]
    return "\n".join(lines)
