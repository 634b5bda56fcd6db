"""The channel-neutral rules of every channel: privacy in shared conversations, repeat clicks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.slack import translate as slack
from adapters.teams import translate as teams
from bot.config import CustomerConfig
from bot.domain import Role, User
from bot.kernel.model import ActionRef, Channel
from conversations.clicks import Click, click_key, judge_click
from conversations.sharing import CustomerConversations, answer_privately

TESTS = Path(__file__).resolve().parent
CONTOSO = CustomerConfig(
    "Contoso", slack_channels=("CCONTOSO",), teams_conversations=("19:contoso@thread.tacv2",)
)
FABRIKAM = CustomerConfig("Fabrikam", slack_channels=("CFAB",))


def person(role: Role) -> User:
    return User(id=role.value, display_name=role.value, role=role, time_zone="UTC")


# ------------------------------------------------------------ shared conversations
def test_which_conversations_are_shared_with_a_customer() -> None:
    shared = CustomerConversations([CONTOSO, FABRIKAM])
    assert shared.shared(Channel.SLACK, ["CCONTOSO"], direct=False)
    assert shared.shared(
        Channel.TEAMS, ["19:x;messageid=1", "19:contoso@thread.tacv2"], direct=False
    )
    assert not shared.shared(Channel.SLACK, ["CGENERAL", None], direct=False)
    assert not shared.shared(Channel.TEAMS, ["CCONTOSO"], direct=False)  # a Slack id on Teams
    assert not shared.shared(Channel.SLACK, ["CCONTOSO"], direct=True)  # a DM never is
    assert shared.customer(Channel.SLACK, ["CFAB"]) == FABRIKAM
    assert shared.customer(Channel.TEAMS, [None, "19:contoso@thread.tacv2"]) == CONTOSO
    assert shared.customer(Channel.LOCAL, ["CCONTOSO"]) is None


@pytest.mark.parametrize(
    ("sender", "private"),
    [
        (person(Role.AGENT), True),
        (person(Role.LEAD), True),
        (None, True),  # unknown: may be staff, so the safe way
        (person(Role.CUSTOMER), False),
        (person(Role.NONE), False),
    ],
)
def test_who_is_answered_privately_in_a_shared_conversation(
    sender: User | None, private: bool
) -> None:
    assert answer_privately(sender, shared=True) is private
    assert answer_privately(sender, shared=False) is False  # elsewhere: where they wrote


# ------------------------------------------------------------ repeated clicks
TAKE = ActionRef("take", "BILL-7", 3)


def test_a_case_card_click_is_keyed_by_case_action_and_stage() -> None:
    assert click_key("slack:click", TAKE) == "slack:click:BILL-7:take:3"
    assert click_key("p", TAKE, ("card-1",)) == "p:card-1:BILL-7:take:3"
    assert click_key("p", ActionRef("take", "BILL-7", 4)) != click_key("p", TAKE)
    assert click_key("p", ActionRef("answer", value="yes"), ("m", "u")) == "p:m:u:answer|||yes"
    # Two buttons of one card, a bare one and one with a value, are two clicks (the card's
    # [Escalate] and the failed filing's [Try again]: the second is no repeat of the first).
    escalate = ActionRef("escalate", "BILL-7", 3)
    retry = ActionRef("escalate", "BILL-7", 3, "retry")
    assert click_key("p", retry) != click_key("p", escalate)
    assert click_key("p", retry) == click_key("p", ActionRef("escalate", "BILL-7", 3, "retry"))


def test_both_channels_key_a_case_card_click_by_the_same_rule() -> None:
    body = json.loads((TESTS / "slack" / "fixtures" / "block_actions.json").read_text())
    activity = json.loads((TESTS / "teams" / "fixtures" / "card_click.json").read_text())
    slack_ref = slack.clicked_ref(body)
    teams_ref = teams.click_of(activity["activity"])
    assert slack_ref is not None and teams_ref is not None
    assert slack.click_dedupe_key(body) == click_key("slack:click", slack_ref)
    assert str(teams.click_key(activity["activity"])).endswith(":BILL-7:take:3")


@pytest.mark.parametrize(
    ("ref", "claimed", "stage", "verdict"),
    [
        (TAKE, False, 3, Click.FIRST),
        (TAKE, False, None, Click.FIRST),
        (TAKE, True, 3, Click.NOTHING_NEW),  # the card is current: nothing new to show
        (TAKE, True, 4, Click.MOVED_ON),  # out of date: "already done" with the current card
        (TAKE, True, None, Click.NOTHING_NEW),  # no such case: no newer card either
        (ActionRef("answer", value="yes"), True, None, Click.NOTHING_NEW),
        (None, True, None, Click.NOTHING_NEW),
    ],
)
def test_first_moved_on_or_nothing_new(
    ref: ActionRef | None, claimed: bool, stage: int | None, verdict: Click
) -> None:
    assert judge_click(ref, claimed=claimed, stage=stage) is verdict
