"""Cards, forms and queued requests from before the card's stage was renamed still work on Slack.

Up to commit 79a86d9 the card's stage was called ``version`` in a form's
context (a modal's ``private_metadata``, a stored "Open form" form) and in
the replies a queued delivery carries. The queued items in
``tests/fixtures/written-by-79a86d9/`` were written by that commit's Slack
channel (a DM's answers held in the request queue while ``chat.postMessage``
hung): today's code must send them with the card's stage on every button, and
a stale one must still be refused as stale. (A button's value is positional,
``name|case|stage|value``, the same before and after.)
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app.server import RUNTIME, build_app
from bot.clock import FakeClock
from bot.domain import State
from bot.storage import Store, open_store
from tests.slack.slackfake import START, FakeSlack, SlackEnv, make_settings, new_case

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "written-by-79a86d9"


@asynccontextmanager
async def _serve(fake: FakeSlack, path: Path) -> AsyncIterator[SlackEnv]:
    settings = make_settings(f"{fake.url}/api/")
    app = build_app(settings, open_store(path), FakeClock(START, speed=1.0))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        env = SlackEnv(client, fake, app[RUNTIME], settings)
        await env.settle()  # what the store's request queue held is worked off at start
        yield env


async def _queue_old(path: Path, fixture: str) -> None:
    """Put request-queue items as 79a86d9 wrote them into the (stopped) store at ``path``."""
    items: dict[str, Any] = json.loads((OLD / fixture).read_text())
    store = open_store(path)
    await store.open()
    try:
        await store.commit([Store.queued_request_op(k, v) for k, v in items.items()])
    finally:
        await store.close()


async def _with_old_queue(fake: FakeSlack, path: Path, fixture: str) -> None:
    """BILL-1 made by today's code (stage 1, as when 79a86d9 queued the items); then the items."""
    async with _serve(fake, path) as env:
        await new_case(env, "Why two charges?")
        case = await env.case(1)
        assert case.stage == 1
    await _queue_old(path, fixture)


async def test_a_card_queued_by_79a86d9_is_sent_with_its_stage_and_acts(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    path = tmp_path / "billing.json"
    await _with_old_queue(fake_slack, path, "slack_deliver_card.json")
    async with _serve(fake_slack, path) as env:
        card = next(m for m in reversed(fake_slack.messages) if m.channel == "DANA" and m.buttons())
        assert card.button("take")["value"] == "take|BILL-1|1"  # "version": 1 read as the stage
        assert card.button("resolve")["value"] == "resolve|BILL-1|1"
        shown = copy.deepcopy(card)  # the message as first sent (a click updates it in place)
        await env.click(card, "take", user="UBOB")
        case = await env.case(1)
        assert case.owner == "slack:UBOB" and case.state == State.IN_PROGRESS
        # The same old card again: its stage is out of date, so nothing changes.
        sent = len(fake_slack.messages)
        await env.click(shown, "take")
        assert any("Already done" in m.text for m in fake_slack.messages[sent:])
        assert (await env.case(1)).owner == "slack:UBOB"
        assert env.runtime.store.queued_request_count() == 0


async def test_a_text_form_queued_by_79a86d9_opens_as_a_modal_and_completes(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    path = tmp_path / "billing.json"
    await _with_old_queue(fake_slack, path, "slack_deliver_form.json")
    async with _serve(fake_slack, path) as env:
        prompt = fake_slack.last_message()
        assert prompt.channel == "DANA" and "Resolve BILL-1" in prompt.text
        # The form's context said {"case": "BILL-1", "version": "1"}: the button carries stage 1.
        assert prompt.button("open_form")["value"] == "open_form|BILL-1|1|resolve"
        await env.click(prompt, "open_form")
        view = fake_slack.last_view()
        assert json.loads(view["private_metadata"])["x"]["case"] == "BILL-1"
        await env.submit(view, {"resolution": "Credit note issued"})
        case = await env.case(1)
        assert case.state == State.RESOLVED and case.resolution == "Credit note issued"


def _as_before_the_rename(view: dict[str, Any]) -> dict[str, Any]:
    """``view`` with its form context written as 79a86d9 wrote it: the stage under "version"."""
    meta = json.loads(view["private_metadata"])
    assert set(meta["x"]) == {"case", "stage"}  # what today's code writes
    meta["x"] = {"case": meta["x"]["case"], "version": meta["x"]["stage"]}
    return {**view, "private_metadata": json.dumps(meta, separators=(",", ":"))}


async def test_a_modal_opened_before_the_rename_submits(slack: SlackEnv) -> None:
    card = await new_case(slack, "Why two charges?")
    await slack.click(card, "resolve")
    old = _as_before_the_rename(slack.fake.last_view())
    status, answer = await slack.submit(old, {"resolution": "Credit note issued"})
    assert status == 200 and answer == {}, answer
    assert (await slack.case(1)).state == State.RESOLVED


async def test_a_stale_modal_from_before_the_rename_is_refused_as_stale(slack: SlackEnv) -> None:
    card = await new_case(slack, "Why two charges?")
    await slack.click(card, "resolve")
    old = _as_before_the_rename(slack.fake.last_view())
    await slack.dm("take BILL-1", user="UBOB")  # the case moves on while the modal is open
    before = await slack.case(1)
    sent = len(slack.fake.messages)
    status, _answer = await slack.submit(old, {"resolution": "Credit note issued"})
    assert status == 200
    after = await slack.case(1)
    assert after.state == State.IN_PROGRESS and after.resolution is None
    assert after.stage == before.stage and after.version == before.version
    assert any("Already done" in m.text for m in slack.fake.messages[sent:])
