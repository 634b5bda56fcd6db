"""What the dashboard shows, computed from cases: pure functions, no HTTP, no templates.

Every list starts from :func:`visible_cases`: a customer sees only the cases
of their own tenant, and the rows built for them carry no internal notes, no
service-request details and no other customer's name.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.domain import (
    LIVE_STATES,
    STATE_LABELS,
    Actor,
    Case,
    Category,
    Customer,
    Kind,
    Role,
    State,
    parse_case_id,
    visible_audit,
)
from bot.i18n import N_, _, ngettext, plural_count
from bot.policy import can_see_internal
from conversations.directory import tenant_key
from conversations.forms import CATEGORY_LABELS

# Live states in the order a case moves through them (chart stacks, count tables).
STATE_ORDER: tuple[State, ...] = (
    State.OPEN,
    State.REOPENED,
    State.IN_PROGRESS,
    State.ESCALATED,
    State.RESOLVED,
    State.CUSTOMER_INFORMED,
)
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    (N_("< 1 day"), timedelta(days=1)),
    (N_("1–3 days"), timedelta(days=3)),
    (N_("3–7 days"), timedelta(days=7)),
    (N_("1–2 weeks"), timedelta(days=14)),
    (N_("2–4 weeks"), timedelta(days=28)),
    (N_("4+ weeks"), None),
)
UNASSIGNED = "none"


def is_staff(actor: Actor) -> bool:
    return actor.role in (Role.AGENT, Role.LEAD)


def visible_cases(
    cases: Iterable[Case], customers: Mapping[str, Customer], actor: Actor
) -> list[Case]:
    """The cases ``actor`` may see: all for staff, their tenant's for a customer, none else."""
    if is_staff(actor):
        return list(cases)
    if actor.role != Role.CUSTOMER or not actor.tenant_id:
        return []
    out = []
    for case in cases:
        customer = customers.get(case.customer_id)
        if customer is not None and tenant_key(customer) == actor.tenant_id:
            out.append(case)
    return out


def visible_customers(customers: Iterable[Customer], actor: Actor) -> list[Customer]:
    """The customers ``actor`` may see, by name: all for staff, a customer's own tenant's."""
    if is_staff(actor):
        seen = list(customers)
    elif actor.role == Role.CUSTOMER and actor.tenant_id:
        seen = [c for c in customers if tenant_key(c) == actor.tenant_id]
    else:
        seen = []
    return sorted(seen, key=lambda c: c.name.casefold())


# How the case list may be sorted (``sort=`` in the query): the default, then by age.
SORT_ACTIVITY, SORT_OLDEST, SORT_NEWEST = "", "oldest", "newest"
SORT_LABELS = {
    SORT_ACTIVITY: N_("last activity, newest first"),
    SORT_OLDEST: N_("age, oldest first"),
    SORT_NEWEST: N_("age, newest first"),
}


@dataclass(frozen=True, slots=True)
class Filters:
    """The dashboard's filters, as given in the query string ('' = any), and the list's sort."""

    state: str = ""
    owner: str = ""
    customer: str = ""
    kind: str = ""
    q: str = ""
    sort: str = SORT_ACTIVITY

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        def get(name: str, limit: int = 100) -> str:
            return str(query.get(name, "")).strip()[:limit]

        state = get("state")
        kind = get("kind")
        sort = get("sort")
        return cls(
            state=state if state in {s.value for s in State} else "",
            owner=get("owner"),
            customer=get("customer"),
            kind=kind if kind in {k.value for k in Kind} else "",
            q=get("q", 200),
            sort=sort if sort in SORT_LABELS else SORT_ACTIVITY,
        )

    def query(self, **change: str) -> dict[str, str]:
        """The non-empty filters and sort as query parameters, with ``change`` applied."""
        values = {
            "state": self.state,
            "owner": self.owner,
            "customer": self.customer,
            "kind": self.kind,
            "q": self.q,
            "sort": self.sort,
        }
        values.update(change)
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        """Whether any filter is set (a sort filters nothing)."""
        return any((self.state, self.owner, self.customer, self.kind, self.q))

    @property
    def sort_label(self) -> str:
        return _(SORT_LABELS[self.sort])

    @property
    def age_sort(self) -> str:
        """``aria-sort`` of the age column: oldest first is the largest age first."""
        return {SORT_OLDEST: "descending", SORT_NEWEST: "ascending"}.get(self.sort, "none")

    @property
    def next_age_sort(self) -> str:
        """Where a click on the age column's heading goes: oldest first, then newest first."""
        return SORT_NEWEST if self.sort == SORT_OLDEST else SORT_OLDEST

    def without_state(self) -> Filters:
        return Filters("", self.owner, self.customer, self.kind, self.q, self.sort)


