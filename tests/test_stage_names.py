"""One meaning per word: the card's stage is "stage"; "version" is only the storage write counter.

Up to commit 79a86d9 the card's stage was called "version" on cards, clicks
and form contexts. Those written before (cards and forms in chat, mailbox
items and request-queue items on disk) are still read; everything written now
says "stage". The channels' own tests cover their wire formats
(tests/slack/test_slack_before_rename.py, tests/teams/test_cards.py,
tests/web/test_web_before_rename.py, tests/test_server.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.local.chat import ChatSession
from bot.kernel.model import ActionRef, Button, Channel, Reply, read_stage
from bot.kernel.serialize import message_from_dict, reply_from_dict, reply_to_dict

OLD = Path(__file__).resolve().parent / "fixtures" / "written-by-79a86d9"


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


@pytest.mark.parametrize(
    ("data", "stage"),
    [
        ({"stage": 3}, 3),
        ({"stage": "3"}, 3),
        ({"version": 3}, 3),  # written before the rename
        ({"version": "3"}, 3),
        ({"stage": 4, "version": 3}, 4),  # "stage" wins
        ({"stage": None, "version": 3}, None),
        ({"stage": True}, None),
        ({"stage": "3a"}, None),
        ({"stage": 2.5}, None),
        ({"stage": "²"}, None),  # a digit to str.isdigit, not to int()
        ({"stage": "9" * 5000}, None),  # int() refuses over 4,300 digits (hypothesis found it)
        ({}, None),
    ],
)
def test_the_stage_is_read_under_either_name(data: dict[str, Any], stage: int | None) -> None:
    assert read_stage(data) == stage


def test_a_mailbox_written_by_79a86d9_reads_with_the_cards_stage() -> None:
    items = json.loads((OLD / "mailbox_bob.json").read_text())["items"]
    card, _history, form = (reply_from_dict(i) for i in items)
    assert card.card is not None and card.card.stage == 1
    assert {b.action.stage for b in card.card.buttons} == {1}
    assert ActionRef("take", "BILL-1", 1) in [b.action for b in card.card.buttons]
    assert form.form is not None and read_stage(form.form.context) == 1
    # Written again (a mailbox item, a queued Slack delivery): the card's stage says "stage".
    again = reply_to_dict(card)
    assert again["card"]["stage"] == 1 and "version" not in _keys(again)
    assert {b["action"]["stage"] for b in again["card"]["buttons"]} == {1}


def test_a_button_value_is_positional_before_and_after() -> None:
    ref = ActionRef.from_value("take|BILL-1|3")  # as 79a86d9 wrote it on Slack and the web
    assert (ref.name, ref.case_id, ref.stage) == ("take", "BILL-1", 3)
    assert ref.to_value() == "take|BILL-1|3"


def test_a_local_click_is_read_under_either_name() -> None:
    for key in ("stage", "version"):
        body = {"user": "bob", "action": {"name": "take", "case_id": "BILL-1", key: 3}}
        msg = message_from_dict(body, Channel.LOCAL)
        assert msg.action == ActionRef("take", "BILL-1", 3)


async def test_the_terminal_chat_sends_the_stage() -> None:
    sent: list[dict[str, Any]] = []

    async def send(payload: dict[str, Any]) -> list[Reply]:
        sent.append(payload)
        return [Reply(text="BILL-1", buttons=[Button("Take", ActionRef("take", "BILL-1", 2))])]

    session = ChatSession(send, "bob")
    await session.line("status BILL-1")
    await session.line("1")
    assert sent[-1]["action"] == {"name": "take", "case_id": "BILL-1", "stage": 2, "value": None}
