"""Unit tests for the pure case domain: state machine, disputes, audit trail, storage form."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from bot.domain import (
    ARCHIVED_STATES,
    LIVE_STATES,
    STATE_LABELS,
    TRANSITIONS,
    Actor,
    AuditEntry,
    Case,
    Category,
    Customer,
    Dispute,
    DomainError,
    InformedVia,
    Kind,
    Outcome,
    Role,
    ServiceRequest,
    State,
    User,
    customer_key,
    format_case_id,
    parse_case_id,
    transition_error,
)
from bot.money import Money

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
AGENT = Actor(user_id="u-ana", role=Role.AGENT, channel="slack", display_name="Ana")
LEAD = Actor(user_id="u-lee", role=Role.LEAD, channel="teams", display_name="Lee")
CUSTOMER = Actor(user_id="u-cus", role=Role.CUSTOMER, channel="slack", tenant_id="t-contoso")


def eur(amount: str) -> Money:
    return Money(Decimal(amount), "EUR")


class Clock:
    """A clock that moves one minute on every call: each audit entry gets its own time."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def new_case(kind: Kind = Kind.QUESTION, number: int = 7, actor: Actor = AGENT) -> Case:
    dispute = None
    invoice = None
    if kind == Kind.DISPUTE:
        invoice = "G012345678"
        dispute = Dispute(invoice=invoice, amount=eur("120.00"), reason="double charge")
    return Case.new(
        number,
        kind=kind,
        customer_id="c-contoso",
        category=Category.CHARGES if kind == Kind.DISPUTE else Category.INVOICE,
        description="Why is the invoice higher this month?",
        actor=actor,
        now=T0,
        subscription_id="sub-1" if kind == Kind.QUESTION else None,
        invoice=invoice,
        dispute=dispute,
    )


def move(case: Case, target: State, actor: Actor, now: datetime) -> None:
    """Ask ``case`` to move to ``target`` through the real method for that move."""
    if target == State.IN_PROGRESS:
        case.start(actor, now)
    elif target == State.ESCALATED:
        case.escalate(ServiceRequest(id="SR-2611", mode="manual", filed_at=now), actor, now)
    elif target == State.RESOLVED:
        if case.kind == Kind.DISPUTE:
            case.resolve(
                "Microsoft credited part",
                actor,
                now,
                outcome=Outcome.PARTIAL_CREDIT,
                credited=eur("50.00"),
            )
        else:
            case.resolve("explained the proration", actor, now)
    elif target == State.CUSTOMER_INFORMED:
        case.mark_informed(InformedVia.EMAIL, "sent the explanation", actor, now)
    elif target == State.REOPENED:
        case.reopen("customer disagrees", actor, now)
    elif target == State.CANCELLED:
        case.cancel("duplicate of BILL-3", actor, now)
    elif target == State.CLOSED:
        case.close(actor, now)
    else:  # pragma: no cover - no method moves a case to OPEN
        raise AssertionError(f"no method moves a case to {target}")


def path_to(state: State) -> list[State]:
    """A shortest list of moves from OPEN to ``state``, found by walking TRANSITIONS."""
    paths: dict[State, list[State]] = {State.OPEN: []}
    queue = deque([State.OPEN])
    while queue:
        current = queue.popleft()
        for nxt in sorted(TRANSITIONS[current]):
            if nxt not in paths:
                paths[nxt] = [*paths[current], nxt]
                queue.append(nxt)
    return paths[state]


def case_in(state: State, kind: Kind = Kind.QUESTION) -> Case:
    case = new_case(kind)
    clock = Clock()
    for step in path_to(state):
        move(case, step, AGENT, clock())
    assert case.state == state
    return case


MOVABLE_TARGETS = [t for t in State if t != State.OPEN]
ALLOWED = [(s, t) for s in State for t in sorted(TRANSITIONS[s])]
FORBIDDEN = [(s, t) for s in State for t in MOVABLE_TARGETS if t not in TRANSITIONS[s]]


# ---- the state machine itself ------------------------------------------------