def matches(case: Case, f: Filters, customers: Mapping[str, Customer]) -> bool:
    if f.state and case.state.value != f.state:
        return False
    if f.owner:
        if f.owner == UNASSIGNED:
            if case.owner is not None:
                return False
        elif case.owner != f.owner:
            return False
    if f.customer and case.customer_id != f.customer:
        return False
    if f.kind and case.kind.value != f.kind:
        return False
    if f.q:
        return search_hit(case, f.q, customers)
    return True


def search_hit(case: Case, q: str, customers: Mapping[str, Customer]) -> bool:
    """Search by case id (``BILL-7``, ``bill7``, ``7``), customer name or invoice number."""
    text = q.strip().casefold()
    if not text:
        return True
    number = parse_case_id(text) or (int(text) if text.isdigit() and len(text) <= 9 else None)
    if number is not None and number == case.number:
        return True
    customer = customers.get(case.customer_id)
    name = (customer.name if customer else case.customer_id).casefold()
    if text in name:
        return True
    invoices = [case.invoice or "", case.dispute.invoice if case.dispute else ""]
    return any(text in inv.casefold() for inv in invoices if inv)


def apply(cases: Iterable[Case], f: Filters, customers: Mapping[str, Customer]) -> list[Case]:
    """Matching cases, sorted as ``f.sort`` says (default: newest activity first)."""
    out = [c for c in cases if matches(c, f, customers)]
    if f.sort == SORT_OLDEST:
        out.sort(key=lambda c: (c.created_at, c.number))
    elif f.sort == SORT_NEWEST:
        out.sort(key=lambda c: (c.created_at, c.number), reverse=True)
    else:
        out.sort(key=lambda c: (c.updated_at or c.created_at, c.number), reverse=True)
    return out


@dataclass(frozen=True, slots=True)
class Count:
    key: str
    label: str
    n: int


def count_by(
    cases: Iterable[Case], key: Callable[[Case], str], label: Callable[[str], str]
) -> list[Count]:
    """How many cases per ``key``, most first, then by label."""
    counts = Counter(key(c) for c in cases)
    return sorted(
        (Count(k, label(k), n) for k, n in counts.items()), key=lambda c: (-c.n, c.label.casefold())
    )


def state_counts(cases: Iterable[Case]) -> list[Count]:
    counts = Counter(c.state for c in cases)
    return [Count(s.value, _(STATE_LABELS[s]), counts[s]) for s in STATE_ORDER if counts[s]]


# ---------------------------------------------------------------- rows
@dataclass(frozen=True, slots=True)
class CaseRow:
    """One line of the live-case list, as the viewer may see it."""

    case_id: str
    number: int
    kind: str
    customer: str
    state: str
    state_label: str
    owner: str
    category: str
    invoice: str
    amount: str
    created: datetime
    updated: datetime
    age_days: float
    description: str


def case_row(
    case: Case,
    customers: Mapping[str, Customer],
    names: Mapping[str, str],
    now: datetime,
    *,
    internal: bool,
) -> CaseRow:
    customer = customers.get(case.customer_id)
    return CaseRow(
        case_id=case.id,
        number=case.number,
        kind=case.kind.value,
        customer=customer.name if customer else case.customer_id,
        state=case.state.value,
        state_label=_(STATE_LABELS[case.state]),
        owner=names.get(case.owner, case.owner) if case.owner else "",
        category=_(CATEGORY_LABELS[case.category]),
        invoice=case.invoice or (case.dispute.invoice if case.dispute else ""),
        amount=str(case.dispute.amount) if case.dispute else "",
        created=case.created_at,
        updated=case.last_activity(internal=internal),
        age_days=round((now - case.created_at).total_seconds() / 86400, 1),
        description=case.description,
    )


@dataclass(frozen=True, slots=True)
class AwaitingRow:
    """A resolved case whose customer has not been told yet."""

    case_id: str
    number: int
    stage: int  # the case's stage, for the "informed" form's context
    customer: str
    owner: str
    resolution: str
    resolved_at: datetime | None
    hours: float
    reminders: int


