"""A double click or a platform's retry never acts twice: the one rule of every channel.

A click is known by a key (:func:`click_key`). A button on a case card is
keyed by the case, the action and the stage the card was made for
(``BILL-7:take:3``): the same button of that stage is one click, whichever
copy of the card it came from; any other button (a form's answer choices)
by its whole value, within a scope the channel gives (the message and the
clicker). The first click claims its key durably and acts. A repeat
(:func:`judge_click`) whose card is out of date (the case moved to another
stage since) goes to the desk, which changes nothing and answers "already
done" with the current card; a repeat whose card is still current has
nothing new to show.

What stays with each channel: when it claims the key (Slack in the request,
before its ack, together with the queued request; Teams when the queued
activity is worked off, for a short window) and where it keeps the claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from bot.kernel.model import ActionRef


class Click(Enum):
    """What a click is, given the claim of its key and the case's current stage."""

    FIRST = "first"  # nobody claimed its key: it acts
    MOVED_ON = "moved_on"  # a repeat on an out-of-date card: "already done", the current card
    NOTHING_NEW = "nothing_new"  # a repeat on a card still current: nothing to show


def on_case_card(ref: ActionRef) -> bool:
    """A button of a case card: it names the case and the stage the card was made for."""
    return bool(ref.case_id) and ref.stage is not None


def click_key(prefix: str, ref: ActionRef, scope: Sequence[str] = ()) -> str:
    """``prefix:scope…:what`` — what: ``case:action:stage[:value]`` on a case card, else the value.

    ``scope`` is where the channel counts a click once (Slack: a case card's
    button everywhere, other buttons per message and clicker; Teams: per
    conversation, clicker and card).
    """
    if on_case_card(ref):
        # A button that carries a value is another button than its bare kin on the same
        # card (an escalation's [Try again] beside the card's [Escalate]).
        what = f"{ref.case_id}:{ref.name}:{ref.stage}" + (f":{ref.value}" if ref.value else "")
    else:
        what = ref.to_value()
    return ":".join([prefix, *scope, what])


def judge_click(ref: ActionRef | None, *, claimed: bool, stage: int | None) -> Click:
    """First, or a repeat on an out-of-date card, or a repeat with nothing new to show.

    ``claimed``: another request already claimed the click's key. ``stage``:
    the clicked case's current stage (None: no such case, or no case named).
    Only a case card whose stage differs from the case's current one is out
    of date; a button on no case card, or on a case that is not there, has
    no newer card to show.
    """
    if not claimed:
        return Click.FIRST
    if ref is None or not on_case_card(ref) or stage is None or stage == ref.stage:
        return Click.NOTHING_NEW
    return Click.MOVED_ON


__all__ = ["Click", "click_key", "judge_click", "on_case_card"]