def test_transitions_match_product_md() -> None:
    expected = {
        ("open", "in_progress"),
        ("in_progress", "escalated"),
        ("escalated", "resolved"),
        ("resolved", "customer_informed"),
        ("customer_informed", "closed"),
        ("in_progress", "resolved"),
        ("resolved", "reopened"),
        ("customer_informed", "reopened"),
        ("closed", "reopened"),
        ("reopened", "in_progress"),
        ("open", "cancelled"),
        ("in_progress", "cancelled"),
        ("escalated", "cancelled"),
    }
    actual = {(s.value, t.value) for s, targets in TRANSITIONS.items() for t in targets}
    assert actual == expected
    assert set(TRANSITIONS) == set(State)


def test_every_state_is_reachable_and_nothing_moves_back_to_open() -> None:
    for state in State:
        assert path_to(state) is not None
    assert all(State.OPEN not in targets for targets in TRANSITIONS.values())


def test_live_and_archived_states_partition_all_states() -> None:
    assert LIVE_STATES | ARCHIVED_STATES == set(State)
    assert not LIVE_STATES & ARCHIVED_STATES
    for state in State:
        assert case_in(state).is_live == (state in LIVE_STATES)


def test_every_state_has_a_label() -> None:
    assert set(STATE_LABELS) == set(State)


def test_grid_is_complete() -> None:
    assert len(ALLOWED) + len(FORBIDDEN) == len(State) * len(MOVABLE_TARGETS)
    assert len(ALLOWED) == 13


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize(("state", "target"), ALLOWED, ids=lambda v: str(v))
def test_allowed_transition(state: State, target: State, kind: Kind) -> None:
    case = case_in(state, kind)
    before = len(case.audit)
    version = case.version
    at = T0 + timedelta(days=3)
    move(case, target, LEAD, at)
    assert case.state == target
    assert len(case.audit) == before + 1
    entry = case.audit[-1]
    assert entry.actor == LEAD.user_id
    assert entry.channel == LEAD.channel
    assert entry.at == at
    assert entry.details["from"] == state.value
    assert entry.details["to"] == target.value
    assert case.updated_at == at
    assert case.version == version  # only storage bumps the version


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize(("state", "target"), FORBIDDEN, ids=lambda v: str(v))
def test_forbidden_transition(state: State, target: State, kind: Kind) -> None:
    case = case_in(state, kind)
    snapshot = copy.deepcopy(case.to_doc())
    audit_len, version = len(case.audit), case.version
    with pytest.raises(DomainError) as err:
        move(case, target, LEAD, T0 + timedelta(days=3))
    text = str(err.value)
    assert case.id in text
    assert text.strip() and "{" not in text  # formatted, readable
    assert case.state == state
    assert len(case.audit) == audit_len
    assert case.version == version
    assert case.to_doc() == snapshot


@pytest.mark.parametrize(("state", "target"), FORBIDDEN, ids=lambda v: str(v))
def test_transition_error_mentions_the_case(state: State, target: State) -> None:
    case = case_in(state)
    assert case.id in transition_error(case, target)


def test_close_a_resolved_case_asks_to_record_informed_first() -> None:
    case = case_in(State.RESOLVED)
    with pytest.raises(DomainError) as err:
        case.close(AGENT, T0 + timedelta(days=1))
    text = str(err.value)
    assert "BILL-7" in text
    assert "informed BILL-7 email" in text
    assert "not been told" in text


@pytest.mark.parametrize("target", [State.IN_PROGRESS, State.ESCALATED, State.CANCELLED])
@pytest.mark.parametrize("state", [State.RESOLVED, State.CUSTOMER_INFORMED, State.CLOSED])
def test_finished_cases_must_be_reopened_first(state: State, target: State) -> None:
    case = case_in(state)
    with pytest.raises(DomainError) as err:
        move(case, target, AGENT, T0 + timedelta(days=1))
    text = str(err.value)
    assert text.startswith("BILL-7 is already ")
    assert "reopen it first" in text
    if state == State.RESOLVED:
        assert "already resolved" in text


def test_close_before_resolution_says_only_informed_cases_close() -> None:
    case = case_in(State.IN_PROGRESS)
    with pytest.raises(DomainError, match="only a case whose customer was informed"):
        case.close(AGENT, T0 + timedelta(days=1))


