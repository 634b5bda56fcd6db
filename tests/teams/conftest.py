"""Teams test fixtures: a fake Bot Connector on 127.0.0.1 and the real bot server.

The fake connector records every call the bot makes to
``{serviceUrl}/v3/conversations/…`` and answers like the Bot Connector does
(activity ids, member look-ups, new 1:1 conversations). A conversation can be
told to fail (403 for a user who blocked the bot) or to hold its answers
(to show the bot acknowledges Teams before it answers).

The bot runs as in production: ``build_app`` on a TinyDB store, served over
real HTTP on 127.0.0.1; nothing inside it is patched. Activities are shaped
like Teams': ``channelId`` msteams, ``channelData.tenant.id``,
``from.aadObjectId``, ``conversation.conversationType``, ``serviceUrl``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app.server import RUNTIME, build_app
from bot.clock import FakeClock
from bot.config import CustomerConfig, Settings, UserConfig
from bot.domain import Role
from bot.storage import open_store

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PARTNER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CONTOSO_TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
SHARED_CHANNEL = "19:contoso-shared@thread.tacv2"
BILLING_CHANNEL = "19:billing-team@thread.tacv2"
BOT_ID = "28:bot-app-id"
BOT_NAME = "Billing Desk"


@dataclass(frozen=True)
class TeamsUser:
    """A Teams user: the ``29:`` id Teams routes by, the AAD object id, a name, a tenant."""

    key: str
    name: str
    aad: str
    tenant: str = PARTNER_TENANT

    @property
    def id(self) -> str:
        return f"29:1{self.key}-teams-id"

    @property
    def dm(self) -> str:
        return f"a:1dm-{self.key}"

    def account(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad}


ALICE = TeamsUser("alice", "Alice Agent", "00000000-0000-4000-8000-0000000a11ce")
LENA = TeamsUser("lena", "Lena Lead", "00000000-0000-4000-8000-000000001e4a")
BOB = TeamsUser("bob", "Bob Agent", "00000000-0000-4000-8000-000000000b0b")
MARIA = TeamsUser("maria", "Maria Lopez", "00000000-0000-4000-8000-00000000aa1a")  # not configured
CAROL = TeamsUser("carol", "Carol Customer", "cccccccc-0000-4000-8000-00000000ca01", CONTOSO_TENANT)


@dataclass
class Call:
    """One request the bot made to the fake Bot Connector."""

    method: str
    path: str
    conversation: str
    activity_id: str | None
    body: dict[str, Any]
    authorization: str | None
    response_id: str | None = None

    @property
    def card_id(self) -> str:
        """The id of the message this call created or updated (what a click's replyToId is)."""
        card = self.response_id if self.method == "POST" else self.activity_id
        assert card, self
        return card

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [
            a["content"]
            for a in self.body.get("attachments") or []
            if a.get("contentType") == "application/vnd.microsoft.card.adaptive"
        ]

    @property
    def card(self) -> dict[str, Any]:
        cards = self.cards
        assert cards, f"no card in {self.body}"
        return cards[0]

    def card_text(self) -> str:
        """Every text of the first card (TextBlocks, facts, input labels and values)."""
        out: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key in ("text", "title", "value", "label", "placeholder"):
                    if isinstance(node.get(key), str):
                        out.append(node[key])
                for child in node.values():
                    walk(child)
            elif isinstance(node, list):
                for child in node:
                    walk(child)

        for card in self.cards:
            walk(card.get("body"))
        return "\n".join(out)

    def everything(self) -> str:
        return self.text + "\n" + self.card_text()

    def actions(self) -> list[dict[str, Any]]:
        return [a for c in self.cards for a in c.get("actions", [])]

    def action(self, title: str) -> dict[str, Any]:
        for a in self.actions():
            if a.get("title") == title:
                return a
        titles = [a.get("title") for a in self.actions()]
        raise AssertionError(f"no button {title!r}; have {titles}")


@dataclass
class FakeConnector:
    """The Bot Connector service, as far as the bot uses it."""

    calls: list[Call] = field(default_factory=list)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)  # conversation id -> HTTP status
    fail_next: dict[str, list[int]] = field(default_factory=dict)  # statuses for the next calls
    gate: asyncio.Event | None = None  # when set up, answers wait until it is set
    url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def app(self) -> web.Application:
        app = web.Application()
        conv = r"{conv:[^/]+}"
        app.router.add_post("/v3/conversations", self.create)
        app.router.add_post(f"/v3/conversations/{conv}/activities", self.post)
        app.router.add_post(f"/v3/conversations/{conv}/activities/{{aid}}", self.post)
        app.router.add_put(f"/v3/conversations/{conv}/activities/{{aid}}", self.put)
        app.router.add_get(f"/v3/conversations/{conv}/members/{{mid}}", self.member)
        return app

    async def _record(self, request: web.Request) -> tuple[Call, web.Response | None]:
        body = await request.json() if request.can_read_body else {}
        call = Call(
            request.method,
            request.path,
            request.match_info.get("conv", ""),
            request.match_info.get("aid"),
            body,
            request.headers.get("Authorization"),
        )
        self.calls.append(call)
        if self.gate is not None:
            await self.gate.wait()
        status = self.fail.get(call.conversation)
        if self.fail_next.get(call.conversation):
            status = self.fail_next[call.conversation].pop(0)
        if status:
            error = {"error": {"code": "BotDisabledByAdmin", "message": "blocked"}}
            return call, web.json_response(error, status=status)
        return call, None

    async def post(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request)
        if failed:
            return failed
        call.response_id = f"act-{next(self._ids)}"
        return web.json_response({"id": call.response_id}, status=201)

    async def put(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request)
        return failed or web.json_response({"id": call.activity_id})

    async def create(self, request: web.Request) -> web.Response:
        call, failed = await self._record(request)
        if failed:
            return failed
        member = (call.body.get("members") or [{}])[0].get("id", "x")
        return web.json_response({"id": f"a:1created-{member}"}, status=201)

    async def member(self, request: web.Request) -> web.Response:
        _call, failed = await self._record(request)
        if failed:
            return failed
        mid = request.match_info["mid"]
        if mid not in self.members:
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        return web.json_response(self.members[mid])

    # ---- what tests read
    async def wait_for(self, condition: Any, timeout: float = 8.0) -> None:
        """Wait until ``condition()`` holds (DMs go out from the background scheduler)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; calls: {[c.path for c in self.calls]}")
            await asyncio.sleep(0.02)

    def to(self, conversation: str, method: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.conversation == conversation and (method is None or c.method == method)
        ]

    def posts(self, conversation: str) -> list[Call]:
        return self.to(conversation, "POST")

    def updates(self, conversation: str) -> list[Call]:
        return self.to(conversation, "PUT")

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    fake = FakeConnector()
    for user in (ALICE, LENA, BOB, MARIA, CAROL):
        fake.members[user.id] = {**user.account(), "userPrincipalName": f"{user.key}@example.com"}
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/")).rstrip("/")
    yield fake
    if fake.gate is not None:
        fake.gate.set()
    await server.close()


def teams_settings(db_path: Path | str, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        db_path=str(db_path),
        host="127.0.0.1",
        port=3978,
        teams_partner_tenant_id=PARTNER_TENANT,
        users=(
            UserConfig(name="lena", role=Role.LEAD, display_name="Lena Lead", teams=LENA.aad),
            UserConfig(name="alice", role=Role.AGENT, display_name="Alice Agent", teams=ALICE.aad),
            UserConfig(name="bob", role=Role.AGENT, display_name="Bob Agent", teams=BOB.aad),
        ),
        customers=(
            CustomerConfig(
                name="Contoso",
                tenant_id=CONTOSO_TENANT,
                owner="lena",
                teams_conversations=(SHARED_CHANNEL,),
            ),
        ),
    )
    base.update(overrides)
    return Settings(**base)


class BotServer:
    """The real billing-bot server (``build_app``) on 127.0.0.1, restartable on the same store."""

    def __init__(self, settings: Settings, connector: FakeConnector) -> None:
        self.settings = settings
        self.connector = connector
        # Tuesday 09:00 UTC, running at real speed: reminders fall in working hours, and a
        # restarted server goes on from where the first one stopped.
        self.clock = FakeClock(START, speed=1.0)
        self.server: TestServer | None = None
        self.http: aiohttp.ClientSession | None = None
        self.app: web.Application | None = None

    async def start(self) -> BotServer:
        self.app = build_app(self.settings, open_store(self.settings.db_path), self.clock)
        self.server = TestServer(self.app, host="127.0.0.1")
        await self.server.start_server()
        if self.http is None:
            self.http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()  # runs the app's cleanup: the store is flushed and unlocked
            self.server = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def close(self) -> None:
        await self.stop()
        if self.http is not None:
            await self.http.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/")).rstrip("/")

    @property
    def runtime(self) -> Any:
        assert self.app is not None
        return self.app[RUNTIME]

    @property
    def store(self) -> Any:
        return self.runtime.store

    async def post_raw(
        self, body: bytes | str, content_type: str = "application/json", **headers: str
    ) -> aiohttp.ClientResponse:
        assert self.http is not None
        async with self.http.post(
            f"{self.url}/api/messages",
            data=body,
            headers={"Content-Type": content_type, **headers},
        ) as resp:
            await resp.read()
            return resp

    async def post(self, activity: dict[str, Any], *, wait: bool = True) -> int:
        resp = await self.post_raw(json.dumps(activity))
        if wait:
            await self.idle()
        return resp.status

    async def idle(self) -> None:
        await asyncio.wait_for(self.runtime.wait_idle(), 10)

    async def get(self, path: str) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.get(f"{self.url}{path}") as resp:
            return resp.status, await resp.json()

    async def local(self, user: str, text: str = "", **extra: Any) -> list[dict[str, Any]]:
        assert self.http is not None
        payload = {"user": user, "text": text, **extra}
        async with self.http.post(f"{self.url}/local/messages", json=payload) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        await self.idle()
        return list(body["replies"])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return teams_settings(tmp_path / "billing.json")


@pytest.fixture
async def bot(settings: Settings, connector: FakeConnector) -> AsyncIterator[BotServer]:
    server = BotServer(settings, connector)
    await server.start()
    yield server
    await server.close()


# ------------------------------------------------------------------ activities
class Teams:
    """Builds activities exactly as Teams posts them to the bot."""

    def __init__(self, connector: FakeConnector) -> None:
        self.connector = connector

    def activity(
        self,
        user: TeamsUser,
        *,
        text: str = "",
        conversation: str | None = None,
        conversation_type: str = "personal",
        value: dict[str, Any] | None = None,
        reply_to: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        activity_id: str | None = None,
        kind: str = "message",
        tz: str = "Europe/Berlin",
        **extra: Any,
    ) -> dict[str, Any]:
        conv_id = conversation or user.dm
        conv: dict[str, Any] = {"id": conv_id, "conversationType": conversation_type}
        conv["tenantId"] = user.tenant
        channel_data: dict[str, Any] = {"tenant": {"id": user.tenant}}
        if conversation_type == "channel":
            conv["isGroup"] = True
            base = conv_id.split(";messageid=")[0]
            channel_data["channel"] = {"id": base}
            channel_data["team"] = {"id": "19:team-general@thread.tacv2"}
        elif conversation_type == "groupChat":
            conv["isGroup"] = True
        body: dict[str, Any] = {
            "type": kind,
            "id": activity_id or f"1{uuid.uuid4().int % 10**12:012d}",
            "timestamp": "2026-11-24T09:00:00.000Z",
            "localTimestamp": "2026-11-24T10:00:00.000+01:00",
            "localTimezone": tz,
            "serviceUrl": f"{self.connector.url}/",
            "channelId": "msteams",
            "from": user.account(),
            "conversation": conv,
            "recipient": {"id": BOT_ID, "name": BOT_NAME},
            "entities": [
                {
                    "type": "clientInfo",
                    "locale": "en-US",
                    "country": "US",
                    "platform": "Web",
                    "timezone": tz,
                },
                *(entities or []),
            ],
            "channelData": channel_data,
            "locale": "en-US",
        }
        if kind == "message":
            body["textFormat"] = "plain"
            body["text"] = text
        if value is not None:
            body["value"] = value
        if reply_to is not None:
            body["replyToId"] = reply_to
        body.update(extra)
        return body

    def say(self, user: TeamsUser, text: str, **kw: Any) -> dict[str, Any]:
        return self.activity(user, text=text, **kw)

    def mention_bot(self, user: TeamsUser, text: str, **kw: Any) -> dict[str, Any]:
        """A channel or group message that @mentions the bot (and maybe others)."""
        entities = [
            {
                "type": "mention",
                "text": f"<at>{BOT_NAME}</at>",
                "mentioned": {"id": BOT_ID, "name": BOT_NAME},
            }
        ]
        for other in kw.pop("mentioning", []):
            entities.append(
                {
                    "type": "mention",
                    "text": f"<at>{other.name}</at>",
                    "mentioned": {"id": other.id, "name": other.name},
                }
            )
        kw.setdefault("conversation_type", "channel")
        return self.activity(user, text=f"<at>{BOT_NAME}</at> {text}", entities=entities, **kw)

    def click(self, user: TeamsUser, call: Call, title: str, **kw: Any) -> dict[str, Any]:
        """A click on a card button: Teams posts the Action.Submit data as ``value``."""
        action = call.action(title)
        return self.activity(
            user,
            value=dict(action["data"]),
            reply_to=call.card_id,
            conversation=call.conversation,
            **kw,
        )

    def submit(
        self, user: TeamsUser, call: Call, values: dict[str, str], **kw: Any
    ) -> dict[str, Any]:
        """A form card's submit: the button's data merged with every input, as Teams does.

        Inputs the test does not set keep what the card showed (pre-filled values).
        """
        submit = call.actions()[0]
        shown = {
            b["id"]: b.get("value", "")
            for b in call.card["body"]
            if str(b.get("type", "")).startswith("Input.")
        }
        value = {**shown, **submit["data"], **{f"f_{k}": v for k, v in values.items()}}
        return self.activity(
            user, value=value, reply_to=call.card_id, conversation=call.conversation, **kw
        )


@pytest.fixture
def teams(connector: FakeConnector) -> Teams:
    return Teams(connector)
