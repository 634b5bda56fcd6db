"""Conversations shared with a customer, and what the bot may answer staff there: one rule.

A Slack Connect channel or a shared Teams channel that the config maps to a
customer (``customers[].slack_channels``, ``customers[].teams_conversations``)
holds that customer's contacts too. What the bot answers billing staff there
(a case card with its internal notes and service request, every customer's
cases, the customers with their tenant ids) must reach only the person who
asked: each channel shows it privately in its own way (Slack: ephemeral;
Teams: the personal chat, and where that cannot be had, only a note in the
channel that the answer cannot be shown there).

A sender the desk has no stored record of counts as staff: an answer shown
privately to a customer's contact costs nothing, an internal note shown to
a customer cannot be taken back.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.config import CustomerConfig
from bot.domain import Role, User
from bot.kernel.model import Channel

STAFF = (Role.AGENT, Role.LEAD)


class CustomerConversations:
    """Which conversations the config maps to a customer, per channel."""

    def __init__(self, customers: Iterable[CustomerConfig]) -> None:
        self._customers = tuple(customers)
        self._shared = {
            Channel.SLACK: frozenset(c for cfg in self._customers for c in cfg.slack_channels),
            Channel.TEAMS: frozenset(c for cfg in self._customers for c in cfg.teams_conversations),
        }

    @staticmethod
    def _mapped(cfg: CustomerConfig, channel: Channel) -> tuple[str, ...]:
        if channel == Channel.SLACK:
            return cfg.slack_channels
        if channel == Channel.TEAMS:
            return cfg.teams_conversations
        return ()

    def customer(self, channel: Channel, where: Iterable[str | None]) -> CustomerConfig | None:
        """The customer whose conversation ``where`` is (any of the ids it goes by), or None."""
        ids = {w for w in where if w}
        for cfg in self._customers:
            if ids.intersection(self._mapped(cfg, channel)):
                return cfg
        return None

    def shared(self, channel: Channel, where: Iterable[str | None], *, direct: bool) -> bool:
        """Is the conversation (any of the ids it goes by) shared with a customer?

        A direct chat with the bot never is.
        """
        if direct:
            return False
        shared = self._shared.get(channel, frozenset())
        return any(w in shared for w in where if w)


def answer_privately(sender: User | None, *, shared: bool) -> bool:
    """Must the answer to ``sender`` stay private (shown to them only)?

    Yes for billing staff in a conversation shared with a customer, and for
    a sender the desk has no stored record of (``None``) there: they may be
    staff. A customer's contact, someone without a role, and anyone in a
    conversation not shared with a customer are answered where they wrote.
    """
    if not shared:
        return False
    return sender is None or sender.role in STAFF


__all__ = ["STAFF", "CustomerConversations", "answer_privately"]