def test_cancelled_case_says_open_a_new_one() -> None:
    case = case_in(State.CANCELLED)
    for target in MOVABLE_TARGETS:
        with pytest.raises(DomainError) as err:
            move(case, target, AGENT, T0 + timedelta(days=1))
        assert "BILL-7" in str(err.value)
    with pytest.raises(DomainError, match="open a new case instead"):
        case.reopen("try again", AGENT, T0 + timedelta(days=1))


def test_informed_before_resolution_is_refused() -> None:
    case = case_in(State.IN_PROGRESS)
    with pytest.raises(DomainError, match="resolve it before recording"):
        case.mark_informed(InformedVia.CALL, "", AGENT, T0 + timedelta(days=1))


def test_reopen_only_finished_cases() -> None:
    case = case_in(State.OPEN)
    with pytest.raises(DomainError, match="only resolved, informed or closed cases"):
        case.reopen("why not", AGENT, T0 + timedelta(days=1))


def test_second_escalation_names_the_service_request() -> None:
    case = case_in(State.ESCALATED)
    with pytest.raises(DomainError) as err:
        case.escalate(ServiceRequest(id="SR-9", mode="api"), AGENT, T0 + timedelta(days=1))
    assert "BILL-7" in str(err.value)
    assert "SR-2611" in str(err.value)
    assert case.service_request is not None and case.service_request.id == "SR-2611"


def test_same_state_says_already() -> None:
    case = case_in(State.IN_PROGRESS)
    with pytest.raises(DomainError, match=r"^BILL-7 is already in progress\.$"):
        case.start(AGENT, T0 + timedelta(days=1))


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_reopen_and_cancel_need_a_reason(reason: str) -> None:
    resolved = case_in(State.RESOLVED)
    snapshot = copy.deepcopy(resolved.to_doc())
    with pytest.raises(DomainError, match="Say why you reopen BILL-7"):
        resolved.reopen(reason, AGENT, T0 + timedelta(days=1))
    assert resolved.to_doc() == snapshot

    opened = case_in(State.OPEN)
    snapshot = copy.deepcopy(opened.to_doc())
    with pytest.raises(DomainError) as err:
        opened.cancel(reason, AGENT, T0 + timedelta(days=1))
    assert 'cancel BILL-7 duplicate of BILL-3"' in str(err.value)
    assert opened.to_doc() == snapshot


def test_cancel_records_reason() -> None:
    case = case_in(State.ESCALATED)
    case.cancel("duplicate of BILL-3", LEAD, T0 + timedelta(days=1))
    assert case.state == State.CANCELLED
    assert case.cancel_reason == "duplicate of BILL-3"
    assert case.audit[-1].details["reason"] == "duplicate of BILL-3"
    assert not case.is_live


def test_full_lifecycle_with_reopen_and_second_round() -> None:
    clock = Clock()
    case = new_case()
    case.start(AGENT, clock())
    case.escalate(ServiceRequest(id="SR-1", mode="api"), AGENT, clock())
    case.resolve("Microsoft fixed the invoice", AGENT, clock())
    assert case.service_request is not None and case.service_request.status == "closed"
    case.mark_informed(InformedVia.CALL, "called Joe", AGENT, clock())
    case.close(AGENT, clock())
    case.reopen("new invoice still wrong", LEAD, clock())
    assert case.resolution is None and case.resolved_at is None
    assert case.informed_at is None and case.informed_via is None
    case.start(AGENT, clock())
    case.escalate(ServiceRequest(id="SR-2", mode="manual"), AGENT, clock())
    assert case.service_request is not None and case.service_request.id == "SR-2"
    case.resolve("credit note issued", AGENT, clock())
    case.mark_informed(InformedVia.TICKET, "ticket 42", AGENT, clock())
    case.close(AGENT, clock())
    assert [e.action for e in case.audit] == [
        "created",
        "started",
        "escalated",
        "resolved",
        "customer_informed",
        "closed",
        "reopened",
        "started",
        "escalated",
        "resolved",
        "customer_informed",
        "closed",
    ]


# ---- owner and notes ----------------------------------------------------------


