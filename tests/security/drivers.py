"""The matrix's channel drivers: the same three gestures (type, click, submit) per channel.

* :class:`LocalDriver` — :meth:`Runtime.handle` with local-channel messages;
* :class:`WebDriver` — the web page's HTTP routes: name login on loopback,
  ``POST /chat/send`` with the session's CSRF token;
* :class:`SlackDriver` — signed slash commands, ``block_actions`` and
  ``view_submission`` payloads to the real aiohttp app; what the bot posted
  is read back from the fake Web API (``tests/slack/slackfake.py``);
* :class:`TeamsDriver` — Bot Framework activities to ``/api/messages``
  (Emulator mode on loopback); answers read from the fake Bot Connector.

Each person of the matrix is a real identity of that channel whose role
comes from the config exactly as in production: a configured user, a user
of another workspace/tenant in a channel mapped to a customer, a stranger.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app.server import RUNTIME, build_app
from bot.app.wiring import build_runtime
from bot.clock import FakeClock
from bot.config import CustomerConfig
from bot.kernel.model import ActionRef, Channel, Message, Reply
from bot.storage import MemoryEngine, Store, open_store
from conversations.runtime import Runtime
from conversations.text import plain
from tests.security.matrix import Answer, Person, seed_world
from tests.slack.slackfake import FakeSlack

LOCAL_NAMES = {
    "agent": "alice",
    "lead": "lena",
    "customer_a": "carol",
    "customer_b": "dave",
    "none": "nora",
}


def reply_answer(replies: list[Reply]) -> Answer:
    """What a person reads of neutral replies (the local channel shows all of it)."""
    answer = Answer()
    for r in replies:
        parts = [r.text, *(b.label for b in r.buttons)]
        if r.card is not None:
            c = r.card
            parts += [c.title, c.state_label, *c.history, *(b.label for b in c.buttons)]
            parts += [f"{f.label}: {f.value}" for f in c.facts]
        if r.form is not None:
            f = r.form
            answer.forms.add(f.form_id)
            parts += [f.title, f.intro or "", *f.errors.values()]
            parts += [f"{x.label} {x.value or ''} {x.hint or ''}" for x in f.fields]
        answer.add(plain("\n".join(p for p in parts if p)), asdict(r))
    return answer


async def clear_forms(runtime: Runtime) -> None:
    """End every open field-by-field form, so the next cell's command is a command."""
    for key in list(runtime.store.engine.view("conversations")):
        if key.split("|", 1)[0] in {c.value for c in Channel}:
            await runtime.store.save_conversation(key, None)


class LocalDriver:
    """The local channel: :meth:`Runtime.handle`, as ``billing-bot chat`` and the endpoint use."""

    channel = "local"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def _run(self, who: Person, **kw: Any) -> Answer:
        name = LOCAL_NAMES[who.key]
        msg = Message(Channel.LOCAL, name, f"dm:{name}", user_name=name, **kw)
        return reply_answer((await self.runtime.handle(msg)).replies)

    async def send(self, who: Person, text: str) -> Answer:
        return await self._run(who, text=text)

    async def click(self, who: Person, ref: ActionRef) -> Answer:
        return await self._run(who, action=ref)

    async def submit(
        self, who: Person, form_id: str, values: dict[str, str], ctx: dict[str, str]
    ) -> Answer:
        return await self._run(who, form_id=form_id, form_values=values, form_context=ctx)


# ------------------------------------------------------------------------------ web
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_FORM_ID = re.compile(r'data-form-id="([^"]+)"')
_ECHO = re.compile(r'<div class="msg me">.*?</div>', re.DOTALL)


class WebDriver:
    """The web page over HTTP, one logged-in browser (cookie jar) per person."""

    channel = "web"

    def __init__(self, runtime: Runtime, clients: dict[str, TestClient]) -> None:
        self.runtime = runtime
        self.clients = clients
        self.csrf: dict[str, str] = {}

    async def login(self) -> None:
        for key, client in self.clients.items():
            page = await (await client.get("/login")).text()
            csrf = _CSRF.search(page)
            assert csrf, page[:500]
            data = {"csrf": csrf.group(1), "name": LOCAL_NAMES[key], "next": "/"}
            resp = await client.post("/login", data=data, allow_redirects=False)
            assert resp.status == 303, await resp.text()
            page = await (await client.get("/")).text()
            csrf = _CSRF.search(page)
            assert csrf, page[:500]
            self.csrf[key] = csrf.group(1)

    async def _post(self, who: Person, data: dict[str, str]) -> Answer:
        client = self.clients[who.key]
        resp = await client.post(
            "/chat/send",
            data={"csrf": self.csrf[who.key], **data},
            headers={"X-Requested-With": "fetch"},
            allow_redirects=False,
        )
        html = await resp.text()
        assert resp.status == 200, (resp.status, html[:500])
        answer = Answer(forms=set(_FORM_ID.findall(html)))
        shown = _ECHO.sub("", html)  # the person's own words, echoed back, are not a leak
        answer.add(shown, shown)
        return answer

    async def send(self, who: Person, text: str) -> Answer:
        return await self._post(who, {"text": text})

    async def click(self, who: Person, ref: ActionRef) -> Answer:
        return await self._post(who, {"action": ref.to_value()})

    async def submit(
        self, who: Person, form_id: str, values: dict[str, str], ctx: dict[str, str]
    ) -> Answer:
        data = {"form_id": form_id}
        data.update({f"f_{k}": v for k, v in values.items()})
        data.update({f"ctx_{k}": v for k, v in ctx.items()})
        return await self._post(who, data)


