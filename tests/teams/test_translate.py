"""The pure translator, table-driven from JSON fixtures shaped like real Teams activities."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from adapters.teams import translate
from bot.kernel.model import Channel

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("*.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_activity_to_message(path: Path) -> None:
    case = json.loads(path.read_text())
    msg = translate.to_message(case["activity"])
    expect: dict[str, Any] | None = case["expect"]
    if expect is None:
        assert msg is None
        return
    assert msg is not None
    assert msg.channel == Channel.TEAMS
    for key, value in expect.items():
        got = getattr(msg, key)
        if key == "action":
            got = asdict(got) if got is not None else None
        if key == "reference":
            got = {k: got.get(k) for k in value}
        assert got == value, f"{path.stem}: {key}"


def test_bot_name_inside_the_text_survives() -> None:
    # botbuilder's remove_recipient_mention would delete every "Billing" in the text.
    activity = json.loads((FIXTURES / "group_mention_html.json").read_text())["activity"]
    activity["recipient"]["name"] = "Billing"
    activity["entities"][0]["text"] = "<at>Billing</at>"
    activity["text"] = "<at>Billing</at> ask Billing question about Billing"
    text, mentions = translate.clean_text(activity)
    assert text == "ask Billing question about Billing"
    assert mentions == {}


def test_click_key_ignores_the_activity_id_but_not_the_card_or_stage() -> None:
    activity = json.loads((FIXTURES / "card_click.json").read_text())["activity"]
    key = translate.click_key(activity)
    again = {**activity, "id": "other-activity-id"}
    assert translate.click_key(again) == key
    newer = {**activity, "value": {**activity["value"], "stage": 4}}
    assert translate.click_key(newer) != key
    other_card = {**activity, "replyToId": "another-card"}
    assert translate.click_key(other_card) != key
    submit = json.loads((FIXTURES / "form_submit.json").read_text())["activity"]
    assert translate.click_key(submit) is None


def test_reference_is_for_new_messages() -> None:
    activity = json.loads((FIXTURES / "personal_message.json").read_text())["activity"]
    ref = translate.reference_of(activity)
    assert "activityId" not in ref
    assert ref["serviceUrl"] == activity["serviceUrl"]
    assert ref["conversation"]["id"] == activity["conversation"]["id"]
    assert ref["user"]["aadObjectId"] == "00000000-0000-4000-8000-0000000a11ce"


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        ({"localTimezone": "Not/AZone"}, None),
        ({"entities": [{"type": "clientInfo", "timezone": "Asia/Tokyo"}]}, "Asia/Tokyo"),
        ({"localTimezone": "Europe/Paris", "entities": []}, "Europe/Paris"),
    ],
)
def test_time_zone(activity: dict[str, Any], expected: str | None) -> None:
    assert translate.time_zone(activity) == expected


def test_strange_click_values_are_not_trusted() -> None:
    base = json.loads((FIXTURES / "card_click.json").read_text())["activity"]
    weird = {**base, "value": {"action": "take", "case_id": 7, "stage": True, "value": {"x": 1}}}
    action = translate.click_of(weird)
    assert action is not None
    assert (action.case_id, action.stage, action.value) == (None, None, None)
    assert translate.click_of({**base, "value": {"action": "x" * 41}}) is None