def test_set_owner_records_from_and_to() -> None:
    case = new_case()
    case.set_owner("u-ana", AGENT, T0 + timedelta(minutes=5))
    case.set_owner("u-bob", LEAD, T0 + timedelta(minutes=6))
    assert case.owner == "u-bob"
    assert case.audit[-2].action == "assigned"
    assert case.audit[-2].details == {"from": None, "to": "u-ana"}
    assert case.audit[-1].details == {"from": "u-ana", "to": "u-bob"}
    assert case.audit[-1].actor == "u-lee"
    assert case.first_response_at == T0 + timedelta(minutes=5)


def test_set_owner_to_the_same_person_is_refused() -> None:
    case = new_case()
    case.set_owner("u-ana", AGENT, T0)
    snapshot = copy.deepcopy(case.to_doc())
    with pytest.raises(DomainError, match="BILL-7 already belongs to that person"):
        case.set_owner("u-ana", AGENT, T0 + timedelta(minutes=1))
    assert case.to_doc() == snapshot


@pytest.mark.parametrize("state", sorted(ARCHIVED_STATES))
def test_set_owner_on_archived_case_is_refused(state: State) -> None:
    case = case_in(state)
    snapshot = copy.deepcopy(case.to_doc())
    with pytest.raises(DomainError) as err:
        case.set_owner("u-bob", LEAD, T0 + timedelta(days=1))
    assert "BILL-7" in str(err.value)
    expected = {
        State.CLOSED: "reopen it before changing its owner",
        State.CANCELLED: "was cancelled; open a new case instead",
    }[state]
    assert expected in str(err.value)
    assert case.to_doc() == snapshot


@pytest.mark.parametrize("state", sorted(LIVE_STATES))
def test_set_owner_on_live_case(state: State) -> None:
    case = case_in(state)
    before = len(case.audit)
    case.set_owner("u-bob", LEAD, T0 + timedelta(days=1))
    assert case.owner == "u-bob"
    assert case.state == state
    assert len(case.audit) == before + 1


def test_add_note() -> None:
    case = new_case()
    case.add_note("called Microsoft", AGENT, T0 + timedelta(minutes=3), to_microsoft=True)
    assert case.notes[-1].text == "called Microsoft"
    assert case.notes[-1].author == "u-ana"
    assert case.notes[-1].to_microsoft is True
    assert case.audit[-1].action == "noted"
    assert case.audit[-1].details == {"to_microsoft": True}
    assert case.first_response_at == T0 + timedelta(minutes=3)


@pytest.mark.parametrize("text", ["", "  ", "\t\n"])
def test_empty_note_is_refused(text: str) -> None:
    case = new_case()
    snapshot = copy.deepcopy(case.to_doc())
    with pytest.raises(DomainError, match="A note needs some text"):
        case.add_note(text, AGENT, T0)
    assert case.to_doc() == snapshot


def test_first_response_is_staff_only_and_set_once() -> None:
    case = new_case(actor=CUSTOMER)
    case.add_note("any news?", CUSTOMER, T0 + timedelta(minutes=1))
    assert case.first_response_at is None
    case.start(AGENT, T0 + timedelta(minutes=2))
    assert case.first_response_at == T0 + timedelta(minutes=2)
    case.add_note("looking", LEAD, T0 + timedelta(minutes=3))
    assert case.first_response_at == T0 + timedelta(minutes=2)


def test_record_service_request_status() -> None:
    case = case_in(State.IN_PROGRESS)
    with pytest.raises(DomainError, match="BILL-7 has no service request"):
        case.record_service_request_status("open", AGENT, T0)
    case.escalate(ServiceRequest(id="SR-5", mode="api"), AGENT, T0 + timedelta(days=1))
    case.record_service_request_status("attention_needed", AGENT, T0 + timedelta(days=2))
    assert case.service_request is not None
    assert case.service_request.status == "attention_needed"
    assert case.audit[-1].details == {"from": "open", "to": "attention_needed"}


# ---- dispute outcomes ------------------------------------------------------------


def dispute_in_progress() -> Case:
    return case_in(State.IN_PROGRESS, Kind.DISPUTE)


