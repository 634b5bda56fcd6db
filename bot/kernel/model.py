"""The neutral messaging model: what adapters hand to flows and what flows hand back.

Flows import only this module and the domain, never a channel SDK. A typed
command, a button click and a form submission all arrive as one
:class:`Message`; a flow answers with :class:`Reply` objects that each
adapter renders natively (Block Kit, Adaptive Cards, numbered choices, HTML).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: The key of the card's stage in a click's data, a card and a form's context.
STAGE = "stage"
#: Back-compat: the key cards, clicks and form contexts written before the rename
#: (up to commit 79a86d9) used for the card's stage. Read, never written.
OLD_STAGE = "version"


_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII digits, short: int() of 5,000 digits raises


def read_stage(data: Mapping[str, Any]) -> int | None:
    """The card's stage in a click's data, a card or a form's context (None: none or not a number).

    ``"stage"`` if present, else the older ``"version"`` (back-compat: cards
    and forms already in chat, request-queue items and conversation records
    on disk, all written before the rename). An int, or a string of digits.
    """
    value = data[STAGE] if STAGE in data else data.get(OLD_STAGE)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


class Channel(StrEnum):
    LOCAL = "local"
    SLACK = "slack"
    TEAMS = "teams"
    WEB = "web"


@dataclass(frozen=True, slots=True)
class ActionRef:
    """A clicked button: the command it fires, on which case, as the card showed it.

    ``stage`` is the case's stage (state and owner changes) the card was
    rendered from: a click on an older card, or a second click, is recognised
    as stale and changes nothing.
    """

    name: str
    case_id: str | None = None
    stage: int | None = None
    value: str | None = None

    def to_value(self) -> str:
        """A compact string form for platforms that carry one value per button.

        ``name|case|stage|value``: positional, so values written before the
        rename (when the third part was called the version) read the same.
        """
        parts = [self.name, self.case_id or "", "" if self.stage is None else str(self.stage)]
        if self.value:
            parts.append(self.value)
        return "|".join(parts)

    @classmethod
    def from_value(cls, value: str) -> ActionRef:
        parts = (value or "").split("|", 3)
        name = parts[0].strip()
        case_id = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
        stage: int | None = None
        if len(parts) > 2 and parts[2].strip().isdigit():
            stage = int(parts[2])
        extra = parts[3] if len(parts) > 3 and parts[3] else None
        return cls(name=name, case_id=case_id, stage=stage, value=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a click (local chat, web): ``{name, case_id, stage, value}``."""
        return {"name": self.name, "case_id": self.case_id, STAGE: self.stage, "value": self.value}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ActionRef:
        """A click from its JSON form; the stage also under the older key (:func:`read_stage`).

        Fields of the wrong type are dropped; ``name`` must be a string
        (ValueError otherwise).
        """
        name = d.get("name")
        if not isinstance(name, str):
            raise ValueError("action must be an object with a name")
        case_id, value = d.get("case_id"), d.get("value")
        return cls(
            name=name,
            case_id=case_id if isinstance(case_id, str) else None,
            stage=read_stage(d),
            value=value if isinstance(value, str) else None,
        )

    def as_text(self) -> str:
        """The command a click stands for, as a person would type it."""
        return " ".join(p for p in (self.name, self.case_id, self.value) if p)


@dataclass(frozen=True, slots=True)
class SharedFile:
    """A file that came with a message: uploaded bytes (web, terminal) or a link (Slack, Teams).

    ``data``: the bytes of an upload, checked and stored by the desk (never kept in the
    request queue: the channels that upload answer at once). ``link``: where the file
    stays (a Slack permalink, a Teams content URL); ``source_id`` names it there
    (``slack:<file id>``, ``teams:<hash of its URL>``), so a file delivered twice is
    attached once. ``for_customer``: staff share it for the customer to see.
    """

    name: str
    data: bytes | None = None
    size: int | None = None
    content_type: str = ""
    link: str | None = None
    source_id: str | None = None
    for_customer: bool = False


@dataclass(slots=True)
class Message:
    """One inbound event from any channel, already translated.

    ``user`` is the channel's own user id; ``conversation`` identifies where
    the message came from (forms in progress are kept per conversation).
    """

    channel: Channel
    user: str
    conversation: str
    text: str = ""
    user_name: str = ""
    action: ActionRef | None = None
    form_id: str | None = None
    form_values: dict[str, str] | None = None
    form_context: dict[str, str] = field(default_factory=dict)
    locale: str | None = None
    time_zone: str | None = None
    is_direct: bool = True
    tenant: str | None = None  # Slack team / Teams tenant of the sender
    mentions: dict[str, str] = field(default_factory=dict)  # name shown -> channel user id
    reference: dict[str, Any] = field(default_factory=dict)  # where to answer / what to update
    raw: Any = None
    # A stable id of this request (the channel's queued request): a change it made is recorded
    # with it, so doing the same request again after a crash answers "already done".
    id: str | None = None
    # A reply in the thread of a case's card (Slack) or to the card (Teams): that case's id.
    # A customer's words there add to the case (conversations/desk.py).
    thread_case: str | None = None
    # Whether the message was written to the bot (a DM, a mention, a command). A message in a
    # card's thread that was not (Slack's plain thread reply) is staff's chat among themselves.
    addressed: bool = True
    files: list[SharedFile] = field(default_factory=list)  # files shared with the message


class ButtonStyle(StrEnum):
    DEFAULT = "default"
    PRIMARY = "primary"
    DANGER = "danger"


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    action: ActionRef
    style: ButtonStyle = ButtonStyle.DEFAULT


class FieldKind(StrEnum):
    TEXT = "text"
    LONG_TEXT = "long_text"
    CHOICE = "choice"
    AMOUNT = "amount"
    CURRENCY = "currency"


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class FormField:
    """One input of a form: what to ask, of which kind, and whether it may be skipped."""

    name: str
    label: str
    kind: FieldKind = FieldKind.TEXT
    required: bool = True
    choices: tuple[Choice, ...] = ()
    value: str | None = None  # pre-filled
    hint: str | None = None
    max_length: int = 3000


@dataclass(slots=True)
class Form:
    """A form to fill: a modal on Slack, a card on Teams, questions one by one in text."""

    form_id: str
    title: str
    fields: list[FormField]
    submit_label: str
    intro: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)  # e.g. {"case", "stage"}


@dataclass(frozen=True, slots=True)
class CardFact:
    label: str
    value: str


@dataclass(slots=True)
class CaseCard:
    """A case as a card: title, facts, the latest history, and the buttons that fit."""

    case_id: str
    title: str
    state: str
    state_label: str
    facts: list[CardFact]
    history: list[str]
    buttons: list[Button]
    stage: int  # the case's stage its buttons were made for


@dataclass(slots=True)
class Reply:
    """One answer: text, and optionally buttons, a form to fill, or a case card.

    ``replace`` asks the adapter to update the message that was clicked
    instead of posting a new one; ``private`` to show it only to the sender
    where the channel can (Slack ephemeral).
    """

    text: str = ""
    buttons: list[Button] = field(default_factory=list)
    form: Form | None = None
    card: CaseCard | None = None
    replace: bool = False
    private: bool = False
    kind: str = "info"  # info | error | stale | list | help


@dataclass(slots=True)
class Notification:
    """A message for another person (an assignee, an owner), delivered to their DM."""

    user_id: str
    reply: Reply
    key: str  # idempotency key: the same notification is never delivered twice
