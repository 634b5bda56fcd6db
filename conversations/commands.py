"""Parsing typed commands: the same words on every channel (PRODUCT.md's command table)."""

from __future__ import annotations

import re
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


def mention_id(word: str) -> str | None:
    """The user id inside a Slack-style ``<@U123>`` mention, if ``word`` is one."""
    m = _MENTION.match(word.strip())
    return m.group(1) if m else None
