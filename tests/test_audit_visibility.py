"""What of a case's audit trail a customer sees: decided per event kind in bot.domain.AUDIT_KINDS.

A customer sees what was done for them (opened, worked on, raised with Microsoft,
resolved, told, reopened, cancelled, closed), never the desk's internal workings
(assignments, notes, snoozes, Microsoft request internals). Every place that shows
history (the case card on every channel, ``status``, the web case page, a customer's
list and the dashboard's CSV) asks the one table; an event kind the code writes
without a decision there fails here.
"""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain import (
    AUDIT_KINDS,
    STAGE_ACTIONS,
    Actor,
    AuditEntry,
    Case,
    Category,
    Customer,
    Kind,
    Role,
    audit_wording,
)
from bot.i18n import use_locale
from conversations.cards import case_card, full_history, list_line
from conversations.text import plain
from tests.harness import START, TENANT_A

ROOT = Path(__file__).resolve().parents[1]
ALICE = Actor("alice", Role.AGENT, "local", display_name="Alice Agent")
CAROL = Actor("carol", Role.CUSTOMER, "local", TENANT_A, "Carol")
CONTOSO = Customer("contoso", "Contoso", TENANT_A, "lena")
NAMES = {"alice": "Alice Agent", "carol": "Carol", "bob": "Bob Agent"}
# Details an entry of each kind may carry; the secret ones must never reach a customer.
SECRET_DETAILS = {
    "service_request": "2411240010009999",
    "ms_request_id": "0f0f0f0f-1111-4222-8333-444444444444",
    "severity": "critical-secret",
    "support_topic": "32444671",
    "until": "2026-11-25T09:00:00+00:00",
    "to_microsoft": True,
    "reminders_sent": 7,
}


def written_kinds() -> set[str]:
    """Every audit event kind the code writes: the literal ``action`` of each
    ``_audit(actor, now, action, …)``, ``_move(target, actor, now, action, …)`` and
    ``AuditEntry(at, actor, channel, action, …)`` in bot/, conversations/ and adapters/."""
    position = {"_audit": 2, "_move": 3, "AuditEntry": 3}
    found: set[str] = set()
    for folder in ("bot", "conversations", "adapters"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name not in position:
                    continue
                arg = node.args[position[name]] if len(node.args) > position[name] else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                else:
                    keyword = next((k.value for k in node.keywords if k.arg == "action"), None)
                    if isinstance(keyword, ast.Constant) and isinstance(keyword.value, str):
                        found.add(keyword.value)
    return found


ALL_KINDS = sorted(set(AUDIT_KINDS) | written_kinds() | set(STAGE_ACTIONS))


def test_the_scan_finds_the_kinds_the_domain_writes() -> None:
    # The scan itself works: the kinds of the domain's own methods are among what it finds.
    assert {"created", "assigned", "noted", "snoozed", "service_request_status"} <= written_kinds()
    assert {"resolved", "customer_informed", "closed"} <= written_kinds()


def a_case_with(kind: str) -> tuple[Case, str]:
    """A question case created by Alice, then one entry of ``kind`` at a time of its own."""
    case = Case.new(
        1,
        kind=Kind.QUESTION,
        customer_id=CONTOSO.id,
        category=Category.CHARGES,
        description="Why two charges?",
        actor=ALICE,
        now=START,
    )
    at = START + timedelta(hours=4, minutes=37)  # 13:37 UTC: only this entry's time
    details = {
        "from": "open",
        "to": "in_progress",
        "resolution": "Credit note issued",
        "reason": "duplicate of BILL-3",
        "via": "email",
        "text": "Told her by mail",
        **SECRET_DETAILS,
    }
    case.audit.append(AuditEntry(at, "alice", "local", kind, details))
    case.updated_at = at
    return case, "13:37"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_audit_kind_has_one_decision_for_customers(kind: str) -> None:
    assert kind in AUDIT_KINDS, (
        f"audit event kind {kind!r} has no decision in bot.domain.AUDIT_KINDS: "
        "say whether a customer sees it, and in which words"
    )
    decision = AUDIT_KINDS[kind]
    assert decision.label.strip()
    assert decision.customer is None or decision.customer.strip()
    assert audit_wording(kind, internal=True) == decision.label
    assert audit_wording(kind, internal=False) == decision.customer


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_every_place_that_shows_history_follows_the_decision(kind: str, locale: str) -> None:
    from adapters.web.views import audit_lines

    case, when = a_case_with(kind)
    decision = AUDIT_KINDS[kind]
    now = START + timedelta(days=3)
    with use_locale(locale):
        from bot.i18n import _

        for viewer in (CAROL, ALICE):
            internal = viewer.role != Role.CUSTOMER
            card = case_card(case, CONTOSO, viewer, "UTC", NAMES, now, TENANT_A)
            lines = full_history(case, viewer, "UTC", NAMES)
            trail = audit_lines(case, viewer, NAMES)
            mine = [h for h in card.history if when in h] + [h for h in lines if when in h]
            web = [t for t in trail if t.at.minute == 37]
            wording = decision.label if internal else decision.customer
            if wording is None:
                assert mine == [] and web == [], (kind, card.history, lines)
                assert [t.action for t in trail] == [_(AUDIT_KINDS["created"].customer or "")]
            else:
                assert len(mine) == 2 and len(web) == 1, (kind, card.history, lines)
                assert all(_(wording) in h for h in mine)
                assert web[0].action == _(wording)
            if not internal:
                shown = "\n".join([*card.history, *lines, *(t.details for t in trail)])
                for secret in ("2411240010009999", "0f0f0f0f", "critical-secret", "32444671"):
                    assert secret not in shown, (kind, secret, shown)
                # A change a customer does not see is no news to them either.
                last = case.last_activity(internal=False)
                assert (last == case.audit[-1].at) == (decision.customer is not None)
                listed = list_line(case, CONTOSO, NAMES, now, viewer)
                expected = "3 days" if decision.customer is None else "2 days"
                assert (expected in listed) or locale != "en", listed


def test_a_comment_and_a_withdrawal_are_seen_with_their_words_by_both_sides() -> None:
    """``add`` and ``withdraw``: the customer's words are on the case for them and for the desk;
    a note (the desk's own remark) stays internal."""
    assert AUDIT_KINDS["commented"].customer is not None
    assert AUDIT_KINDS["commented"].customer_details == {"text"}
    assert AUDIT_KINDS["withdrawn"].customer is not None
    assert AUDIT_KINDS["withdrawn"].customer_details == {"reason"}
    assert "withdrawn" in STAGE_ACTIONS and "commented" not in STAGE_ACTIONS
    case, _when = a_case_with("created")
    case.audit.pop()
    later = START + timedelta(hours=1)
    case.add_comment("Paid on Monday, remittance REM-42", CAROL, later)
    case.add_note("INTERNAL: customer is grumpy", ALICE, later)
    case.withdraw("found the answer myself", CAROL, later + timedelta(minutes=5))
    for viewer in (CAROL, ALICE):
        card = case_card(case, CONTOSO, viewer, "UTC", NAMES, later, TENANT_A)
        lines = plain("\n".join(full_history(case, viewer, "UTC", NAMES)))
        assert "Carol added a comment — Paid on Monday, remittance REM-42" in lines
        assert "Carol withdrew the case — found the answer myself" in lines
        facts = {plain(f.label): plain(f.value) for f in card.facts}
        assert facts["1 comment"] == "latest by Carol: Paid on Monday, remittance REM-42"
        assert facts["Cancelled because"] == "found the answer myself"
        assert ("INTERNAL" in lines + str(facts)) is (viewer is ALICE)
