"""The edges where a forged request could act: Slack signatures, Teams tokens, loopback-only routes.

* Slack: Slack's own worked example (docs "Verifying requests from Slack")
  signs correctly with our test signer and with slack_sdk's verifier, and is
  refused as stale (401) by the running bot; the 5-minute window both ways;
  wrong, missing and malformed signatures; a replay inside the window is
  done once.
* Teams: with an app id, tokens the Bot Framework did not issue are refused
  (``alg: none``, an HS256 token keyed with the app password, an RS256 token
  from a key of our own), and nothing is recorded; without an app id the
  channel is on only when the server is bound to loopback.
* Local endpoints and the web page: a server bound to this machine's own
  non-loopback address answers ``/local/*`` with 403 and sends the web page
  to the token login; the predicates themselves with a fake remote address.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request

from bot.clock import FakeClock
from bot.domain import State
from bot.server import build_app, is_loopback, local_messages
from bot.storage import open_store
from tests.security.drivers import SlackDriver, slack_driver
from tests.security.matrix import SEEDER, seed_case
from tests.slack.slackfake import SECRET, load, sign

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Slack's worked example, from its request-verification docs.
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TS = 1531420618
DOC_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    "%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
FORM = "application/x-www-form-urlencoded"


# ---------------------------------------------------------------------------- Slack
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack() -> AsyncIterator[SlackDriver]:
    async with slack_driver() as driver:
        yield driver


def recorded(driver: SlackDriver) -> dict[str, Any]:
    engine = driver.runtime.store.engine
    return {"inbox": dict(engine.view("inbox")), "events": dict(engine.view("events"))}


async def post(driver: SlackDriver, body: str, headers: dict[str, str], ctype: str = FORM) -> int:
    resp = await driver.client.post(
        "/slack/events", data=body.encode(), headers={"Content-Type": ctype, **headers}
    )
    await resp.read()
    await driver.runtime.wait_idle()
    return resp.status


def command_body(driver: SlackDriver, text: str, trigger: str = "1.2.3") -> str:
    fields = load("slash_command")
    fields.update(
        team_id="TPARTNER",
        channel_id="CGENERAL",
        user_id="ULENA",
        text=text,
        response_url=driver.fake.response_url(),
        trigger_id=trigger,
    )
    return urllib.parse.urlencode(fields)


async def test_the_worked_example_signs_as_slack_documents() -> None:
    from slack_sdk.signature import Clock, SignatureVerifier

    assert SECRET == DOC_SECRET  # the Slack tests' signing secret is the documented one
    assert sign(DOC_BODY, DOC_SECRET, DOC_TS)["X-Slack-Signature"] == DOC_SIGNATURE

    class Then(Clock):
        def now(self) -> float:
            return DOC_TS + 30.0

    verifier = SignatureVerifier(DOC_SECRET, clock=Then())
    assert verifier.is_valid(DOC_BODY, str(DOC_TS), DOC_SIGNATURE)
    assert not SignatureVerifier(DOC_SECRET).is_valid(DOC_BODY, str(DOC_TS), DOC_SIGNATURE)


async def test_the_worked_example_is_refused_as_stale(slack: SlackDriver) -> None:
    before = recorded(slack)
    headers = {"X-Slack-Request-Timestamp": str(DOC_TS), "X-Slack-Signature": DOC_SIGNATURE}
    assert await post(slack, DOC_BODY, headers) == 401
    assert recorded(slack) == before
    assert slack.fake.calls_to("users.info") == []


@pytest.mark.parametrize(
    ("why", "offset", "status"),
    [
        ("now", 0, 200),
        ("four minutes old", -240, 200),
        ("five and a half minutes old", -330, 401),
        ("an hour old", -3600, 401),
        ("five and a half minutes ahead", 330, 401),
    ],
)
async def test_the_five_minute_window(
    slack: SlackDriver, why: str, offset: int, status: int
) -> None:
    body = command_body(slack, "help", trigger=f"window-{offset}")
    before = recorded(slack)
    assert await post(slack, body, sign(body, ts=int(time.time()) + offset)) == status, why
    if status == 401:
        assert recorded(slack) == before


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "{now}"},
        {"X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": ""},
        {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": "v1={sig}"},
        {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": "v0={sig}00"},
        {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": "{other_secret}"},
        {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": "{other_body}"},
    ],
    ids=[
        "none",
        "no signature",
        "no timestamp",
        "garbage timestamp",
        "empty signature",
        "other version",
        "longer signature",
        "another secret",
        "another body",
    ],
)
async def test_forged_signatures_get_401_and_record_nothing(
    slack: SlackDriver, headers: dict[str, str]
) -> None:
    body = command_body(slack, "customers")
    now = int(time.time())
    good = sign(body, ts=now)["X-Slack-Signature"].removeprefix("v0=")
    values = {
        "now": str(now),
        "sig": good,
        "other_secret": sign(body, secret="not-the-secret", ts=now)["X-Slack-Signature"],
        "other_body": sign(body + "&x=1", ts=now)["X-Slack-Signature"],
    }
    filled = {k: v.format(**values) for k, v in headers.items()}
    before = recorded(slack)
    calls = len(slack.fake.calls)
    assert await post(slack, body, filled) == 401
    assert recorded(slack) == before
    assert len(slack.fake.calls) == calls


async def test_a_replay_inside_the_window_is_done_once(slack: SlackDriver) -> None:
    case = await seed_case(slack.runtime, State.IN_PROGRESS)
    body = command_body(slack, f"note {case.id} replayed once", trigger="replay-1")
    headers = sign(body)
    for _ in range(3):
        assert await post(slack, body, headers) == 200
    event = load("event_message_im")
    event["event"].update(user="ULENA", text=f"note {case.id} event once", channel="DLENA")
    event.update(team_id="TPARTNER", event_id="EvReplay1")
    raw = json.dumps(event)
    for _ in range(3):
        assert await post(slack, raw, sign(raw), "application/json") == 200
    notes = [n.text for n in (await slack.runtime.store.get_case(case.number)).notes]  # type: ignore[union-attr]
    assert notes.count("replayed once") == 1
    assert notes.count("event once") == 1


# ---------------------------------------------------------------------------- Teams
APP_ID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
APP_PASSWORD = "teams-app-password-for-the-security-tests"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens() -> dict[str, str]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    now = int(time.time())
    claims = {
        "iss": "https://api.botframework.com",
        "aud": APP_ID,
        "exp": now + 600,
        "nbf": now - 10,
        "serviceurl": "http://127.0.0.1:9/",
    }
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "HS256 with the app password": jwt.encode(claims, APP_PASSWORD, algorithm="HS256"),
        "RS256 from our own key": jwt.encode(claims, key, algorithm="RS256", headers={"kid": "x"}),
        "expired": jwt.encode({**claims, "exp": now - 60}, key, algorithm="RS256"),
    }


async def test_teams_with_an_app_id_refuses_tokens_it_did_not_get_from_microsoft(
    tmp_path: Any,
) -> None:
    from tests.teams.conftest import ALICE, BotServer, FakeConnector, Teams, teams_settings

    connector = FakeConnector()
    fake = TestServer(connector.app(), host="127.0.0.1")
    await fake.start_server()
    connector.url = str(fake.make_url("/")).rstrip("/")
    settings = teams_settings(
        ":memory:",
        teams_app_id=APP_ID,
        teams_app_password=APP_PASSWORD,
        teams_app_type="MultiTenant",
    )
    server = await BotServer(settings, connector).start()
    try:
        body = json.dumps(Teams(connector).say(ALICE, "customers"))
        for why, token in forged_tokens().items():
            resp = await server.post_raw(body, Authorization=f"Bearer {token}")
            assert resp.status == 401, why
        resp = await server.post_raw(body)
        assert resp.status == 401
        await server.idle()
        assert server.store.engine.view("inbox") == {}
        assert server.store.engine.view("events") == {}
        assert connector.calls == []
    finally:
        await server.close()
        await fake.close()


# -------------------------------------------------------------- beyond loopback
def own_address() -> str | None:
    """A non-loopback address of this machine that a server can bind, if there is one."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for address in out.stdout.split():
        if ":" in address or is_loopback(address):
            continue
        with socket.socket() as probe:
            try:
                probe.bind((address, 0))
            except OSError:
                continue
        return address
    return None


