"""Parsing typed commands: the same words on every channel (PRODUCT.md's command table).

The words are the declared commands and their aliases (:mod:`conversations.registry`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.domain import parse_case_id
from conversations.registry import REGISTRY, CommandSpec, Registry

LIST_FILTERS = ("mine", "open", "unassigned", "escalated", "awaiting-customer", "all")

_MENTION = re.compile(r"^<@([A-Za-z0-9_.-]+)(?:\|[^>]*)?>$")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: str  # the rest of the line, as typed (stripped)
    # The declaration, set by the desk before the handler runs: its argument words.
    spec: CommandSpec | None = field(default=None, compare=False, repr=False)

    @property
    def words(self) -> list[str]:
        return self.args.split()

    def keyword(self, typed: str) -> str:
        """The declared argument word ``typed`` means (``全部`` → ``all``), else it lower-cased."""
        return self.spec.word(typed) if self.spec is not None else typed.lower()

    def word(self, index: int) -> str:
        """The ``index``-th argument word as :meth:`keyword` reads it; ``""`` past the end."""
        words = self.words
        return self.keyword(words[index]) if -len(words) <= index < len(words) else ""

    def case_and_rest(self) -> tuple[int | None, str]:
        """The leading case id (``BILL-7``) and the text after it."""
        parts = self.args.split(maxsplit=1)
        if not parts:
            return None, ""
        number = parse_case_id(parts[0])
        if number is None:
            return None, self.args
        return number, parts[1].strip() if len(parts) > 1 else ""


def parse(text: str, commands: Registry = REGISTRY) -> Command:
    """``"resolve BILL-7 fixed"`` → ``Command("resolve", "BILL-7 fixed")``; ``BILL-7`` → status.

    A word is a command's name or one of its aliases (declared with the command, see
    :mod:`conversations.registry`); any other word is passed on as it is.
    """
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
    return Command(commands.resolve(name), rest)


def complete_command(text: str, needs: Mapping[str, str | None]) -> Command | None:
    """``text`` as a command line that would run as typed, else None.

    ``needs`` maps every known command to what it needs (its declaration's ``needs``;
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
