"""The case domain: customers, users, cases, states, disputes, notes and the audit trail.

Pure and synchronous: no I/O, no clock of its own (callers pass ``now``).
Every change to a case goes through a method here that checks the state
machine of PRODUCT.md and appends an audit entry, so a case and its trail
can never disagree. Forbidden moves raise :class:`DomainError` with text a
person can read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.i18n import N_, _
from bot.money import Money

CASE_PREFIX = "BILL-"
_CASE_RE = re.compile(r"^\s*bill-?(\d{1,9})\s*$", re.IGNORECASE)


class DomainError(Exception):
    """A move the rules forbid; ``str(err)`` is meant for the user."""


class NotFound(DomainError):
    """The thing named does not exist (or is not visible to the asker)."""


class Conflict(DomainError):
    """The record changed since it was read (optimistic concurrency)."""


class State(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CUSTOMER_INFORMED = "customer_informed"
    CLOSED = "closed"
    REOPENED = "reopened"
    CANCELLED = "cancelled"


# The state machine of PRODUCT.md, exactly.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPEN: frozenset({State.IN_PROGRESS, State.CANCELLED}),
    State.IN_PROGRESS: frozenset({State.ESCALATED, State.RESOLVED, State.CANCELLED}),
    State.ESCALATED: frozenset({State.RESOLVED, State.CANCELLED}),
    State.RESOLVED: frozenset({State.CUSTOMER_INFORMED, State.REOPENED}),
    State.CUSTOMER_INFORMED: frozenset({State.CLOSED, State.REOPENED}),
    State.CLOSED: frozenset({State.REOPENED}),
    State.REOPENED: frozenset({State.IN_PROGRESS}),
    State.CANCELLED: frozenset(),
}

# Every state that is not archived (a customer_informed case still waits to be closed).
LIVE_STATES = frozenset(
    {
        State.OPEN,
        State.IN_PROGRESS,
        State.ESCALATED,
        State.RESOLVED,
        State.CUSTOMER_INFORMED,
        State.REOPENED,
    }
)
# The states in which a customer may still add to or withdraw their case (``add``, ``withdraw``):
# the desk is working on it. Resolved, informed, closed and cancelled cases take no more; a
# customer asks a new question instead (or the desk reopens the case).
CUSTOMER_OPEN_STATES = frozenset({State.OPEN, State.IN_PROGRESS, State.ESCALATED, State.REOPENED})
# Cases in these states are finished and move to the archive.
ARCHIVED_STATES = frozenset({State.CLOSED, State.CANCELLED})

# Audit actions that change what a case card's buttons should be.
STAGE_ACTIONS = frozenset(
    {
        "created",
        "started",
        "assigned",
        "escalated",
        "resolved",
        "customer_informed",
        "reopened",
        "cancelled",
        "withdrawn",
        "closed",
    }
)


@dataclass(frozen=True, slots=True)
class AuditKind:
    """How one kind of audit event is shown: to the desk, and whether and how to a customer.

    ``label`` and ``customer`` are ``N_()`` texts that follow the actor's name
    ("Alice Agent resolved it"). ``customer=None``: the event is the desk's internal
    working and a customer never sees it. ``customer_details``: the entry's details a
    customer may read (the rest, such as service request ids, stay with the desk).
    """

    label: str
    customer: str | None
    customer_details: frozenset[str] = frozenset()


# Every kind of audit event a case's trail holds, and what a customer sees of it: the one
# place that decides (the case card, `status`, the web case page and the lists all ask
# here). A new kind is added here with its decision (tests/test_audit_visibility.py).
AUDIT_KINDS: dict[str, AuditKind] = {
    "created": AuditKind(N_("created"), N_("opened the case"), frozenset({"amount"})),
    "started": AuditKind(N_("started work"), N_("started working on it")),
    "assigned": AuditKind(N_("assigned"), None),
    "noted": AuditKind(N_("added a note"), None),
    "escalated": AuditKind(N_("escalated to Microsoft"), N_("raised it with Microsoft for you")),
    "resolved": AuditKind(
        N_("resolved"),
        N_("resolved it"),
        frozenset({"resolution", "outcome", "credited"}),
    ),
    "customer_informed": AuditKind(
        N_("recorded that the customer was told"),
        N_("told you the outcome"),
        frozenset({"via", "text"}),
    ),
    "reopened": AuditKind(N_("reopened"), N_("reopened it"), frozenset({"reason"})),
    "cancelled": AuditKind(N_("cancelled"), N_("cancelled it"), frozenset({"reason"})),
    # The customer's own words on their case (``add``; staff may add one on their behalf):
    # seen by both sides, with the text. An internal remark is a note, never a comment.
    "commented": AuditKind(N_("added a comment"), N_("added a comment"), frozenset({"text"})),
    # The customer withdrew the case (``withdraw``): cancelled, with their reason if any.
    "withdrawn": AuditKind(N_("withdrew the case"), N_("withdrew the case"), frozenset({"reason"})),
    "closed": AuditKind(N_("closed"), N_("closed it")),
    "service_request_status": AuditKind(N_("service request status changed"), None),
    "snoozed": AuditKind(N_("snoozed the reminders"), None),
    # A file shared by or for the customer; the name is theirs to read.
    "attached": AuditKind(N_("attached a file"), N_("added a file"), frozenset({"name"})),
    # A file staff shared in an internal context (a DM with the bot, the terminal, the web
    # page without "visible to the customer"): the desk's working, never the customer's.
    "attached_internal": AuditKind(N_("attached an internal file"), None),
}


STATE_LABELS: dict[State, str] = {
    State.OPEN: N_("open"),
    State.IN_PROGRESS: N_("in progress"),
    State.ESCALATED: N_("escalated to Microsoft"),
    State.RESOLVED: N_("resolved, customer not told yet"),
    State.CUSTOMER_INFORMED: N_("customer informed"),
    State.CLOSED: N_("closed"),
    State.REOPENED: N_("reopened"),
    State.CANCELLED: N_("cancelled"),
}


class Kind(StrEnum):
    QUESTION = "question"
    DISPUTE = "dispute"


class Category(StrEnum):
    INVOICE = "invoice"
    CHARGES = "charges"
    PAYMENT = "payment"
    REFUND = "refund"
    TAX = "tax"
    CREDIT = "credit"
    OTHER = "other"


class Outcome(StrEnum):
    CREDIT_GRANTED = "credit_granted"
    PARTIAL_CREDIT = "partial_credit"
    DENIED = "denied"


class InformedVia(StrEnum):
    EMAIL = "email"
    CALL = "call"
    CHAT = "chat"
    TICKET = "ticket"
    MEETING = "meeting"


class Role(StrEnum):
    AGENT = "agent"
    LEAD = "lead"
    CUSTOMER = "customer"
    NONE = "none"


def utcnow() -> datetime:
    """The current time in UTC (the real clock; tests inject their own)."""
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def format_case_id(number: int) -> str:
    return f"{CASE_PREFIX}{number}"


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str | None) -> bool:
    """A GUID as Microsoft writes them (tenant, subscription, app and request ids)."""
    return bool(_GUID.match(value or ""))


def parse_case_id(text: str) -> int | None:
    """``BILL-7``, ``bill-7``, ``bill7`` → 7; anything else → None."""
    m = _CASE_RE.match(text or "")
    return int(m.group(1)) if m else None


# ---- invoice numbers: the one rule ---------------------------------------------------
# The partner's own invoice numbers (the receivables file: INV-1001, INV/2026/01, 2026#17)
# and Microsoft's invoice ids (G099887766, D0600ABCDE) all fit it.
INVOICE_MAX_LENGTH = 64
INVOICE_PUNCTUATION = "._/#-"
_INVOICE_CHAR = re.compile(r"[A-Za-z0-9._/#-]")
_ALNUM = re.compile(r"[A-Za-z0-9]")


class InvoiceNumberError(DomainError):
    """Not an invoice number; ``str(err)`` names the rule it breaks."""


def _char_name(ch: str) -> str:
    if ch == " ":
        return _("a space")
    if ch.isspace():
        return _("a tab or line break")
    return f"“{ch}”"


def check_invoice_number(text: str | None) -> str:
    """``text`` as an invoice number (surrounding spaces dropped), or :class:`InvoiceNumberError`.

    The one rule of every place that takes an invoice number (the receivables
    import, ``paid``, the dispute and question forms): letters A–Z, digits and
    ``. _ / # -``, starting with a letter or a digit, at most 64 characters.
    Each refusal names the rule that failed.
    """
    value = (text or "").strip()
    if not value:
        raise InvoiceNumberError(_("The invoice number is empty."))
    if len(value) > INVOICE_MAX_LENGTH:
        raise InvoiceNumberError(
            _("An invoice number has at most {max} characters; this one has {n}.").format(
                max=INVOICE_MAX_LENGTH, n=len(value)
            )
        )
    bad = list(dict.fromkeys(ch for ch in value if not _INVOICE_CHAR.fullmatch(ch)))
    if bad:
        raise InvoiceNumberError(
            _(
                "An invoice number may only have letters A-Z, digits and {punctuation}; "
                "this one also has {chars}."
            ).format(
                punctuation=" ".join(INVOICE_PUNCTUATION),
                chars=", ".join(_char_name(ch) for ch in bad[:5]),
            )
        )
    if not _ALNUM.fullmatch(value[0]):
        raise InvoiceNumberError(
            _("An invoice number starts with a letter or a digit, not “{char}”.").format(
                char=value[0]
            )
        )
    return value


@dataclass(slots=True)
class Customer:
    """A customer tenant of the partner."""

    id: str
    name: str
    tenant_id: str | None = None
    owner: str | None = None  # user id of the account manager
    created_at: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tenant_id": self.tenant_id,
            "owner": self.owner,
            "created_at": _ts(self.created_at),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Customer:
        return cls(
            id=doc["id"],
            name=doc["name"],
            tenant_id=doc.get("tenant_id"),
            owner=doc.get("owner"),
            created_at=_dt(doc.get("created_at")),
        )


def customer_key(name: str) -> str:
    """A stable key for a customer name: case- and space-insensitive."""
    return re.sub(r"\s+", " ", name.strip()).casefold()


@dataclass(slots=True)
class User:
    """A person the bot knows, with identities on one or more channels."""

    id: str
    display_name: str
    role: Role = Role.AGENT
    time_zone: str = "UTC"
    locale: str = "en"
    tenant_id: str | None = None  # for customer contacts: the customer's tenant
    identities: dict[str, str] = field(default_factory=dict)  # channel -> external id
    locale_explicit: bool = False  # chosen with `language`: the platform's locale no longer wins

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "role": self.role.value,
            "time_zone": self.time_zone,
            "locale": self.locale,
            "tenant_id": self.tenant_id,
            "identities": dict(self.identities),
            "locale_explicit": self.locale_explicit,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        return cls(
            id=doc["id"],
            display_name=doc["display_name"],
            role=Role(doc.get("role", "agent")),
            time_zone=doc.get("time_zone", "UTC"),
            locale=doc.get("locale", "en"),
            tenant_id=doc.get("tenant_id"),
            identities=dict(doc.get("identities", {})),
            locale_explicit=bool(doc.get("locale_explicit", False)),
        )


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, as the authorization policy sees them, and through which channel."""

    user_id: str
    role: Role
    channel: str
    tenant_id: str | None = None  # a customer actor's tenant (from the channel mapping)
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit trail."""

    at: datetime
    actor: str
    channel: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return {
            "at": _ts(self.at),
            "actor": self.actor,
            "channel": self.channel,
            "action": self.action,
            "details": dict(self.details),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AuditEntry:
        at = _dt(doc["at"])
        assert at is not None
        return cls(at, doc["actor"], doc["channel"], doc["action"], dict(doc.get("details", {})))


def audit_wording(action: str, *, internal: bool) -> str | None:
    """The (untranslated) wording of an audit event for a viewer, or None: not for them.

    The desk (``internal``) sees every event, an unknown kind by its stored name; a
    customer sees only the kinds :data:`AUDIT_KINDS` shows to customers, never an unknown one.
    """
    kind = AUDIT_KINDS.get(action)
    if internal:
        return kind.label if kind else action
    return kind.customer if kind else None


def visible_audit(audit: list[AuditEntry], *, internal: bool) -> list[AuditEntry]:
    """The entries of a trail the viewer may see, each with only the details they may read."""
    if internal:
        return list(audit)
    out = []
    for entry in audit:
        kind = AUDIT_KINDS.get(entry.action)
        if kind is None or kind.customer is None:
            continue
        details = {k: v for k, v in entry.details.items() if k in kind.customer_details}
        out.append(AuditEntry(entry.at, entry.actor, entry.channel, entry.action, details))
    return out


@dataclass(frozen=True, slots=True)
class Note:
    """An internal note: never shown to customer users."""

    at: datetime
    author: str
    text: str
    to_microsoft: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {
            "at": _ts(self.at),
            "author": self.author,
            "text": self.text,
            "to_microsoft": self.to_microsoft,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Note:
        at = _dt(doc["at"])
        assert at is not None
        return cls(at, doc["author"], doc["text"], bool(doc.get("to_microsoft", False)))


ATTACHMENT_CHANNELS = frozenset({"slack", "teams", "web", "local"})


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file on a case: kept in the store (``stored``: ``id`` is its SHA-256) or a link.

    A Slack or Teams file stays where it was shared: ``link`` is its permalink or
    content URL and ``id`` names it there (``slack:<file id>``, ``teams:<url hash>``),
    so the same file delivered twice is attached once. ``internal``: shared by staff
    in an internal context, never shown to the customer; otherwise shared by or for
    the customer.
    """

    id: str
    name: str
    size: int | None
    content_type: str
    by: str
    at: datetime
    channel: str
    internal: bool
    link: str | None = None
    stored: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "content_type": self.content_type,
            "by": self.by,
            "at": _ts(self.at),
            "channel": self.channel,
            "internal": self.internal,
            "link": self.link,
            "stored": self.stored,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Attachment:
        at = _dt(doc["at"])
        assert at is not None
        size = doc.get("size")
        return cls(
            id=str(doc["id"]),
            name=str(doc["name"]),
            size=int(size) if size is not None else None,
            content_type=str(doc.get("content_type") or ""),
            by=str(doc["by"]),
            at=at,
            channel=str(doc.get("channel") or ""),
            internal=bool(doc.get("internal", True)),
            link=doc.get("link") or None,
            stored=bool(doc.get("stored", False)),
        )