def refused(case: Case, match: str, call: Callable[[], None]) -> str:
    snapshot = copy.deepcopy(case.to_doc())
    with pytest.raises(DomainError, match=match) as err:
        call()
    assert case.to_doc() == snapshot
    return str(err.value)


@pytest.mark.parametrize(
    ("outcome", "amount"),
    [
        *((Outcome.CREDIT_GRANTED, a) for a in ("120.00", "120", "0.01", "50.00")),
        # A partial credit is strictly less than the disputed 120.00 EUR.
        *((Outcome.PARTIAL_CREDIT, a) for a in ("119.99", "0.01", "50.00")),
    ],
)
def test_credit_up_to_the_disputed_amount(outcome: Outcome, amount: str) -> None:
    case = dispute_in_progress()
    case.resolve(
        "Microsoft credited", AGENT, T0 + timedelta(days=1), outcome=outcome, credited=eur(amount)
    )
    assert case.state == State.RESOLVED
    assert case.dispute is not None
    assert case.dispute.outcome == outcome
    assert case.dispute.credited == eur(amount)
    assert case.dispute.credited is not None
    assert str(case.dispute.credited.amount) == amount  # exact Decimal, digits kept
    assert case.audit[-1].details["outcome"] == outcome.value
    assert case.audit[-1].details["credited"] == str(eur(amount))
    assert case.resolved_at == T0 + timedelta(days=1)


@pytest.mark.parametrize("amount", ["120.00", "120", "120.000"])
def test_a_partial_credit_of_the_whole_disputed_amount_is_refused(amount: str) -> None:
    case = dispute_in_progress()
    text = refused(
        case,
        "A partial credit is less than the disputed 120.00 EUR",
        lambda: case.resolve("x", AGENT, T0, outcome=Outcome.PARTIAL_CREDIT, credited=eur(amount)),
    )
    assert f"`resolve {case.id} credit 120.00 EUR`" in text


@pytest.mark.parametrize("outcome", [Outcome.CREDIT_GRANTED, Outcome.PARTIAL_CREDIT])
def test_credit_needs_an_amount(outcome: Outcome) -> None:
    case = dispute_in_progress()
    refused(
        case, "Say how much was credited", lambda: case.resolve("x", AGENT, T0, outcome=outcome)
    )


def test_credit_must_be_in_the_dispute_currency() -> None:
    case = dispute_in_progress()
    text = refused(
        case,
        "must be in EUR",
        lambda: case.resolve(
            "x", AGENT, T0, outcome=Outcome.CREDIT_GRANTED, credited=Money(Decimal("50"), "USD")
        ),
    )
    assert "currency of the dispute" in text


@pytest.mark.parametrize("amount", ["120.01", "121", "1000000"])
def test_credit_cannot_exceed_the_disputed_amount(amount: str) -> None:
    case = dispute_in_progress()
    text = refused(
        case,
        "more than the disputed",
        lambda: case.resolve("x", AGENT, T0, outcome=Outcome.PARTIAL_CREDIT, credited=eur(amount)),
    )
    assert "120.00 EUR" in text


def test_denied_stores_no_credit() -> None:
    case = dispute_in_progress()
    case.resolve("Microsoft says usage was real", AGENT, T0, outcome=Outcome.DENIED)
    assert case.dispute is not None
    assert case.dispute.outcome == Outcome.DENIED
    assert case.dispute.credited is None
    assert case.audit[-1].details["outcome"] == "denied"
    assert "credited" not in case.audit[-1].details
    assert case.to_doc()["dispute"]["credited"] is None


def test_denied_with_an_amount_still_stores_no_credit_anywhere() -> None:
    case = dispute_in_progress()
    case.resolve("denied", AGENT, T0, outcome=Outcome.DENIED, credited=eur("10.00"))
    assert case.dispute is not None and case.dispute.credited is None
    assert "credited" not in case.audit[-1].details  # the trail agrees with the case


def test_dispute_without_outcome_is_refused() -> None:
    case = dispute_in_progress()
    text = refused(case, "is a dispute", lambda: case.resolve("done", AGENT, T0))
    assert "BILL-7" in text
    assert "resolve BILL-7 credit 120.00 EUR" in text
    assert "denied" in text


