"""Forged form submissions and "Open form" clicks: refused before anything is shown or stored.

A web page, a Teams card or the local endpoint lets a client post any
``form_id`` with any context. Found by the matrix: the escalate form's intro
(customer, tenant id, description) came back to anyone whose submission had a
missing field, and a person without a role could create customers on the way
to a refusal. :meth:`conversations.formengine.FormEngine.guard` now checks first.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.domain import Role
from bot.kernel.model import ActionRef
from bot.policy import MATRIX
from conversations.text import plain
from tests.harness import DeskEnv

# Every form of the running desk (the desk's own and the flow modules', e.g. escalate).
FORM_ACTIONS = DeskEnv().runtime.desk.forms.actions

SECRET = "the-secret-description-42"


def snapshot(env: DeskEnv) -> dict[str, Any]:
    """Every table that a refused request must leave alone."""
    engine = env.store.engine
    return {t: dict(engine.view(t)) for t in ("cases", "customers", "conversations", "jobs")}


def every_text(replies: list[Any]) -> str:
    out: list[str] = []
    for r in replies:
        out.append(r.text)
        if r.form is not None:
            out += [r.form.title, r.form.intro or "", *(f.value or "" for f in r.form.fields)]
        if r.card is not None:
            out += [r.card.title, *(f.value for f in r.card.facts)]
    return plain("\n".join(out))


@pytest.fixture
async def env() -> DeskEnv:
    desk = DeskEnv()
    await desk.store.open()
    await desk.new_question("alice", "Contoso", SECRET)
    for who in ("carol", "dave", "nora"):  # their user records exist before the snapshots
        await desk.chat(who).send("help")
    return desk


ROLES = {"carol": Role.CUSTOMER, "dave": Role.CUSTOMER, "nora": Role.NONE}
FORBIDDEN = [
    (who, form_id)
    for who, role in ROLES.items()
    for form_id, action in sorted(FORM_ACTIONS.items())
    if action not in MATRIX[role]
]


@pytest.mark.parametrize(("who", "form_id"), FORBIDDEN)
async def test_a_forged_submission_shows_and_changes_nothing(
    env: DeskEnv, who: str, form_id: str
) -> None:
    """Customers of either tenant and people without a role, on every form they may not use."""
    before = snapshot(env)
    chat = env.chat(who)
    for values in ({}, {"customer": "EvilCorp", "request_id": "SR-1", "description": "x"}):
        await chat.submit(form_id, values, {"case": "BILL-1", "stage": "1"})
        text = every_text(chat.replies)
        assert SECRET not in text and "aaaaaaaa-0000" not in text, text
        assert chat.kinds == ["error"], chat.transcript
    assert snapshot(env) == before


@pytest.mark.parametrize("form_id", ["ask", "dispute"])
async def test_no_role_cannot_open_a_form_by_a_forged_click(env: DeskEnv, form_id: str) -> None:
    before = snapshot(env)
    chat = env.chat("nora")
    await chat.press(ActionRef("open_form", value=form_id))
    chat.expect("only show `help`")
    await chat.say("EvilCorp", "yes")
    assert snapshot(env) == before


async def test_a_replayed_request_id_shows_no_foreign_case(env: DeskEnv) -> None:
    """The "already done" answer to a redelivered request checks who asks."""
    from bot.kernel.model import Channel, Message

    alice = Message(Channel.LOCAL, "alice", "dm:alice", text="take BILL-1", id="req-1")
    await env.runtime.handle(alice)
    dave = Message(Channel.LOCAL, "dave", "dm:dave", text="status BILL-1", id="req-1")
    result = await env.runtime.handle(dave)
    text = every_text(result.replies)
    assert "Already done." in text and "BILL-1" not in text and SECRET not in text
