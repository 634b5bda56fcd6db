"""Hostile input through the HTTP edges of the running bot: Slack, Teams, the CSV import.

Each example is a correctly signed Slack request (slash command, event,
button click, modal submission) or a Teams activity or a receivables import,
built from the documented payload shapes with hostile text and wrongly typed
or missing fields (``tests/reliability/hostile.py``), or plain garbage. The
bot must never answer 5xx, never log an exception, leave nothing failing in
its inbox, and keep a store that every later read can show (``list all``,
the newest case's card, ``customers``, ``overdue``, ``/healthz``). One bot
serves all the examples of a test, so what one example stored is read by
the next. Bodies over the size limit get 413 on every route.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.figures import count_example, fault_case
from tests.reliability.hostile import JSON, TEXT, mutated, receivables_csv
from tests.reliability.inproc import LiveBot
from tests.slack.slackfake import load, sign
from tests.teams.conftest import ALICE, LENA

HTTP = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WATCHED = ("bot.", "adapters.", "conversations.")  # the bot's own 5xx show in the status


class Tracebacks(logging.Handler):
    """Every log record carrying an exception, from the bot's own code or aiohttp's server."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.name.startswith(WATCHED):
            self.records.append(record)


@pytest.fixture
def tracebacks() -> Any:
    handler = Tracebacks()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


async def still_sound(live: LiveBot, tracebacks: Tracebacks, what: str) -> None:
    """After one hostile request: no exception, nothing stuck, every read still works."""
    await asyncio.wait_for(live.runtime.wait_idle(), 20)
    stuck = [v for v in live.engine.view("inbox").values() if v.get("dead") or v.get("attempts")]
    assert not stuck, f"{what}: {len(stuck)} inbox items failed: {str(stuck[0])[:300]}"
    if tracebacks.records:
        record = tracebacks.records[0]
        error = record.exc_info[1] if record.exc_info else None
        raise AssertionError(f"{what}: {record.getMessage()[:200]}: {error!r}"[:600])
    status, _ = await live.healthz()
    assert status == 200
    for text in ("list all", "customers", "overdue", "reminders"):
        status, answer = await live.local("lena", text)
        assert status == 200, f"{what}: '{text}' answered {status}: {answer}"
    counter = live.engine.peek("counters", "case")
    if counter:
        status, answer = await live.local("lena", f"status BILL-{counter['value']}")
        assert status == 200, answer


async def slack_post(live: LiveBot, body: bytes, content_type: str) -> int:
    headers = {"Content-Type": content_type, **sign(body.decode("utf-8", "replace"))}
    resp = await live.client.post("/slack/events", data=body, headers=headers)
    await resp.read()
    return resp.status


def _strings(doc: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}


def slash(response_url: str) -> dict[str, Any]:
    body = load("slash_command")
    body.update(team_id="TPARTNER", user_id="UANA", channel_id="CGENERAL", text="help")
    body["response_url"] = response_url
    return body


# ---------------------------------------------------------------- Slack
@HTTP
@given(data=st.data())
async def test_slack_slash_commands(live: LiveBot, tracebacks: Tracebacks, data: Any) -> None:
    count_example("HTTP: Slack slash commands")
    base = slash(live.fake_slack.response_url())
    base["text"] = data.draw(TEXT)
    body = data.draw(mutated(base, keep=("response_url",), values=TEXT, max_changes=3))
    form = urllib.parse.urlencode(_strings(body)).encode()
    status = await slack_post(live, form, "application/x-www-form-urlencoded")
    assert status < 500, status
    await still_sound(live, tracebacks, "slash command")


@HTTP
@given(data=st.data())
async def test_slack_events(live: LiveBot, tracebacks: Tracebacks, data: Any) -> None:
    count_example("HTTP: Slack events")
    base = load("event_message_im")
    base.update(team_id="TPARTNER", event_id=f"Ev{data.draw(st.integers(0, 10**9))}")
    base["event"].update(user="ULENA", text=data.draw(TEXT), channel="DLENA")
    kind = data.draw(st.sampled_from(["mutated", "any json", "garbage"]))
    if kind == "mutated":
        raw = json.dumps(data.draw(mutated(base, max_changes=3))).encode()
    elif kind == "any json":
        raw = json.dumps(data.draw(JSON)).encode()
    else:
        raw = data.draw(st.binary(max_size=200))
    status = await slack_post(live, raw, "application/json")
    assert status < 500, (status, raw[:300])
    await still_sound(live, tracebacks, "event")


async def a_card(live: LiveBot) -> dict[str, Any]:
    """A case card the bot posted (made once per test), as a click's ``message``."""
    cards = [m for m in live.fake_slack.messages if m.buttons()]
    if not cards:
        await live.slack.command("ask")
        view = live.fake_slack.last_view()
        values = {"customer": "Contoso", "category": "charges", "description": "a question"}
        await live.slack.submit(view, values)
        cards = [m for m in live.fake_slack.messages if m.buttons()]
    return {"ts": cards[-1].ts, **cards[-1].body}


