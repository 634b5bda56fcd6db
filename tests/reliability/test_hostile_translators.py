"""Property tests of the pure edges: Slack and Teams translators, the receivables CSV parser.

Every inbound translator takes a real documented payload with fields removed
or replaced by hostile values (``tests/reliability/hostile.py``) and must
answer a message, or None, never raise: these run in the inbox worker after
the ack, where an exception would only retry the same doomed work. The CSV
parser must report bad rows by line and keep the good ones, with exact money
that survives a storage round trip and the collections arithmetic at any date.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.slack import translate as slack
from adapters.teams import translate as teams
from bot.config import CollectionsPolicy
from bot.kernel.model import Message
from bot.receivables import Receivable, merge_row, overdue_by_customer, parse_csv
from tests.reliability.figures import count_example
from tests.reliability.hostile import JSON, TEXT, mutated, receivables_csv
from tests.slack.slackfake import load

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEAMS_FIXTURES = Path(__file__).resolve().parent.parent / "teams" / "fixtures"


def teams_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TEAMS_FIXTURES / f"{name}.json").read_text("utf-8"))
    return data["activity"]


def refused_at_the_door(body: Any) -> bool:
    """What ``POST /api/messages`` answers 400 to before any translator runs (see channel.py)."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return True
    if not isinstance(body.get("serviceUrl"), str):
        return True
    if any(
        k in body and not isinstance(body[k], dict) for k in ("conversation", "from", "recipient")
    ):
        return True
    return not isinstance((body.get("conversation") or {}).get("id"), str)


def _message_or_none(result: Any) -> None:
    if result is None:
        return
    msg = result[0] if isinstance(result, tuple) else result
    assert isinstance(msg, Message)
    assert isinstance(msg.text, str) and isinstance(msg.user, str)


# ---------------------------------------------------------------- Slack
@FAST
@given(mutated(load("slash_command"), values=TEXT))
def test_slack_slash_commands(body: dict[str, Any]) -> None:
    count_example("Slack translator: slash commands")
    _message_or_none(slack.command_to_message(body))
    slack.redact(body)


@FAST
@given(
    st.one_of(
        mutated(load("event_message_im")),
        mutated(load("event_app_mention")),
        mutated(load("event_message_changed")),
    ),
    st.one_of(st.none(), st.just("UBOT"), TEXT),
)
def test_slack_events(body: dict[str, Any], bot: str | None) -> None:
    count_example("Slack translator: events")
    _message_or_none(slack.event_to_message(body, bot))
    key = slack.event_dedupe_key(body)
    assert key is None or isinstance(key, str)


@FAST
@given(mutated(load("block_actions")))
def test_slack_clicks(body: dict[str, Any]) -> None:
    count_example("Slack translator: button clicks")
    _message_or_none(slack.action_to_message(body))
    key = slack.click_dedupe_key(body)
    assert key is None or isinstance(key, str)
    slack.clicked_ref(body)


def _submission() -> dict[str, Any]:
    body = load("view_submission")
    body["view"]["private_metadata"] = json.dumps(
        {"f": "ask", "x": {}, "cv": "CGENERAL", "ch": "CGENERAL", "d": False, "ru": ""}
    )
    return body


@FAST
@given(mutated(_submission(), max_changes=6))
def test_slack_modal_submissions(body: dict[str, Any]) -> None:
    count_example("Slack translator: modal submissions")
    _message_or_none(slack.view_to_message(body))


@FAST
@given(TEXT, st.integers(1, 3000))
def test_slack_text_out_is_escaped_and_fits(text: str, limit: int) -> None:
    count_example("Slack translator: outgoing text")
    escaped = slack.escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert len(slack.fit(slack.mrkdwn(text), limit)) <= limit
    assert isinstance(slack.from_slack(text), str)


# ---------------------------------------------------------------- Teams
@FAST
@given(
    st.sampled_from(
        ["personal_message", "card_click", "form_submit", "channel_mention", "unknown_value"]
    ).flatmap(lambda name: mutated(teams_fixture(name), keep=("serviceUrl",), max_changes=5))
)
def test_teams_activities(activity: dict[str, Any]) -> None:
    count_example("Teams translator: activities")
    if refused_at_the_door(activity):
        return
    _message_or_none(teams.to_message(activity))
    key = teams.click_key(activity)
    assert key is None or isinstance(key, str)
    teams.reference_of(activity)
    teams.tenant_of(activity)
    teams.time_zone(activity)
    teams.form_values(activity)


@FAST
@given(JSON)
def test_teams_any_json_is_refused_or_taken(body: Any) -> None:
    count_example("Teams translator: any JSON")
    if not refused_at_the_door(body):
        _message_or_none(teams.to_message(body))
        teams.click_key(body)


# ---------------------------------------------------------------- receivables CSV
STAGES = CollectionsPolicy().stages
DAYS = st.sampled_from([date(1, 1, 2), date(2026, 11, 24), date(9999, 12, 30)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(receivables_csv(), DAYS)
def test_the_csv_parser_reports_bad_rows_and_keeps_exact_money(text: str, today: date) -> None:
    count_example("CSV import: parse, merge, store, collections")
    parsed = parse_csv(text)
    lines = text.count("\n") + text.count("\r") + 1
    for error in parsed.errors:
        assert 1 <= error.line <= lines and str(error)
    stored = []
    for row in parsed.rows:
        assert isinstance(row.amount.amount, Decimal) and row.amount.amount.is_finite()
        assert row.amount.amount >= 0 and row.amount_paid.is_finite()
        _change, receivable, _notes = merge_row(None, row)
        doc = json.loads(json.dumps(receivable.to_doc()))  # what the store keeps
        again = Receivable.from_doc(doc)
        assert again.outstanding == receivable.outstanding
        stored.append(again)
    overdue_by_customer(stored, today, STAGES)