@pytest.mark.parametrize("outcome", list(Outcome))
def test_question_cannot_take_an_outcome(outcome: Outcome) -> None:
    case = case_in(State.IN_PROGRESS)
    credited = None if outcome == Outcome.DENIED else eur("5.00")
    refused(
        case,
        "Only disputes have a credit outcome",
        lambda: case.resolve("x", AGENT, T0, outcome=outcome, credited=credited),
    )


def test_question_cannot_take_a_credit() -> None:
    case = case_in(State.IN_PROGRESS)
    refused(case, "Only disputes", lambda: case.resolve("x", AGENT, T0, credited=eur("5.00")))


def test_forbidden_state_is_reported_before_amount_problems() -> None:
    """A closed dispute says "reopen it first" even when the credit is also wrong."""
    case = case_in(State.CLOSED, Kind.DISPUTE)
    text = refused(
        case,
        "reopen it first",
        lambda: case.resolve("x", AGENT, T0, outcome=Outcome.CREDIT_GRANTED, credited=eur("999")),
    )
    assert "BILL-7" in text


def test_reopen_clears_the_dispute_outcome() -> None:
    case = case_in(State.RESOLVED, Kind.DISPUTE)
    assert case.dispute is not None and case.dispute.outcome == Outcome.PARTIAL_CREDIT
    case.reopen("Microsoft reversed the credit", LEAD, T0 + timedelta(days=2))
    assert case.dispute.outcome is None
    assert case.dispute.credited is None
    assert case.dispute.amount == eur("120.00")
    # the earlier entry still tells what was credited
    resolved = [e for e in case.audit if e.action == "resolved"][-1]
    assert resolved.details["credited"] == "50.00 EUR"


def test_new_dispute_audits_the_amount() -> None:
    case = new_case(Kind.DISPUTE)
    assert case.audit[0].action == "created"
    assert case.audit[0].details == {
        "kind": "dispute",
        "category": "charges",
        "amount": "120.00 EUR",
    }


# ---- audit trail -----------------------------------------------------------------

Step = Callable[[Case, datetime], None]

LIFECYCLE: list[tuple[str, Actor, Step, dict[str, Any]]] = [
    ("assigned", AGENT, lambda c, t: c.set_owner("u-ana", AGENT, t), {"from": None, "to": "u-ana"}),
    ("noted", AGENT, lambda c, t: c.add_note("asked MS", AGENT, t), {"to_microsoft": False}),
    ("started", AGENT, lambda c, t: c.start(AGENT, t), {"from": "open", "to": "in_progress"}),
    (
        "escalated",
        LEAD,
        lambda c, t: c.escalate(ServiceRequest(id="SR-1", mode="api"), LEAD, t),
        {"from": "in_progress", "to": "escalated", "service_request": "SR-1", "mode": "api"},
    ),
    (
        "service_request_status",
        LEAD,
        lambda c, t: c.record_service_request_status("attention_needed", LEAD, t),
        {"from": "open", "to": "attention_needed"},
    ),
    (
        "resolved",
        AGENT,
        lambda c, t: c.resolve(
            "credited", AGENT, t, outcome=Outcome.CREDIT_GRANTED, credited=eur("120.00")
        ),
        {
            "from": "escalated",
            "to": "resolved",
            "resolution": "credited",
            "outcome": "credit_granted",
            "credited": "120.00 EUR",
        },
    ),
    (
        "customer_informed",
        AGENT,
        lambda c, t: c.mark_informed(InformedVia.MEETING, "weekly call", AGENT, t),
        {"from": "resolved", "to": "customer_informed", "via": "meeting", "text": "weekly call"},
    ),
    ("closed", LEAD, lambda c, t: c.close(LEAD, t), {"from": "customer_informed", "to": "closed"}),
    (
        "reopened",
        LEAD,
        lambda c, t: c.reopen("charged again", LEAD, t),
        {"from": "closed", "to": "reopened", "reason": "charged again"},
    ),
    ("started", AGENT, lambda c, t: c.start(AGENT, t), {"from": "reopened", "to": "in_progress"}),
    (
        "cancelled",
        LEAD,
        lambda c, t: c.cancel("duplicate of BILL-3", LEAD, t),
        {"from": "in_progress", "to": "cancelled", "reason": "duplicate of BILL-3"},
    ),
]