def visible_attachments(attachments: list[Attachment], *, internal: bool) -> list[Attachment]:
    """The attachments a viewer may see: the desk all, a customer only non-internal ones."""
    return list(attachments) if internal else [a for a in attachments if not a.internal]


@dataclass(slots=True)
class Dispute:
    """What a dispute case carries beyond a question."""

    invoice: str
    amount: Money
    reason: str
    outcome: Outcome | None = None
    credited: Money | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "invoice": self.invoice,
            "amount": self.amount.to_doc(),
            "reason": self.reason,
            "outcome": self.outcome.value if self.outcome else None,
            "credited": self.credited.to_doc() if self.credited else None,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Dispute:
        return cls(
            invoice=doc["invoice"],
            amount=Money.from_doc(doc["amount"]),
            reason=doc["reason"],
            outcome=Outcome(doc["outcome"]) if doc.get("outcome") else None,
            credited=Money.from_doc(doc["credited"]) if doc.get("credited") else None,
        )


@dataclass(slots=True)
class ServiceRequest:
    """A Partner Center service request filed for the case (API or manual mode)."""

    id: str
    mode: str  # "api" | "manual"
    status: str = "open"  # none | open | closed | attention_needed
    filed_at: datetime | None = None
    title: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode,
            "status": self.status,
            "filed_at": _ts(self.filed_at),
            "title": self.title,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ServiceRequest:
        return cls(
            id=doc["id"],
            mode=doc.get("mode", "manual"),
            status=doc.get("status", "open"),
            filed_at=_dt(doc.get("filed_at")),
            title=doc.get("title", ""),
        )


