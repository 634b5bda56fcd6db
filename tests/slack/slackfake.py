"""Slack test harness: a local fake Slack Web API, signed requests, and the real bot server.

``FakeSlack`` is a real aiohttp server on 127.0.0.1 that answers the Web API
methods the bot uses, records every call (never the Authorization header),
serves ``response_url`` s, and can inject a 429 with ``Retry-After`` or any
Slack error. ``SlackEnv`` drives the bot's real aiohttp app over HTTP with
correctly signed requests shaped like Slack's documented payloads (copied
from ``fixtures/*.json``). Nothing in the bot is patched.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.config import CustomerConfig, Settings, UserConfig
from bot.domain import Role
from conversations.runtime import Runtime

FIXTURES = Path(__file__).parent / "fixtures"
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday morning
TOKEN = "xoxb-test-token"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PARTNER = "TPARTNER"
CONTOSO_TEAM = "TCONTOSO"
BOT_USER = "UBOT"
TENANT_A = "aaaaaaaa-0000-4000-8000-00000000000a"
TENANT_B = "bbbbbbbb-0000-4000-8000-00000000000b"

USERS: dict[str, dict[str, Any]] = {
    "UANA": {"name": "ana", "display": "Ana Agent", "tz": "Europe/Berlin", "team": PARTNER},
    "ULENA": {"name": "lena", "display": "Lena Lead", "tz": "Europe/Berlin", "team": PARTNER},
    "UBOB": {"name": "bob", "display": "Bob Builder", "tz": "America/New_York", "team": PARTNER},
    "UCARL": {
        "name": "carl",
        "display": "Carl Contoso",
        "tz": "Europe/Paris",
        "team": CONTOSO_TEAM,
    },
    BOT_USER: {"name": "billing-bot", "display": "billing-bot", "tz": None, "team": PARTNER},
}


def load(name: str) -> dict[str, Any]:
    """A Slack payload from ``fixtures/`` (a deep copy, free to change)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def sign(body: str, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature headers for ``body``."""
    stamp = str(int(time.time()) if ts is None else ts)
    base = f"v0:{stamp}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Call:
    method: str
    args: dict[str, Any]


@dataclass
class Posted:
    """A message the bot posted (by chat.postMessage or a response_url), as Slack holds it."""

    channel: str
    ts: str
    body: dict[str, Any]
    ephemeral: bool = False
    response_url: str | None = None

    @property
    def text(self) -> str:
        """Every text of the message and its blocks, joined (what a person would read)."""
        parts = [str(self.body.get("text", ""))]
        for block in self.body.get("blocks") or []:
            parts += _block_texts(block)
        return "\n".join(parts)

    def buttons(self) -> list[dict[str, Any]]:
        out = []
        for block in self.body.get("blocks") or []:
            if block.get("type") == "actions":
                out += block["elements"]
        return out

    def button(self, name: str) -> dict[str, Any]:
        for b in self.buttons():
            if b["value"].split("|")[0] == name:
                return b
        raise AssertionError(f"no {name!r} button in {[b['value'] for b in self.buttons()]}")


def _block_texts(block: dict[str, Any]) -> list[str]:
    out = []
    if isinstance(block.get("text"), dict):
        out.append(block["text"].get("text", ""))
    for f in block.get("fields") or []:
        out.append(f.get("text", ""))
    for e in block.get("elements") or []:
        if isinstance(e, dict) and e.get("type") in ("mrkdwn", "plain_text"):
            out.append(e.get("text", ""))
    return out


class FakeSlack:
    """The Slack Web API and response_urls, on 127.0.0.1, recording what the bot sent."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: list[Posted] = []  # visible and ephemeral, in order
        self.views: list[dict[str, Any]] = []
        self.failures: dict[str, list[dict[str, Any]]] = {}
        self.hits: dict[str, list[float]] = {}
        self.holds: dict[str, asyncio.Event] = {}
        self._ts = itertools.count(1)
        self._urls = itertools.count(1)
        self.url = ""
        self.app = web.Application()
        self.app.router.add_route("*", "/api/{method}", self.api)
        self.app.router.add_post("/response/{id}", self.response)

    # ---- test controls ------------------------------------------------------
    def fail(
        self, method: str, *, error: str = "", status: int = 200, retry_after: int | None = None
    ) -> None:
        """The next call of ``method`` fails: a Slack error, or an HTTP status (429)."""
        self.failures.setdefault(method, []).append(
            {"error": error, "status": status, "retry_after": retry_after}
        )

    def hold(self, method: str) -> asyncio.Event:
        """Calls of ``method`` wait (the bot's work hangs there) until the event is set."""
        self.holds[method] = asyncio.Event()
        return self.holds[method]

    def response_url(self) -> str:
        return f"{self.url}/response/{next(self._urls)}"

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    def last_view(self) -> dict[str, Any]:
        assert self.views, "no modal was opened"
        return self.views[-1]

    def last_message(self, *, ephemeral: bool | None = None) -> Posted:
        found = [m for m in self.messages if ephemeral is None or m.ephemeral == ephemeral]
        assert found, "no message was posted"
        return found[-1]

    def message(self, ts: str) -> Posted:
        return next(m for m in self.messages if m.ts == ts)

    def reset(self) -> None:
        self.calls.clear()
        self.messages.clear()
        self.views.clear()

    # ---- the server ------------------------------------------------------------
    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        for key in ("blocks", "view"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.hits.setdefault(method, []).append(time.monotonic())
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        args = await self._args(request)
        self.calls.append(Call(method, args))
        if method in self.holds:
            await self.holds[method].wait()
        pending = self.failures.get(method)
        if pending:
            failure = pending.pop(0)
            headers = {}
            if failure["retry_after"] is not None:
                headers["Retry-After"] = str(failure["retry_after"])
            error = failure["error"] or ("ratelimited" if failure["status"] == 429 else "fatal")
            return web.json_response(
                {"ok": False, "error": error}, status=failure["status"], headers=headers
            )
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        body: dict[str, Any] = handler(args)
        return web.json_response({"ok": True, **body})  # a handler may say ok: False itself

    async def response(self, request: web.Request) -> web.Response:
        body = await request.json()
        url = str(request.url)
        self.calls.append(Call("response_url", body))
        ephemeral = body.get("response_type") != "in_channel"
        if body.get("replace_original"):
            original = next((m for m in self.messages if m.response_url == url), None)
            if original is not None:
                original.body = body
                return web.Response(text="ok")
        self.messages.append(
            Posted(
                channel="(response_url)",
                ts=f"r{next(self._ts)}",
                body=body,
                ephemeral=ephemeral,
                response_url=url,
            )
        )
        return web.Response(text="ok")

    # ---- Web API methods -------------------------------------------------------
    def m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://partner.slack.com/",
            "team": "Partner",
            "user": "billing-bot",
            "team_id": PARTNER,
            "user_id": BOT_USER,
            "bot_id": "BBOT",
        }

    def m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = args["user"]
        u = USERS.get(uid)
        if u is None:
            return {"user": {"id": uid, "team_id": PARTNER, "name": uid.lower(), "profile": {}}}
        return {
            "user": {
                "id": uid,
                "team_id": u["team"],
                "name": u["name"],
                "real_name": u["display"],
                "tz": u["tz"],
                "locale": "en-US",
                "is_bot": uid == BOT_USER,
                "profile": {
                    "display_name": u["display"],
                    "real_name": u["display"],
                    "team": u["team"],
                },
            }
        }

    def m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": {"id": "D" + str(args["users"]).lstrip("U")}}

    def m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = f"1700000000.{next(self._ts):06d}"
        self.messages.append(Posted(channel=args["channel"], ts=ts, body=args))
        return {"channel": args["channel"], "ts": ts, "message": {"text": args.get("text")}}

    def m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = f"1700000000.{next(self._ts):06d}"
        self.messages.append(Posted(channel=args["channel"], ts=ts, body=args, ephemeral=True))
        return {"message_ts": ts}

    def m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        target = next((m for m in self.messages if m.ts == args["ts"]), None)
        if target is None:
            return {"ok": False, "error": "message_not_found"}
        target.body = {**args}
        return {"channel": args["channel"], "ts": args["ts"]}

    def m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = {**args["view"], "id": f"V{len(self.views) + 1}", "trigger_id": args["trigger_id"]}
        self.views.append(view)
        return {"view": view}


def make_settings(api_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        db_path=":memory:",
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=api_url,
        slack_team_id=PARTNER,
        users=(
            UserConfig(name="ana", role=Role.AGENT, slack="UANA"),
            UserConfig(name="lena", role=Role.LEAD, slack="ULENA"),
        ),
        customers=(
            CustomerConfig(
                name="Contoso", tenant_id=TENANT_A, owner="lena", slack_channels=("CCONTOSO",)
            ),
            CustomerConfig(name="Fabrikam", tenant_id=TENANT_B, owner="lena"),
        ),
    )
    base.update(overrides)
    return Settings(**base)


@dataclass
class SlackEnv:
    """The bot's real server, reached over HTTP with signed Slack requests."""

    client: TestClient
    fake: FakeSlack
    runtime: Runtime
    settings: Settings
    _events: itertools.count = field(default_factory=lambda: itertools.count(1))
    _triggers: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def settle(self) -> None:
        """Wait until every recorded request was worked off (and its answer sent)."""
        await self.runtime.wait_idle()

    async def eventually(self, probe: Callable[[], Any], timeout: float = 5.0) -> Any:
        """The first truthy ``probe()`` (background work such as the scheduler's DMs)."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found or time.monotonic() > deadline:
                assert found, "timed out waiting"
                return found
            await asyncio.sleep(0.02)

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        signed: bool = True,
        settle: bool = True,
    ) -> tuple[int, str]:
        h = {"Content-Type": content_type, **(sign(body) if signed else {}), **(headers or {})}
        resp = await self.client.post("/slack/events", data=body.encode(), headers=h)
        text = await resp.text()
        if settle:
            await self.settle()
        return resp.status, text

    def trigger(self) -> str:
        return f"{next(self._triggers)}.738474920.8088930838d88f008e0"

    async def command(
        self, text: str, *, user: str = "UANA", channel: str = "CGENERAL", settle: bool = True
    ) -> tuple[int, str]:
        """``/billing text`` typed by ``user`` in ``channel`` (form-encoded, as Slack sends it)."""
        fields = load("slash_command")
        fields.update(
            team_id=USERS.get(user, {}).get("team", PARTNER),
            channel_id=channel,
            channel_name="directmessage" if channel.startswith("D") else "general",
            user_id=user,
            user_name=USERS.get(user, {}).get("name", user.lower()),
            text=text,
            response_url=self.fake.response_url(),
            trigger_id=self.trigger(),
        )
        return await self.post(
            urllib.parse.urlencode(fields), "application/x-www-form-urlencoded", settle=settle
        )

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry: int | None = None,
        fixture: str = "event_message_im",
    ) -> tuple[int, str]:
        body = load(fixture)
        body["team_id"] = PARTNER
        body["event"] = event
        body["event_id"] = event_id or f"Ev{next(self._events):08d}"
        body["authorizations"] = [
            {"team_id": PARTNER, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
        ]
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(
            json.dumps(body), "application/json", headers=headers if retry else None
        )

    async def dm(
        self,
        text: str,
        *,
        user: str = "UANA",
        event_id: str | None = None,
        retry: int | None = None,
    ) -> tuple[int, str]:
        """A direct message to the bot (``message.im``)."""
        event = load("event_message_im")["event"]
        event.update(user=user, text=text, channel="D" + user.lstrip("U"))
        return await self.event(event, event_id=event_id, retry=retry)

    async def mention(
        self, text: str, *, user: str = "UANA", channel: str = "CGENERAL"
    ) -> tuple[int, str]:
        event = load("event_app_mention")["event"]
        event.update(user=user, text=f"<@{BOT_USER}> {text}", channel=channel)
        return await self.event(event, fixture="event_app_mention")

    async def click(
        self, message: Posted, name: str, *, user: str = "UANA", settle: bool = True
    ) -> tuple[int, str]:
        """``user`` clicks the ``name`` button of ``message`` (a ``block_actions`` payload)."""
        button = message.button(name)
        body = load("block_actions")
        team = USERS.get(user, {}).get("team", PARTNER)
        body["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}
        body["team"] = {"id": team, "domain": "partner"}
        channel = message.channel if message.channel != "(response_url)" else "CGENERAL"
        body["container"] = {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": channel,
            "is_ephemeral": message.ephemeral,
        }
        body["channel"] = {"id": channel, "name": "general"}
        body["message"] = {"type": "message", "ts": message.ts, **message.body}
        body["trigger_id"] = self.trigger()
        body["response_url"] = message.response_url or self.fake.response_url()
        body["actions"] = [
            {
                "action_id": button["action_id"],
                "block_id": "b1",
                "text": button["text"],
                "value": button["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ]
        form = urllib.parse.urlencode({"payload": json.dumps(body)})
        return await self.post(form, "application/x-www-form-urlencoded", settle=settle)

    async def submit(
        self, view: dict[str, Any], values: dict[str, str], *, user: str = "UANA"
    ) -> tuple[int, dict[str, Any]]:
        """``user`` fills ``view`` (a modal the bot opened) with ``values`` and submits it."""
        body = load("view_submission")
        team = USERS.get(user, {}).get("team", PARTNER)
        body["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}
        body["team"] = {"id": team, "domain": "partner"}
        state: dict[str, Any] = {}
        for block in view["blocks"]:
            if block.get("type") != "input":
                continue
            element = block["element"]
            value = values.get(block["block_id"])
            if element["type"] == "static_select":
                option = next((o for o in element["options"] if o["value"] == value), None)
                state[block["block_id"]] = {
                    "value": {"type": "static_select", "selected_option": option}
                }
            elif element["type"] == "users_select":
                state[block["block_id"]] = {
                    "value": {"type": "users_select", "selected_user": value}
                }
            else:
                state[block["block_id"]] = {"value": {"type": "plain_text_input", "value": value}}
        body["view"] = {
            **body["view"],
            "id": view.get("id", "V1"),
            "blocks": view["blocks"],
            "private_metadata": view["private_metadata"],
            "callback_id": view["callback_id"],
            "title": view["title"],
            "state": {"values": state},
        }
        form = urllib.parse.urlencode({"payload": json.dumps(body)})
        status, text = await self.post(form, "application/x-www-form-urlencoded")
        return status, (json.loads(text) if text.strip().startswith("{") else {})

    async def case(self, number: int) -> Any:
        return await self.runtime.store.get_case(number)


ASK_VALUES = {"customer": "Contoso", "category": "charges"}


async def new_case(
    env: SlackEnv,
    description: str,
    *,
    customer: str = "Contoso",
    user: str = "UANA",
    channel: str = "CGENERAL",
) -> Posted:
    """``/billing ask`` → the modal → submitted: the case card the bot posts in the channel."""
    before = len(env.fake.messages)
    await env.command(f"ask {description}", user=user, channel=channel)
    view = env.fake.last_view()
    values = {**ASK_VALUES, "customer": customer, "description": description}
    status, answer = await env.submit(view, values, user=user)
    assert status == 200 and answer == {}, answer
    cards = [m for m in env.fake.messages[before:] if "BILL-" in m.text and m.buttons()]
    posted = cards[-1] if cards else env.fake.messages[-1]
    return posted