def test_every_change_appends_exactly_one_entry() -> None:
    case = new_case(Kind.DISPUTE)
    clock = Clock()
    earlier: list[tuple[AuditEntry, dict[str, Any]]] = [
        (e, copy.deepcopy(e.to_doc())) for e in case.audit
    ]
    for action, actor, step, details in LIFECYCLE:
        before = len(case.audit)
        at = clock()
        step(case, at)
        assert len(case.audit) == before + 1, action
        entry = case.audit[-1]
        assert entry.action == action
        assert entry.actor == actor.user_id
        assert entry.channel == actor.channel
        assert entry.at == at
        assert entry.at.utcoffset() == timedelta(0)
        assert entry.details == details
        assert case.updated_at == at
        # earlier entries are the same objects with the same content
        assert case.audit[: len(earlier)] == [e for e, _ in earlier]
        for (old, doc), now_entry in zip(earlier, case.audit, strict=False):
            assert old is now_entry
            assert now_entry.to_doc() == doc
        earlier.append((entry, copy.deepcopy(entry.to_doc())))
    times = [e.at for e in case.audit]
    assert times == sorted(times)


def test_audit_time_is_utc_even_when_the_caller_is_not() -> None:
    cet = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 24, 10, 30, tzinfo=cet)
    case = new_case()
    case.start(AGENT, local)
    assert case.audit[-1].at == local
    assert case.audit[-1].at.utcoffset() == timedelta(0)
    assert case.audit[-1].to_doc()["at"] == "2026-11-24T09:30:00+00:00"


def test_audit_entries_are_frozen() -> None:
    case = new_case()
    entry = case.audit[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.action = "tampered"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.at = T0 + timedelta(days=1)  # type: ignore[misc]


def test_to_doc_gives_copies_not_live_views() -> None:
    case = new_case()
    doc = case.to_doc()
    doc["audit"][0]["details"]["kind"] = "tampered"
    doc["audit"].append({"bogus": True})
    assert case.audit[0].details["kind"] == "question"
    assert len(case.audit) == 1


def test_failed_change_appends_nothing() -> None:
    case = case_in(State.RESOLVED)
    n = len(case.audit)
    for call in (
        lambda: case.start(AGENT, T0),
        lambda: case.close(AGENT, T0),
        lambda: case.cancel("dup", AGENT, T0),
        lambda: case.add_note(" ", AGENT, T0),
        lambda: case.reopen("", AGENT, T0),
    ):
        with pytest.raises(DomainError):
            call()
    assert len(case.audit) == n


# ---- storage form ------------------------------------------------------------------


def full_case() -> Case:
    clock = Clock()
    case = Case.new(
        1042,
        kind=Kind.DISPUTE,
        customer_id="c-contoso",
        category=Category.REFUND,
        description="Charged twice for Microsoft 365 E3",
        actor=CUSTOMER,
        now=clock(),
        subscription_id="8f2a-sub",
        invoice="G000111222",
        dispute=Dispute(invoice="G000111222", amount=eur("1200.50"), reason="duplicate"),
    )
    case.set_owner("u-ana", LEAD, clock())
    case.start(AGENT, clock())
    case.add_note("double seat count", AGENT, clock())
    case.add_note("sent to MS: see attached", AGENT, clock(), to_microsoft=True)
    sr = ServiceRequest(id="SR-77", mode="api", filed_at=clock(), title="Duplicate charge")
    case.escalate(sr, AGENT, clock())
    case.resolve(
        "MS credited 0.10 short",
        AGENT,
        clock(),
        outcome=Outcome.PARTIAL_CREDIT,
        credited=eur("1200.40"),
    )
    case.mark_informed(InformedVia.EMAIL, "mailed Joe", AGENT, clock())
    case.version = 5
    return case


def walk(value: Any, path: str = "$") -> list[tuple[str, Any]]:
    """Every leaf of a document with its path."""
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            assert isinstance(k, str), path
            out += walk(v, f"{path}.{k}")
        return out
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in walk(v, f"{path}[{i}]")]
    return [(path, value)]