@dataclass(slots=True)
class Case:
    """A billing question or dispute, with its state, notes and audit trail."""

    number: int
    kind: Kind
    customer_id: str
    category: Category
    description: str
    created_at: datetime
    created_by: str
    state: State = State.OPEN
    owner: str | None = None
    subscription_id: str | None = None
    invoice: str | None = None
    dispute: Dispute | None = None
    resolution: str | None = None
    cancel_reason: str | None = None
    informed_via: InformedVia | None = None
    service_request: ServiceRequest | None = None
    updated_at: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    informed_at: datetime | None = None
    notes: list[Note] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    version: int = 0  # bumped by storage on every write: optimistic concurrency

    @property
    def id(self) -> str:
        return format_case_id(self.number)

    @property
    def stage(self) -> int:
        """How many times the state or the owner changed: what a card's buttons were made for.

        A click carries the stage of the card it came from; a different stage
        means someone acted since (a second click, a stale card). Notes do not
        change the stage, so a note never makes someone else's card stale.
        """
        return sum(1 for a in self.audit if a.action in STAGE_ACTIONS)

    def last_activity(self, *, internal: bool) -> datetime:
        """When the case last changed as the viewer sees it (a snooze is no news to a customer)."""
        if internal:
            return self.updated_at or self.created_at
        seen = visible_audit(self.audit, internal=False)
        return seen[-1].at if seen else self.created_at

    @property
    def is_live(self) -> bool:
        return self.state not in ARCHIVED_STATES

    @property
    def informed_text(self) -> str:
        """What was recorded with the last ``informed`` (``informed BILL-7 call <text>``)."""
        for entry in reversed(self.audit):
            if entry.action == "customer_informed":
                return str(entry.details.get("text") or "")
        return ""

    @property
    def reported_to_microsoft(self) -> bool:
        """A service request was filed for the case (escalated, now or before a reopen)."""
        return self.service_request is not None or any(a.action == "escalated" for a in self.audit)

    def check_credit(self, outcome: Outcome, credited: Money) -> None:
        """The one rule for a dispute's credit; :class:`DomainError` names what is wrong.

        In the dispute's currency, more than zero, at most the disputed amount; a
        partial credit is strictly less than it (the whole amount is a full credit).
        """
        assert self.dispute is not None
        disputed = self.dispute.amount
        if credited.currency != disputed.currency:
            raise DomainError(
                _(
                    "The credit must be in {currency}, the currency of the dispute "
                    "(leave the currency out and it is {currency})."
                ).format(currency=disputed.currency)
            )
        if credited.amount <= 0:
            raise DomainError(_("The amount must be more than zero."))
        if credited.amount > disputed.amount:
            raise DomainError(
                _("The credit ({credit}) is more than the disputed {amount}.").format(
                    credit=str(credited), amount=str(disputed)
                )
            )
        if outcome == Outcome.PARTIAL_CREDIT and credited.amount == disputed.amount:
            raise DomainError(
                _(
                    "A partial credit is less than the disputed {amount}; {credit} is all of it. "
                    "Record the whole amount as a full credit: `resolve {case} credit {plain}` "
                    "(Credit granted in the form)."
                ).format(
                    amount=str(disputed),
                    credit=str(credited),
                    case=self.id,
                    plain=f"{disputed.amount} {disputed.currency}",
                )
            )

    # ---- creation -------------------------------------------------------
    @classmethod
    def new(
        cls,
        number: int,
        *,
        kind: Kind,
        customer_id: str,
        category: Category,
        description: str,
        actor: Actor,
        now: datetime,
        subscription_id: str | None = None,
        invoice: str | None = None,
        dispute: Dispute | None = None,
    ) -> Case:
        case = cls(
            number=number,
            kind=kind,
            customer_id=customer_id,
            category=category,
            description=description,
            created_at=now,
            created_by=actor.user_id,
            subscription_id=subscription_id,
            invoice=invoice,
            dispute=dispute,
            updated_at=now,
        )
        details: dict[str, Any] = {"kind": kind.value, "category": category.value}
        if dispute:
            details["amount"] = str(dispute.amount)
        case._audit(actor, now, "created", details)
        return case

    # ---- transitions ----------------------------------------------------
    def _audit(self, actor: Actor, now: datetime, action: str, details: dict[str, Any]) -> None:
        at = now.astimezone(UTC)  # the trail is in UTC whatever clock the caller used
        self.audit.append(AuditEntry(at, actor.user_id, actor.channel, action, details))
        self.updated_at = now

    def _move(
        self, target: State, actor: Actor, now: datetime, action: str, **details: Any
    ) -> None:
        if target not in TRANSITIONS[self.state]:
            raise DomainError(transition_error(self, target))
        details = {"from": self.state.value, "to": target.value, **details}
        self.state = target
        self._audit(actor, now, action, details)

    def _touch_first_response(self, actor: Actor, now: datetime) -> None:
        if self.first_response_at is None and actor.role in (Role.AGENT, Role.LEAD):
            self.first_response_at = now

    def start(self, actor: Actor, now: datetime) -> None:
        """``open``/``reopened`` → ``in_progress`` (taking, or starting work)."""
        self._move(State.IN_PROGRESS, actor, now, "started")
        self._touch_first_response(actor, now)

    def set_owner(self, owner: str, actor: Actor, now: datetime) -> None:
        if self.state == State.CANCELLED:
            raise DomainError(
                _("{case} was cancelled; open a new case instead.").format(case=self.id)
            )
        if self.state in ARCHIVED_STATES:
            raise DomainError(
                _("{case} is {state}; reopen it before changing its owner.").format(
                    case=self.id, state=_(STATE_LABELS[self.state])
                )
            )
        if self.owner == owner:
            raise DomainError(_("{case} already belongs to that person.").format(case=self.id))
        previous = self.owner
        self.owner = owner
        self._audit(actor, now, "assigned", {"from": previous, "to": owner})
        self._touch_first_response(actor, now)

    def add_note(
        self, text: str, actor: Actor, now: datetime, *, to_microsoft: bool = False
    ) -> None:
        if not text.strip():
            raise DomainError(_("A note needs some text."))
        self.notes.append(Note(now, actor.user_id, text, to_microsoft))
        self._audit(actor, now, "noted", {"to_microsoft": to_microsoft})
        self._touch_first_response(actor, now)

    def attachment(self, attachment_id: str) -> Attachment | None:
        for a in self.attachments:
            if a.id == attachment_id:
                return a
        return None

    def attach(self, attachment: Attachment, actor: Actor, now: datetime) -> bool:
        """Add a file to the case; False (nothing changes) when the case already has it.

        The same file delivered twice (the same bytes, the same Slack file, the same
        Teams content URL) has the same ``id``: it is attached once. A cancelled case
        takes no files; any other may (evidence comes also after the outcome).
        """
        if self.state == State.CANCELLED:
            raise DomainError(
                _("{case} was cancelled; open a new case instead.").format(case=self.id)
            )
        if self.attachment(attachment.id) is not None:
            return False
        self.attachments.append(attachment)
        action = "attached_internal" if attachment.internal else "attached"
        self._audit(actor, now, action, {"name": attachment.name, "id": attachment.id})
        self._touch_first_response(actor, now)
        return True

    def escalate(self, request: ServiceRequest, actor: Actor, now: datetime) -> None:
        if self.service_request is not None and self.state == State.ESCALATED:
            raise DomainError(
                _("{case} is already escalated as service request {sr}.").format(
                    case=self.id, sr=self.service_request.id
                )
            )
        self._move(
            State.ESCALATED, actor, now, "escalated", service_request=request.id, mode=request.mode
        )
        self.service_request = request

    def resolve(
        self,
        resolution: str,
        actor: Actor,
        now: datetime,
        *,
        outcome: Outcome | None = None,
        credited: Money | None = None,
    ) -> None:
        # The state comes first: "reopen it first" beats a complaint about the amount.
        if State.RESOLVED not in TRANSITIONS[self.state]:
            raise DomainError(transition_error(self, State.RESOLVED))
        if self.kind == Kind.DISPUTE and outcome is None:
            raise DomainError(
                _(
                    "{case} is a dispute: resolve it with Microsoft's outcome, e.g. "
                    "`resolve {case} credit 120.00 EUR`, `resolve {case} partial 50.00 EUR` "
                    "or `resolve {case} denied reason`."
                ).format(case=self.id)
            )
        if self.kind == Kind.QUESTION and (outcome is not None or credited is not None):
            raise DomainError(_("Only disputes have a credit outcome."))
        if outcome == Outcome.DENIED:
            credited = None  # a denied dispute credits nothing: not in the case, not in the trail
        if outcome in (Outcome.CREDIT_GRANTED, Outcome.PARTIAL_CREDIT):
            if credited is None:
                raise DomainError(_("Say how much was credited, e.g. 120.00 EUR."))
            self.check_credit(outcome, credited)
        details: dict[str, Any] = {"resolution": resolution}
        if outcome:
            details["outcome"] = outcome.value
        if credited:
            details["credited"] = str(credited)
        self._move(State.RESOLVED, actor, now, "resolved", **details)
        self.resolution = resolution
        self.resolved_at = now
        if self.dispute is not None:
            self.dispute.outcome = outcome
            self.dispute.credited = credited
        if self.service_request is not None and self.service_request.status != "closed":
            self.service_request.status = "closed"

    def mark_informed(self, via: InformedVia, text: str, actor: Actor, now: datetime) -> None:
        self._move(
            State.CUSTOMER_INFORMED, actor, now, "customer_informed", via=via.value, text=text
        )
        self.informed_via = via
        self.informed_at = now

    def reopen(self, reason: str, actor: Actor, now: datetime) -> None:
        if not reason.strip():
            raise DomainError(_("Say why you reopen {case}.").format(case=self.id))
        self._move(State.REOPENED, actor, now, "reopened", reason=reason)
        self.resolution = None
        self.resolved_at = None
        self.informed_at = None
        self.informed_via = None
        if self.dispute is not None:
            self.dispute.outcome = None
            self.dispute.credited = None

    def cancel(self, reason: str, actor: Actor, now: datetime) -> None:
        if not reason.strip():
            raise DomainError(
                _('Say why, e.g. "cancel {case} duplicate of BILL-3".').format(case=self.id)
            )
        self._move(State.CANCELLED, actor, now, "cancelled", reason=reason)
        self.cancel_reason = reason

    def withdraw(self, reason: str, actor: Actor, now: datetime) -> None:
        """The customer withdraws the case (or staff do it for them): cancelled, reason optional."""
        details = {"reason": reason} if reason.strip() else {}
        self._move(State.CANCELLED, actor, now, "withdrawn", **details)
        self.cancel_reason = reason.strip() or None

    def add_comment(self, text: str, actor: Actor, now: datetime) -> None:
        """The customer's own words on the case (visible to them and the desk)."""
        if not text.strip():
            raise DomainError(_("A comment needs some text."))
        if self.state in ARCHIVED_STATES:
            raise DomainError(
                _("{case} is {state}; it takes no more comments.").format(
                    case=self.id, state=_(STATE_LABELS[self.state])
                )
            )
        self._audit(actor, now, "commented", {"text": text})
        self._touch_first_response(actor, now)

    @property
    def comments(self) -> list[AuditEntry]:
        """The comments on the case (``add``), oldest first."""
        return [a for a in self.audit if a.action == "commented"]

    def close(self, actor: Actor, now: datetime) -> None:
        self._move(State.CLOSED, actor, now, "closed")

    def note_snooze(self, until: datetime, actor: Actor, now: datetime) -> None:
        """Record that the close-the-loop reminders were snoozed (not a state change)."""
        self._audit(actor, now, "snoozed", {"until": until.astimezone(UTC).isoformat()})

    def record_service_request_status(self, status: str, actor: Actor, now: datetime) -> None:
        if self.service_request is None:
            raise DomainError(_("{case} has no service request.").format(case=self.id))
        previous = self.service_request.status
        self.service_request.status = status
        self._audit(actor, now, "service_request_status", {"from": previous, "to": status})

    # ---- storage form ---------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind.value,
            "customer_id": self.customer_id,
            "category": self.category.value,
            "description": self.description,
            "created_at": _ts(self.created_at),
            "created_by": self.created_by,
            "state": self.state.value,
            "owner": self.owner,
            "subscription_id": self.subscription_id,
            "invoice": self.invoice,
            "dispute": self.dispute.to_doc() if self.dispute else None,
            "resolution": self.resolution,
            "cancel_reason": self.cancel_reason,
            "informed_via": self.informed_via.value if self.informed_via else None,
            "service_request": self.service_request.to_doc() if self.service_request else None,
            "updated_at": _ts(self.updated_at),
            "first_response_at": _ts(self.first_response_at),
            "resolved_at": _ts(self.resolved_at),
            "informed_at": _ts(self.informed_at),
            "notes": [n.to_doc() for n in self.notes],
            "audit": [a.to_doc() for a in self.audit],
            "attachments": [a.to_doc() for a in self.attachments],
            "version": self.version,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Case:
        created = _dt(doc["created_at"])
        assert created is not None
        return cls(
            number=int(doc["number"]),
            kind=Kind(doc["kind"]),
            customer_id=doc["customer_id"],
            category=Category(doc["category"]),
            description=doc["description"],
            created_at=created,
            created_by=doc["created_by"],
            state=State(doc["state"]),
            owner=doc.get("owner"),
            subscription_id=doc.get("subscription_id"),
            invoice=doc.get("invoice"),
            dispute=Dispute.from_doc(doc["dispute"]) if doc.get("dispute") else None,
            resolution=doc.get("resolution"),
            cancel_reason=doc.get("cancel_reason"),
            informed_via=InformedVia(doc["informed_via"]) if doc.get("informed_via") else None,
            service_request=(
                ServiceRequest.from_doc(doc["service_request"])
                if doc.get("service_request")
                else None
            ),
            updated_at=_dt(doc.get("updated_at")),
            first_response_at=_dt(doc.get("first_response_at")),
            resolved_at=_dt(doc.get("resolved_at")),
            informed_at=_dt(doc.get("informed_at")),
            notes=[Note.from_doc(n) for n in doc.get("notes", [])],
            audit=[AuditEntry.from_doc(a) for a in doc.get("audit", [])],
            attachments=[Attachment.from_doc(a) for a in doc.get("attachments") or []],
            version=int(doc.get("version", 0)),
        )