# ---------------------------------------------------------------------------- Slack
class SlackDriver:
    """Signed requests to ``POST /slack/events``; answers read back from the fake Web API."""

    channel = "slack"

    # person → (Slack user, channel they write in)
    PEOPLE = {
        "agent": ("UANA", "CGENERAL"),
        "lead": ("ULENA", "CGENERAL"),
        "customer_a": ("UCARL", "CCONTOSO"),
        "customer_b": ("UFABI", "CFABRIKAM"),
        "none": ("USTRANGER", "CGENERAL"),
    }

    def __init__(self, runtime: Runtime, client: TestClient, fake: Any) -> None:
        self.runtime = runtime
        self.client = client
        self.fake = fake
        self.people = dict(self.PEOPLE)  # a test may seat someone elsewhere
        self._n = itertools.count(1)

    async def _post(self, body: str, content_type: str) -> tuple[int, str]:
        from tests.slack.slackfake import sign

        headers = {"Content-Type": content_type, **sign(body)}
        resp = await self.client.post("/slack/events", data=body.encode(), headers=headers)
        text = await resp.text()
        await self.runtime.wait_idle()
        return resp.status, text

    def _collect(self, who: Person, since: tuple[int, int], urls: set[str], http: str) -> Answer:
        user, channel = self.people[who.key]
        mine = {channel, "D" + user.lstrip("U")}
        answer = Answer()
        for m in self.fake.messages[since[0] :]:
            if m.channel in mine or (m.response_url and m.response_url in urls):
                answer.add(m.text, m.body)
        for view in self.fake.views[since[1] :]:
            meta = json.loads(view.get("private_metadata") or "{}")
            if meta.get("f"):
                answer.forms.add(str(meta["f"]))
            answer.add(_view_text(view), view)
        if http.strip().startswith("{"):
            answer.add(_view_text(json.loads(http).get("view") or {}) + http, http)
        return answer

    def _mark(self) -> tuple[int, int]:
        return len(self.fake.messages), len(self.fake.views)

    def _trigger(self) -> str:
        return f"{next(self._n)}.738474920.{uuid.uuid4().hex[:20]}"

    async def send(self, who: Person, text: str) -> Answer:
        from tests.slack.slackfake import load

        user, channel = self.people[who.key]
        url = self.fake.response_url()
        fields = load("slash_command")
        fields.update(
            team_id=SLACK_TEAMS[user],
            channel_id=channel,
            channel_name="general",
            user_id=user,
            user_name=user.lower(),
            text=text,
            response_url=url,
            trigger_id=self._trigger(),
        )
        mark = self._mark()
        status, http = await self._post(
            urllib.parse.urlencode(fields), "application/x-www-form-urlencoded"
        )
        assert status == 200, (status, http)
        return self._collect(who, mark, {url}, http)

    def _envelope(self, kind: str, who: Person) -> dict[str, Any]:
        from tests.slack.slackfake import load

        user, channel = self.people[who.key]
        team = SLACK_TEAMS[user]
        body = load(kind)
        body["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}
        body["team"] = {"id": team, "domain": "partner"}
        return body

    async def click(self, who: Person, ref: ActionRef) -> Answer:
        user, channel = self.people[who.key]
        body = self._envelope("block_actions", who)
        url = self.fake.response_url()
        ts = f"1700000001.{next(self._n):06d}"
        body["container"] = {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        body["channel"] = {"id": channel, "name": "general"}
        body["message"] = {"type": "message", "ts": ts, "text": "a card", "blocks": []}
        body["trigger_id"] = self._trigger()
        body["response_url"] = url
        body["actions"] = [
            {
                "action_id": ref.name,
                "block_id": "b1",
                "text": {"type": "plain_text", "text": ref.name},
                "value": ref.to_value(),
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ]
        mark = self._mark()
        form = urllib.parse.urlencode({"payload": json.dumps(body)})
        status, http = await self._post(form, "application/x-www-form-urlencoded")
        assert status == 200, (status, http)
        return self._collect(who, mark, {url}, http)

    async def submit(
        self, who: Person, form_id: str, values: dict[str, str], ctx: dict[str, str]
    ) -> Answer:
        from adapters.slack.translate import FORM_CALLBACK

        user, channel = self.people[who.key]
        body = self._envelope("view_submission", who)
        meta = {"f": form_id, "x": ctx, "cv": channel, "ch": channel, "d": False}
        state = {
            name: {"value": {"type": "plain_text_input", "value": value}}
            for name, value in values.items()
        }
        body["view"] = {
            **body["view"],
            "id": f"VM{next(self._n)}",
            "callback_id": FORM_CALLBACK,
            "private_metadata": json.dumps(meta),
            "blocks": [],
            "state": {"values": state},
        }
        mark = self._mark()
        form = urllib.parse.urlencode({"payload": json.dumps(body)})
        status, http = await self._post(form, "application/x-www-form-urlencoded")
        assert status == 200, (status, http)
        return self._collect(who, mark, set(), http)


SLACK_TEAMS = {
    "UANA": "TPARTNER",
    "ULENA": "TPARTNER",
    "UCARL": "TCONTOSO",
    "UFABI": "TFABRIKAM",
    "USTRANGER": "TSTRANGER",
}


def _view_text(view: dict[str, Any]) -> str:
    from tests.slack.slackfake import _block_texts

    out = [str((view.get("title") or {}).get("text", ""))]
    for block in view.get("blocks") or []:
        out += _block_texts(block)
        label = block.get("label")
        if isinstance(label, dict):
            out.append(str(label.get("text", "")))
    return "\n".join(out)


# ---------------------------------------------------------------------------- Teams
class TeamsDriver:
    """Activities to ``POST /api/messages``; answers read back from the fake Bot Connector."""

    channel = "teams"

    def __init__(self, runtime: Runtime, server: Any, connector: Any, people: dict[str, Any]):
        self.runtime = runtime
        self.server = server  # tests.teams.conftest.BotServer
        self.connector = connector
        self.people = people  # person key → (TeamsUser, conversation id or None, type)
        self._n = itertools.count(1)

    def _activity(self, who: Person, **kw: Any) -> dict[str, Any]:
        from tests.teams.conftest import Teams

        user, conversation, ctype = self.people[who.key]
        builder = Teams(self.connector)
        if ctype == "channel" and "value" not in kw:
            return builder.mention_bot(user, kw.pop("text", ""), conversation=conversation, **kw)
        return builder.activity(user, conversation=conversation, conversation_type=ctype, **kw)

    async def _post(self, activity: dict[str, Any]) -> Answer:
        from tests.teams.helpers import answers

        before = len(self.connector.calls)
        status = await self.server.post(activity)
        assert status in (200, 201), status
        answer = Answer()
        for call in answers(self.connector, activity, before):
            for card in call.cards:
                for action in card.get("actions", []):
                    form = (action.get("data") or {}).get("billing_form")
                    if form:
                        answer.forms.add(str(form))
            answer.add(call.everything(), call.body)
        return answer

    async def send(self, who: Person, text: str) -> Answer:
        return await self._post(self._activity(who, text=text))

    async def click(self, who: Person, ref: ActionRef) -> Answer:
        value = {
            "action": ref.name,
            "case_id": ref.case_id,
            "stage": ref.stage,
            "value": ref.value,
        }
        return await self._post(self._activity(who, value=value, reply_to=self._card_id()))

    async def submit(
        self, who: Person, form_id: str, values: dict[str, str], ctx: dict[str, str]
    ) -> Answer:
        value: dict[str, Any] = {"billing_form": form_id, "billing_context": ctx}
        value.update({f"f_{k}": v for k, v in values.items()})
        return await self._post(self._activity(who, value=value, reply_to=self._card_id()))

    def _card_id(self) -> str:
        return f"card-{next(self._n)}"


# ------------------------------------------------------------------------ servers
class MatrixSlack(FakeSlack):
    """The fake Web API, knowing the matrix's people and their workspaces."""

    def m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = str(args["user"])
        if uid not in SLACK_TEAMS:
            return super().m_users_info(args)
        name = uid[1:].title()
        return {
            "user": {
                "id": uid,
                "team_id": SLACK_TEAMS[uid],
                "name": name.lower(),
                "real_name": name,
                "tz": "Europe/Berlin",
                "locale": "en-US",
                "profile": {"display_name": name, "real_name": name, "team": SLACK_TEAMS[uid]},
            }
        }


@asynccontextmanager
async def slack_driver(**overrides: Any) -> AsyncIterator[SlackDriver]:
    """The bot's real app with Slack on, both customers mapped to Slack Connect channels."""
    from tests.slack.slackfake import START, TENANT_A, TENANT_B, make_settings

    fake = MatrixSlack()
    fake_server = TestServer(fake.app, host="127.0.0.1")
    await fake_server.start_server()
    fake.url = str(fake_server.make_url("")).rstrip("/")
    settings = make_settings(
        f"{fake.url}/api/",
        customers=(
            CustomerConfig(
                name="Contoso", tenant_id=TENANT_A, owner="lena", slack_channels=("CCONTOSO",)
            ),
            CustomerConfig(
                name="Fabrikam", tenant_id=TENANT_B, owner="lena", slack_channels=("CFABRIKAM",)
            ),
        ),
        **overrides,
    )
    app = build_app(settings, open_store(":memory:"), FakeClock(START, speed=1.0))
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            runtime = app[RUNTIME]
            await seed_world(runtime)
            yield SlackDriver(runtime, client, fake)
    finally:
        await fake_server.close()


FABRIKAM_CHANNEL = "19:fabrikam-shared@thread.tacv2"


@asynccontextmanager
async def teams_driver() -> AsyncIterator[TeamsDriver]:
    """The bot's real app with Teams in Emulator mode, both customers mapped to shared channels."""
    from tests.harness import TENANT_A, TENANT_B
    from tests.teams.conftest import (
        ALICE,
        CAROL,
        LENA,
        SHARED_CHANNEL,
        BotServer,
        FakeConnector,
        TeamsUser,
        teams_settings,
    )

    fabi = TeamsUser("fabi", "Fabi Fabrikam", "ffffffff-0000-4000-8000-00000000fab1", TENANT_B)
    stranger = TeamsUser(
        "stranger",
        "Sam Stranger",
        "55555555-0000-4000-8000-000000000555",
        "55555555-0000-4000-8000-00000000000f",  # a tenant nobody mapped
    )
    people = {
        "agent": (ALICE, None, "personal"),
        "lead": (LENA, None, "personal"),
        "customer_a": (CAROL, SHARED_CHANNEL, "channel"),
        "customer_b": (fabi, FABRIKAM_CHANNEL, "channel"),
        "none": (stranger, None, "personal"),
    }
    assert CAROL.tenant == TENANT_A
    connector = FakeConnector()
    server = TestServer(connector.app(), host="127.0.0.1")
    await server.start_server()
    connector.url = str(server.make_url("/")).rstrip("/")
    settings = teams_settings(
        ":memory:",
        customers=(
            CustomerConfig(
                name="Contoso",
                tenant_id=TENANT_A,
                owner="lena",
                teams_conversations=(SHARED_CHANNEL,),
            ),
            CustomerConfig(
                name="Fabrikam",
                tenant_id=TENANT_B,
                owner="lena",
                teams_conversations=(FABRIKAM_CHANNEL,),
            ),
        ),
    )
    bot = await BotServer(settings, connector).start()
    try:
        await seed_world(bot.runtime)
        yield TeamsDriver(bot.runtime, bot, connector, people)
    finally:
        await bot.close()
        await server.close()


@asynccontextmanager
async def web_driver() -> AsyncIterator[WebDriver]:
    """The bot's real app and one logged-in browser per person (loopback: a name is enough)."""
    from tests.harness import START, make_settings

    app = build_app(make_settings(), open_store(":memory:"), FakeClock(START, speed=1.0))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    clients = {key: TestClient(server) for key in LOCAL_NAMES}  # one cookie jar per person
    try:
        for client in clients.values():
            await client.start_server()
        runtime = app[RUNTIME]
        await seed_world(runtime)
        web = WebDriver(runtime, clients)
        await web.login()
        yield web
    finally:
        for client in clients.values():
            await client.session.close()
        await server.close()


@asynccontextmanager
async def local_driver() -> AsyncIterator[LocalDriver]:
    """A runtime on an in-memory store, as ``billing-bot chat`` runs one without a serve."""
    from tests.harness import START, make_settings

    store = Store(MemoryEngine())
    await store.open()
    runtime = build_runtime(make_settings(), store, FakeClock(START))
    try:
        await seed_world(runtime)
        yield LocalDriver(runtime)
    finally:
        await runtime.close()
        await store.close()