@pytest.mark.parametrize(
    "factory",
    [full_case, new_case, lambda: case_in(State.CANCELLED, Kind.DISPUTE)],
    ids=["full", "fresh", "cancelled"],
)
def test_roundtrip_equals_original(factory: Callable[[], Case]) -> None:
    case = factory()
    doc = case.to_doc()
    assert Case.from_doc(doc) == case
    # through JSON, as storage does
    assert Case.from_doc(json.loads(json.dumps(doc))) == case
    assert Case.from_doc(doc).to_doc() == doc


def test_full_case_roundtrip_keeps_everything() -> None:
    case = full_case()
    back = Case.from_doc(json.loads(json.dumps(case.to_doc())))
    assert back.id == "BILL-1042"
    assert back.state == State.CUSTOMER_INFORMED
    assert back.version == 5
    assert len(back.notes) == 2 and back.notes[1].to_microsoft is True
    assert back.service_request == case.service_request
    assert back.audit == case.audit
    assert back.dispute is not None and case.dispute is not None
    assert back.dispute.amount.amount.as_tuple() == Decimal("1200.50").as_tuple()
    assert back.dispute.credited is not None
    assert back.dispute.credited.amount.as_tuple() == Decimal("1200.40").as_tuple()
    assert isinstance(back.dispute.amount.amount, Decimal)
    assert back.dispute.amount.amount - back.dispute.credited.amount == Decimal("0.10")


def test_to_doc_has_no_floats_anywhere() -> None:
    doc = full_case().to_doc()
    leaves = walk(doc)
    assert leaves
    for path, leaf in leaves:
        assert not isinstance(leaf, float), path
        assert not isinstance(leaf, Decimal), path
        assert leaf is None or isinstance(leaf, str | int | bool), (path, type(leaf))
    assert doc["dispute"]["amount"] == {"amount": "1200.50", "currency": "EUR"}
    assert doc["dispute"]["credited"] == {"amount": "1200.40", "currency": "EUR"}
    json.dumps(doc)  # plain JSON


def test_to_doc_times_are_utc_iso() -> None:
    doc = full_case().to_doc()
    for path, leaf in walk(doc):
        if path.endswith((".at", "_at")) and leaf is not None:
            assert leaf.endswith("+00:00"), path
            assert datetime.fromisoformat(leaf).utcoffset() == timedelta(0)


def test_customer_and_user_roundtrip() -> None:
    cust = Customer(id="c-1", name="Contoso", tenant_id="t-1", owner="u-lee", created_at=T0)
    assert Customer.from_doc(json.loads(json.dumps(cust.to_doc()))) == cust
    user = User(
        id="u-1",
        display_name="Ana",
        role=Role.LEAD,
        time_zone="Europe/Berlin",
        locale="zh_CN",
        tenant_id=None,
        identities={"slack": "U123", "teams": "29:abc"},
    )
    assert User.from_doc(json.loads(json.dumps(user.to_doc()))) == user


# ---- ids and keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [("BILL-7", 7), ("bill-7", 7), ("bill7", 7), (" BILL-1042 ", 1042), ("Bill-0", 0)],
)
def test_parse_case_id(text: str, number: int) -> None:
    assert parse_case_id(text) == number


@pytest.mark.parametrize("text", ["", "7", "BILL-", "BILL-x", "CASE-7", "BILL-7 extra", "BILL--7"])
def test_parse_case_id_rejects(text: str) -> None:
    assert parse_case_id(text) is None


def test_case_id_roundtrip() -> None:
    for n in (1, 7, 1042, 999_999_999):
        assert parse_case_id(format_case_id(n)) == n


def test_customer_key_is_case_and_space_insensitive() -> None:
    assert customer_key("  Contoso   Ltd ") == customer_key("contoso ltd")


def test_the_storage_layer_archives_exactly_the_archived_states() -> None:
    from bot.storage.engine import ARCHIVED

    assert ARCHIVED == {s.value for s in ARCHIVED_STATES}
