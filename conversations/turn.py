"""What a flow gets for one message (:class:`Turn`) and what it hands back (:class:`Result`).

Shared by the desk, the form engine and the flow modules, so none of them
imports another just for these two types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.domain import Actor, User
from bot.kernel.model import ActionRef, Message, Notification, Reply


@dataclass(slots=True)
class Result:
    """What handling one message produced."""

    replies: list[Reply] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)


@dataclass(slots=True)
class Turn:
    """Everything a flow needs about the message being handled."""

    msg: Message
    user: User
    actor: Actor
    now: datetime
    clicked: ActionRef | None = None
    case_number: int | None = None  # the case this turn works on, once loaded


def reply(text: str, **kw: object) -> Result:
    """A result of one text reply (``kind``, ``buttons``… as for :class:`Reply`)."""
    return Result([Reply(text=text, **kw)])  # type: ignore[arg-type]


__all__ = ["Result", "Turn", "reply"]