ADDRESS = own_address()
LOCAL_ROUTES = [
    ("POST", "/local/messages", {"user": SEEDER, "text": "customers"}),
    ("GET", "/local/inbox?user=lena", None),
    ("GET", "/local/reminders?user=lena&at=2026-11-24T09:00:00%2B00:00", None),
    ("POST", "/local/receivables", {"csv": "customer,invoice\n"}),
    ("POST", "/local/demo-data", {}),
]
WEB_PAGES = ["/", "/chat", "/dashboard", "/dashboard/cases.csv", "/cases/BILL-1", "/chat/inbox"]


@pytest.mark.skipif(ADDRESS is None, reason="this machine has no non-loopback address to bind")
async def test_a_server_on_a_public_address_opens_nothing_without_a_login() -> None:
    from tests.harness import START
    from tests.web.helpers import TOKENS, web_settings

    assert ADDRESS is not None
    settings = web_settings(host=ADDRESS)
    app = build_app(settings, open_store(":memory:"), FakeClock(START, speed=1.0))
    server = TestServer(app, host=ADDRESS)
    await server.start_server()
    base = f"http://{ADDRESS}:{server.port}"
    jar = aiohttp.CookieJar(unsafe=True)
    try:
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            for method, path, payload in LOCAL_ROUTES:
                async with http.request(method, base + path, json=payload) as resp:
                    assert resp.status == 403, path
            for path in WEB_PAGES:
                async with http.get(base + path, allow_redirects=False) as resp:
                    assert resp.status == 303, path
                    assert resp.headers["Location"].startswith("/login"), path
            async with http.get(base + "/login") as resp:
                page = await resp.text()
            csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
            async with http.post(
                base + "/chat/send", data={"csrf": csrf, "text": "customers"}
            ) as resp:
                assert resp.status == 401
            async with http.post(
                base + "/login", data={"csrf": csrf, "name": "lena"}, allow_redirects=False
            ) as resp:
                assert resp.status == 401  # a name alone is not enough here
            async with http.post(
                base + "/api/messages", json={"type": "message", "text": "help"}
            ) as resp:
                assert resp.status == 503  # Teams Emulator mode is loopback only
            async with http.get(base + "/healthz") as resp:
                health = await resp.json()
            assert health["channels"]["teams"]["on"] is False
            async with http.post(
                base + "/login",
                data={"csrf": csrf, "name": "lena", "token": TOKENS["lena"], "next": "/"},
                allow_redirects=False,
            ) as resp:
                assert resp.status == 303
            async with http.get(base + "/dashboard", allow_redirects=False) as resp:
                assert resp.status == 200  # with the token, the lead's dashboard
    finally:
        await server.close()