def transition_error(case: Case, target: State) -> str:
    """The readable reason why ``case`` cannot move to ``target``."""
    cid, state = case.id, case.state
    if state == target:
        return _("{case} is already {state}.").format(case=cid, state=_(STATE_LABELS[state]))
    if state == State.CANCELLED:
        return _("{case} was cancelled; open a new case instead.").format(case=cid)
    if target == State.CLOSED and state == State.RESOLVED:
        return _(
            "{case} is resolved but the customer has not been told yet: "
            "record it first with `informed {case} email` (or call, chat, ticket, meeting)."
        ).format(case=cid)
    if target == State.CLOSED:
        return _(
            "{case} is {state}; only a case whose customer was informed can be closed."
        ).format(case=cid, state=_(STATE_LABELS[state]))
    if target == State.CUSTOMER_INFORMED:
        return _(
            "{case} is {state}; resolve it before recording that the customer was told."
        ).format(case=cid, state=_(STATE_LABELS[state]))
    if target == State.REOPENED:
        return _(
            "{case} is {state}; only resolved, informed or closed cases can be reopened."
        ).format(case=cid, state=_(STATE_LABELS[state]))
    if state in (State.RESOLVED, State.CUSTOMER_INFORMED, State.CLOSED):
        return _("{case} is already {state}; reopen it first.").format(
            case=cid, state=_(STATE_LABELS[state])
        )
    if target == State.CANCELLED:
        return _(
            "{case} is {state}; only open, in-progress or escalated cases can be cancelled."
        ).format(case=cid, state=_(STATE_LABELS[state]))
    if target == State.ESCALATED and state == State.ESCALATED:
        return _("{case} is already escalated.").format(case=cid)
    return _("{case} is {state} and cannot become {target}.").format(
        case=cid, state=_(STATE_LABELS[state]), target=_(STATE_LABELS[target])
    )
