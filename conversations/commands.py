"""Parsing typed commands: the same words on every channel (PRODUCT.md's command table)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.domain import parse_case_id

COMMANDS = (
    "help",
    "resources",
    "ask",
    "dispute",
    "status",
    "list",
    "take",
    "assign",
    "note",
    "escalate",
    "resolve",
    "informed",
    "reopen",
    "cancel",
    "close",
    "snooze",
    "reminders",
    "customers",
    "customer",
    "language",
)

# Common slips people make; the command table stays the contract.
ALIASES = {
    "?": "help",
    "h": "help",
    "show": "status",
    "ls": "list",
    "cases": "list",
    "comment": "note",
    "inform": "informed",
    "assign-to": "assign",
    # Chinese aliases: the English words work everywhere, these too.
    "帮助": "help",
    "资源": "resources",
    "提问": "ask",
    "争议": "dispute",
    "状态": "status",
    "列表": "list",
    "接手": "take",
    "分配": "assign",
    "备注": "note",
    "上报": "escalate",
    "解决": "resolve",
    "已告知": "informed",
    "重新打开": "reopen",
    "取消": "cancel",
    "关闭": "close",
    "稍后提醒": "snooze",
    "提醒": "reminders",
    "客户列表": "customers",
    "客户": "customer",
    "逾期": "overdue",
    "已付款": "paid",
    "暂停": "suspend",
    "恢复": "reactivate",
    "重新激活": "reactivate",
    "语言": "language",
}

# What a command needs after its name to run as typed: ``case`` a case id first, ``word`` at
# least one word; a command not listed needs nothing. Flow modules add theirs
# (``Desk.add_command(..., needs=...)``). Used to tell a command line typed into an open form.
NEEDS: dict[str, str] = {
    "status": "case",
    "take": "case",
    "assign": "case",
    "note": "case",
    "escalate": "case",
    "resolve": "case",
    "informed": "case",
    "reopen": "case",
    "cancel": "case",
    "close": "case",
    "snooze": "case",
    "customer": "word",
    "language": "word",
}

LIST_FILTERS = ("mine", "open", "unassigned", "escalated", "awaiting-customer", "all")

_MENTION = re.compile(r"^<@([A-Za-z0-9_.-]+)(?:\|[^>]*)?>$")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: str  # the rest of the line, as typed (stripped)

    @property
    def words(self) -> list[str]:
        return self.args.split()

    def case_and_rest(self) -> tuple[int | None, str]:
        """The leading case id (``BILL-7``) and the text after it."""
        parts = self.args.split(maxsplit=1)
        if not parts:
            return None, ""
        number = parse_case_id(parts[0])
        if number is None:
            return None, self.args
        return number, parts[1].strip() if len(parts) > 1 else ""


def parse(text: str) -> Command:
    """``"resolve BILL-7 fixed"`` → ``Command("resolve", "BILL-7 fixed")``; ``BILL-7`` → status."""
    stripped = (text or "").strip()
    if stripped.startswith("/billing"):
        stripped = stripped[len("/billing") :].strip()
    if not stripped:
        return Command("help", "")
    head, _, rest = stripped.partition(" ")
    rest = rest.strip()
    if parse_case_id(head) is not None:
        return Command("status", f"{head} {rest}".strip())
    name = head.lower()
    return Command(ALIASES.get(name, name), rest)


def complete_command(text: str, needs: Mapping[str, str | None]) -> Command | None:
    """``text`` as a command line that would run as typed, else None.

    ``needs`` maps every known command to what it needs (see :data:`NEEDS`;
    ``None`` or ``""`` for nothing): ``cancel BILL-2 dup`` is a complete
    command, ``cancel the order`` is not (no case id), nor is ``Contoso``.
    """
    if not (text or "").strip():
        return None
    cmd = parse(text)
    if cmd.name not in needs:
        return None
    need = needs[cmd.name] or ""
    if need == "case" and cmd.case_and_rest()[0] is None:
        return None
    if need == "word" and not cmd.words:
        return None
    return cmd


def mention_id(word: str) -> str | None:
    """The user id inside a Slack-style ``<@U123>`` mention, if ``word`` is one."""
    m = _MENTION.match(word.strip())
    return m.group(1) if m else None