@HTTP
@given(data=st.data())
async def test_slack_clicks_and_modals(live: LiveBot, tracebacks: Tracebacks, data: Any) -> None:
    count_example("HTTP: Slack clicks and modal submissions")
    card = await a_card(live)
    if data.draw(st.booleans()):
        base = load("block_actions")
        buttons = [
            b for blk in card["blocks"] if blk.get("type") == "actions" for b in blk["elements"]
        ]
        # An index, not sampled_from: what is drawn must not depend on the bot's state.
        button = buttons[data.draw(st.integers(0, 9)) % len(buttons)]
        base["user"] = {"id": "UANA", "team_id": "TPARTNER", "username": "ana"}
        base["message"] = card
        base["container"] = {"type": "message", "message_ts": card["ts"], "channel_id": "CGENERAL"}
        base["response_url"] = live.fake_slack.response_url()
        base["actions"] = [
            {**base["actions"][0], "action_id": button["action_id"], "value": button["value"]}
        ]
        payload = data.draw(mutated(base, keep=("response_url", "message"), max_changes=3))
    else:
        base = load("view_submission")
        base["user"] = {"id": "UANA", "team_id": "TPARTNER"}
        base["view"]["private_metadata"] = json.dumps(
            {"f": "ask", "x": {}, "cv": "CGENERAL", "ch": "CGENERAL", "d": False, "ru": ""}
        )
        base["view"]["state"] = {
            "values": {
                name: {"value": {"type": "plain_text_input", "value": data.draw(TEXT)}}
                for name in ("customer", "description", "invoice", "subscription_id")
            }
            | {
                "category": {
                    "value": {"type": "static_select", "selected_option": {"value": "tax"}}
                }
            }
        }
        payload = data.draw(mutated(base, keep=("type",), max_changes=3))
    raw = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    if data.draw(st.integers(0, 9)) == 0:
        raw = b"payload=" + urllib.parse.quote(data.draw(st.text(max_size=50))).encode()
    status = await slack_post(live, raw, "application/x-www-form-urlencoded")
    assert status < 500, status
    await still_sound(live, tracebacks, "interactivity")


# ---------------------------------------------------------------- Teams
@HTTP
@given(data=st.data())
async def test_teams_activities(live: LiveBot, tracebacks: Tracebacks, data: Any) -> None:
    count_example("HTTP: Teams activities")
    who = data.draw(st.sampled_from([ALICE, LENA]))
    kind = data.draw(st.sampled_from(["text", "form", "click", "any json", "garbage"]))
    if kind == "text":
        activity = live.teams.say(who, data.draw(TEXT))
    elif kind == "form":
        value = {"billing_form": data.draw(st.sampled_from(["ask", "dispute", "escalate", "x"]))}
        for name in ("customer", "category", "description", "invoice", "amount", "currency"):
            value[f"f_{name}"] = data.draw(st.one_of(TEXT, JSON))
        activity = live.teams.activity(who, value=value, reply_to="act-1")
    elif kind == "click":
        value = {
            "action": data.draw(st.one_of(TEXT, JSON)),
            "case_id": data.draw(st.one_of(TEXT, JSON)),
            "stage": data.draw(JSON),
        }
        activity = live.teams.activity(who, value=value, reply_to="act-1")
    if kind in ("text", "form", "click"):
        if data.draw(st.booleans()):
            # Not where answers go (Teams' own routing): what the sender says, and how.
            keep = ("serviceUrl", "conversation")
            activity = data.draw(mutated(activity, keep=keep, max_changes=3))
        raw = json.dumps(activity).encode()
    elif kind == "any json":
        raw = json.dumps(data.draw(JSON)).encode()
    else:
        raw = data.draw(st.binary(max_size=200))
    resp = await live.client.post(
        "/api/messages", data=raw, headers={"Content-Type": "application/json"}
    )
    await resp.read()
    assert resp.status < 500, resp.status
    await still_sound(live, tracebacks, "Teams activity")


# ---------------------------------------------------------------- CSV import
@HTTP
@given(data=st.data())
async def test_receivables_import(live: LiveBot, tracebacks: Tracebacks, data: Any) -> None:
    count_example("HTTP: receivables CSV import")
    if data.draw(st.integers(0, 5)) == 0:
        body = data.draw(JSON)
    else:
        body = {
            "csv": data.draw(receivables_csv()),
            "user": data.draw(st.one_of(st.just("lena"), TEXT, JSON)),
            "file": data.draw(st.one_of(TEXT, JSON)),
        }
    resp = await live.client.post("/local/receivables", json=body)
    answer = await resp.text()
    assert resp.status < 500, answer
    if resp.status == 200:
        report = json.loads(answer)
        assert isinstance(report, dict)
    live.runtime.kick()  # the daily collections run reads what was imported
    await asyncio.sleep(0.05)
    await still_sound(live, tracebacks, "receivables import")


# ---------------------------------------------------------------- bodies over the limit
POST_ROUTES = [
    "/slack/events",
    "/api/messages",
    "/local/messages",
    "/local/demo-data",
    "/chat/send",
    "/chat/inbox/clear",
    "/login",
    "/logout",
]


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
async def test_a_body_over_the_limit_gets_413(live: LiveBot, path: str, content_type: str) -> None:
    body = b"x" * (256 * 1024 + 1)
    headers = {"Content-Type": content_type}
    if path == "/slack/events":
        headers.update(sign(body.decode()))
    before = live.store.case_counts()
    resp = await live.client.post(path, data=body, headers=headers, allow_redirects=False)
    assert resp.status == 413, (path, resp.status)
    assert live.store.case_counts() == before and live.engine.view("inbox") == {}
    fault_case(f"body over 256 kB on POST {path} ({content_type}) → 413, nothing stored")


async def test_an_import_over_its_own_limit_gets_413(live: LiveBot) -> None:
    body = b'{"csv": "' + b"a" * (32 * 1024 * 1024) + b'"}'
    resp = await live.client.post(
        "/local/receivables", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    fault_case("receivables import over 32 MB → 413")