def awaiting(
    cases: Iterable[Case],
    customers: Mapping[str, Customer],
    names: Mapping[str, str],
    reminders: Callable[[int], int],
    now: datetime,
) -> list[AwaitingRow]:
    """Resolved, customer not told: the longest waiting first."""
    rows = []
    for case in cases:
        if case.state != State.RESOLVED:
            continue
        customer = customers.get(case.customer_id)
        since = case.resolved_at
        hours = round((now - since).total_seconds() / 3600, 1) if since else 0.0
        rows.append(
            AwaitingRow(
                case_id=case.id,
                number=case.number,
                stage=case.stage,
                customer=customer.name if customer else case.customer_id,
                owner=names.get(case.owner, case.owner) if case.owner else "",
                resolution=case.resolution or "",
                resolved_at=since,
                hours=max(0.0, hours),
                reminders=reminders(case.number),
            )
        )
    rows.sort(key=lambda r: (-r.hours, r.number))
    return rows


@dataclass(frozen=True, slots=True)
class RequestRow:
    """An open Microsoft service request (staff only)."""

    case_id: str
    customer: str
    owner: str
    request_id: str
    mode: str
    status: str
    title: str
    filed_at: datetime | None
    age_days: float


def open_requests(
    cases: Iterable[Case],
    customers: Mapping[str, Customer],
    names: Mapping[str, str],
    now: datetime,
) -> list[RequestRow]:
    rows = []
    for case in cases:
        sr = case.service_request
        if sr is None or sr.status == "closed" or case.state not in LIVE_STATES:
            continue
        customer = customers.get(case.customer_id)
        filed = sr.filed_at
        rows.append(
            RequestRow(
                case_id=case.id,
                customer=customer.name if customer else case.customer_id,
                owner=names.get(case.owner, case.owner) if case.owner else "",
                request_id=sr.id,
                mode=sr.mode,
                status=sr.status,
                title=sr.title,
                filed_at=filed,
                age_days=round((now - filed).total_seconds() / 86400, 1) if filed else 0.0,
            )
        )
    rows.sort(key=lambda r: (r.status != "attention_needed", -r.age_days))
    return rows


# ---------------------------------------------------------------- KPIs
@dataclass(frozen=True, slots=True)
class Period:
    """A KPI period: whole days in UTC, ``end`` inclusive."""

    start: date
    end: date

    @classmethod
    def from_query(cls, query: Mapping[str, str], today: date, default_days: int = 30) -> Period:
        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(str(query.get(name, "")).strip())
            except ValueError:
                return None

        end = day("to") or today
        start = day("from") or end - timedelta(days=default_days - 1)
        if start > end:
            start, end = end, start
        if (end - start).days > 366 * 5:
            start = end - timedelta(days=366 * 5)
        return cls(start, end)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    def contains(self, when: datetime) -> bool:
        return self.since <= when < self.until


@dataclass(frozen=True, slots=True)
class Median:
    label: str
    seconds: float | None
    n: int

    @property
    def text(self) -> str:
        if self.seconds is None:
            return "—"
        return duration_text(self.seconds)


@dataclass(slots=True)
class Kpis:
    period: Period
    created: int
    medians: list[Median]
    per_category: list[Count] = field(default_factory=list)