def remote(address: str, path: str = "/", **kw: Any) -> web.Request:
    """A request as if it came from ``address`` (the predicates, without a second machine)."""
    from unittest import mock

    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (address, 40000) if name == "peername" else default
    )
    return make_mocked_request("POST", path, transport=transport, **kw)


async def test_the_loopback_predicates_with_a_fake_remote() -> None:
    from adapters.web.auth import WebConfig, login_required
    from tests.web.helpers import web_settings

    on_loopback = web_settings()
    for address in ("203.0.113.7", "192.0.2.2", "::ffff:203.0.113.7", "10.0.0.1"):
        request = remote(address, headers={"Host": "127.0.0.1:3978"})
        assert request.remote == address
        assert login_required(request, on_loopback, WebConfig()) is True
        response = await local_messages(request)
        assert response.status == 403
    trusted = remote("127.0.0.1", headers={"Host": "127.0.0.1:3978"})
    assert login_required(trusted, on_loopback, WebConfig()) is False
    proxied = remote("127.0.0.1", headers={"Host": "127.0.0.1", "X-Forwarded-For": "203.0.113.7"})
    assert login_required(proxied, on_loopback, WebConfig()) is True
    public = web_settings(host="0.0.0.0")
    assert login_required(trusted, public, WebConfig()) is True
    assert login_required(trusted, on_loopback, WebConfig(require_login=True)) is True