def duration_text(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 90:
        return _("{n} min").format(n=round(minutes))
    hours = minutes / 60
    if hours < 48:
        return _("{n} h").format(n=f"{hours:.1f}")
    days = f"{hours / 24:.1f}"
    return ngettext("{n} day", "{n} days", plural_count(days)).format(n=days)


def _median(values: list[float], label: str) -> Median:
    return Median(label, statistics.median(values) if values else None, len(values))


def kpis(cases: Iterable[Case], period: Period) -> Kpis:
    """Medians over the cases created in ``period``; cases per category.

    Time to first response: created → first staff action. To resolution:
    created → resolved. To informed: resolved → customer informed.
    """
    chosen = [c for c in cases if period.contains(c.created_at)]
    first = [
        (c.first_response_at - c.created_at).total_seconds() for c in chosen if c.first_response_at
    ]
    resolved = [(c.resolved_at - c.created_at).total_seconds() for c in chosen if c.resolved_at]
    informed = [
        (c.informed_at - c.resolved_at).total_seconds()
        for c in chosen
        if c.informed_at and c.resolved_at
    ]
    per_category = Counter(c.category for c in chosen)
    return Kpis(
        period=period,
        created=len(chosen),
        medians=[
            _median(first, _("Time to first response")),
            _median(resolved, _("Time to resolution")),
            _median(informed, _("Resolution → customer informed")),
        ],
        per_category=[
            Count(cat.value, _(CATEGORY_LABELS[cat]), per_category[cat])
            for cat in Category
            if per_category[cat]
        ],
    )


# ---------------------------------------------------------------- chart data
@dataclass(frozen=True, slots=True)
class AgeChart:
    """Live cases per age bucket (rows) and state (columns)."""

    buckets: tuple[str, ...]
    states: tuple[State, ...]
    counts: tuple[tuple[int, ...], ...]  # [bucket][state]

    @property
    def total(self) -> int:
        return sum(sum(row) for row in self.counts)


def age_chart(cases: Iterable[Case], now: datetime) -> AgeChart:
    live = [c for c in cases if c.state in LIVE_STATES]
    grid = [[0] * len(STATE_ORDER) for _b in AGE_BUCKETS]
    for case in live:
        age = now - case.created_at
        row = len(AGE_BUCKETS) - 1
        for i, (_label, upper) in enumerate(AGE_BUCKETS):
            if upper is not None and age < upper:
                row = i
                break
        grid[row][STATE_ORDER.index(case.state)] += 1
    return AgeChart(
        buckets=tuple(_(label) for label, _u in AGE_BUCKETS),
        states=STATE_ORDER,
        counts=tuple(tuple(r) for r in grid),
    )


# ---------------------------------------------------------------- the case page
@dataclass(frozen=True, slots=True)
class AuditLine:
    at: datetime
    who: str
    action: str
    channel: str
    details: str


_SKIP_DETAILS = ("kind",)


_DETAIL_LABELS = {
    "category": N_("Category"),
    "amount": N_("Disputed amount"),
    "resolution": N_("Resolution"),
    "reason": N_("Reason"),
    "via": N_("Customer told"),
    "outcome": N_("Outcome"),
    "credited": N_("Credited amount"),
    "service_request": N_("Microsoft service request"),
    "mode": N_("Mode"),
    "text": N_("Message"),
    "reminders_sent": N_("Reminders sent"),
    "until": N_("Snoozed until"),
}


def _detail_value(action: str, key: str, value: Any) -> str:
    """A stored detail value (an enum's value, a code) as people read it."""
    from conversations.cards import sr_mode_label, sr_status_label, state_label, via_label
    from conversations.forms import OUTCOME_LABELS

    text = str(value)
    if key in ("from", "to") and action == "service_request_status":
        return sr_status_label(text)
    if key in ("from", "to") and text in {s.value for s in State}:
        return state_label(State(text))
    labels: dict[str, Mapping[Any, str]] = {"category": CATEGORY_LABELS, "outcome": OUTCOME_LABELS}
    for enum_value, label in labels.get(key, {}).items():
        if text == getattr(enum_value, "value", enum_value):
            return _(label)
    if key == "via":
        return via_label(text)
    if key == "mode":
        return sr_mode_label(text)
    return text


def _details_text(action: str, details: Mapping[str, Any]) -> str:
    """An audit entry's details in the page's language: "open → in progress, Reason: …"."""
    parts = []
    if "from" in details or "to" in details:
        parts.append(
            "{} → {}".format(
                *(_detail_value(action, k, details.get(k) or "—") for k in ("from", "to"))
            )
        )
    for key, value in details.items():
        if (
            key in ("from", "to")
            or key in _SKIP_DETAILS
            or value is None
            or value is False
            or value == ""
        ):
            continue
        if key == "to_microsoft":
            parts.append(_("sent to Microsoft"))
            continue
        label = _(_DETAIL_LABELS[key]) if key in _DETAIL_LABELS else key.replace("_", " ")
        parts.append(
            _("{label}: {value}").format(label=label, value=_detail_value(action, key, value))
        )
    return ", ".join(parts)


def audit_lines(case: Case, viewer: Actor, names: Mapping[str, str]) -> list[AuditLine]:
    """The full trail as the viewer may see it (:data:`bot.domain.AUDIT_KINDS` decides)."""
    from conversations.cards import audit_label, channel_label

    internal = can_see_internal(viewer)
    out = []
    for entry in visible_audit(case.audit, internal=internal):
        details: dict[str, Any] = dict(entry.details)
        if entry.action == "assigned":
            details = {k: names.get(v, v) if v else "—" for k, v in details.items()}
        text = _details_text(entry.action, details)
        out.append(
            AuditLine(
                at=entry.at,
                who=names.get(entry.actor, entry.actor),
                action=audit_label(entry, internal=internal),
                channel=channel_label(entry.channel),
                details=text,
            )
        )
    return out
