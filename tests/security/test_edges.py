"""The edges where a forged request could act: Slack signatures, Teams tokens, loopback-only routes.

* Slack: Slack's own worked example (docs "Verifying requests from Slack")
  signs correctly with our test signer and with slack_sdk's verifier, and is
  refused as stale (401) by the running bot; the 5-minute window both ways;
  wrong, missing and malformed signatures; a replay inside the window is
  done once.
* Teams: with an app id, tokens are checked against a fake Bot Framework
  issuer on 127.0.0.1 (OpenID configuration and JWKS, ``BOT_OPENID_METADATA``):
  a good token passes; a wrong or missing audience, a wrong issuer, an expired
  or not-yet-valid token, a wrong or missing ``serviceurl``, an unknown key
  id, another key under a known id, ``alg: none``, HS256 keyed with the app
  password or the public key, a key not endorsed for Teams, or no token at
  all get 401 for that reason (the log says which), and nothing is recorded;
  without an app id the channel is on only when the server is bound to
  loopback.
* Local endpoints and the web page: a server bound to this machine's own
  non-loopback address answers ``/local/*`` with 403 and sends the web page
  to the token login; the predicates themselves with a fake remote address.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from cryptography.hazmat.primitives import serialization

from bot.app.server import build_app, is_loopback, local_messages
from bot.clock import FakeClock
from bot.domain import State
from bot.storage import open_store
from tests.security.drivers import SlackDriver, slack_driver
from tests.security.matrix import SEEDER, seed_case
from tests.slack.slackfake import SECRET, load, sign
from tests.teams.botframework import (
    APP_ID,
    APP_PASSWORD,
    FakeIssuer,
    fake_issuer,
    hs256,
    new_key,
    unsigned,
)
from tests.teams.conftest import ALICE, BotServer, FakeConnector, Teams, teams_settings

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
# Tokens are checked against a fake issuer on 127.0.0.1 (tests/teams/botframework.py,
# read through BOT_OPENID_METADATA): every forged token is refused for what was forged,
# after the keys were really read, and the same request with a good token then passes.
@dataclass
class SecuredTeams:
    server: BotServer
    issuer: FakeIssuer
    connector: FakeConnector
    teams: Teams

    def activity(self) -> dict[str, Any]:
        """A member joined a personal chat: recorded and worked off with no outbound call."""
        return self.teams.activity(ALICE, kind="conversationUpdate", membersAdded=[ALICE.account()])

    def claims(self, activity: dict[str, Any], **changes: Any) -> dict[str, Any]:
        return self.issuer.claims(activity["serviceUrl"], **changes)

    async def post(self, activity: dict[str, Any], authorization: str | None) -> int:
        headers = {"Authorization": authorization} if authorization is not None else {}
        resp = await self.server.post_raw(json.dumps(activity), **headers)
        await self.server.idle()
        return resp.status

    def recorded(self, activity: dict[str, Any]) -> bool:
        """Whether the activity was queued (its dedupe id outlives the worked-off item)."""
        events = self.server.store.engine.view("events")
        return f"teams:{activity['conversation']['id']}:{activity['id']}" in events


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secured_teams(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecuredTeams]:
    connector = FakeConnector()
    fake = TestServer(connector.app(), host="127.0.0.1")
    await fake.start_server()
    connector.url = str(fake.make_url("/")).rstrip("/")
    settings = teams_settings(
        tmp_path_factory.mktemp("teams") / "billing.json",
        teams_app_id=APP_ID,
        teams_app_password=APP_PASSWORD,
        teams_app_type="MultiTenant",
    )
    async with fake_issuer() as issuer:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("BOT_OPENID_METADATA", issuer.metadata_url)  # read when the app is built
            server = await BotServer(settings, connector).start()
        try:
            yield SecuredTeams(server, issuer, connector, Teams(connector))
        finally:
            await server.close()
            await fake.close()


async def test_teams_accepts_a_token_signed_with_the_channel_s_key(
    secured_teams: SecuredTeams,
) -> None:
    t = secured_teams
    _status, health = await t.server.get("/healthz")
    assert t.issuer.metadata_url in health["channels"]["teams"]["why"]
    activity = t.activity()
    assert await t.post(activity, f"Bearer {t.issuer.token(t.claims(activity))}") == 201
    assert t.recorded(activity)
    assert t.issuer.metadata_hits >= 1 and t.issuer.jwks_hits >= 1  # the keys were read
    # The SDK allows 5 minutes of clock skew: the "expired" token below is older than that.
    late = t.activity()
    old = t.claims(late, exp=int(time.time()) - 60)
    assert await t.post(late, f"Bearer {t.issuer.token(old)}") == 201
    assert t.connector.calls == []  # nothing in this conversation needs an answer


def _forged(t: SecuredTeams, activity: dict[str, Any], case: str) -> str | None:
    now = int(time.time())
    claims = t.claims(activity)
    issuer = t.issuer
    public_pem = (
        issuer.private["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    tokens: dict[str, str | None] = {
        "wrong audience": issuer.token({**claims, "aud": "5e7c0000-0000-4000-8000-00000000beef"}),
        "no audience": issuer.token(t.claims(activity, aud=None)),
        "wrong issuer": issuer.token({**claims, "iss": "https://api.botframework.com.example"}),
        "expired past the leeway": issuer.token({**claims, "exp": now - 400}),
        "nbf in the future": issuer.token({**claims, "nbf": now + 600}),
        "serviceurl of another service": issuer.token(
            {**claims, "serviceurl": "https://smba.trafficmanager.net/amer/"}
        ),
        "no serviceurl": issuer.token(t.claims(activity, serviceurl=None)),
        "unknown kid": issuer.token(claims, kid="k-unknown", key=new_key()),
        "another key with the same kid": issuer.token(claims, kid="k1", key=new_key()),
        "alg none": unsigned(claims, "k1"),
        "HS256 keyed with the app password": hs256(claims, APP_PASSWORD.encode(), "k1"),
        "HS256 keyed with the public key": hs256(claims, public_pem, "k1"),
        "a key not endorsed for msteams": issuer.token(claims, kid="k-webchat"),
        "no Authorization header": None,
    }
    token = tokens[case]
    return None if token is None else f"Bearer {token}"


# What the SDK (or the key cache) says when it refuses each: the reason, not a network error.
FORGED = {
    "wrong audience": "Invalid AppId passed on token",
    "no audience": "'aud' claim missing",
    "wrong issuer": "Identity missing",  # an issuer not the channel's is not checked further
    "expired past the leeway": "Signature has expired",
    "nbf in the future": "The token is not yet valid (nbf)",
    "serviceurl of another service": "Invalid 'serviceurl' claim",
    "no serviceurl": "'serviceurl' claim missing",
    "unknown kid": "has the key id 'k-unknown'",
    "another key with the same kid": "Signature verification failed",
    "alg none": "Token signing algorithm not in allowed list",
    "HS256 keyed with the app password": "Token signing algorithm not in allowed list",
    "HS256 keyed with the public key": "Token signing algorithm not in allowed list",
    "a key not endorsed for msteams": "Could not validate endorsement key",
    "no Authorization header": "Unauthorized Access. Request is not authorized",
}


@pytest.mark.parametrize("case", list(FORGED))
async def test_teams_refuses_a_forged_token_for_what_was_forged(
    secured_teams: SecuredTeams, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    t = secured_teams
    activity = t.activity()
    caplog.set_level(logging.WARNING, logger="adapters.teams.channel")
    assert await t.post(activity, _forged(t, activity, case)) == 401
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1 and FORGED[case] in rejected[0], rejected
    assert not t.recorded(activity)
    assert t.issuer.jwks_hits >= 1  # the keys were there to check against
    # The same activity with a good token passes: the 401 was what the case changed.
    assert await t.post(activity, f"Bearer {t.issuer.token(t.claims(activity))}") == 201
    assert t.recorded(activity)
    assert t.connector.calls == []


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
            # Not local, not a lead: status and storage health only, no paths or counts.
            assert health == {"status": "ok", "storage": {"ok": True}}
            async with http.post(
                base + "/login",
                data={"csrf": csrf, "name": "lena", "token": TOKENS["lena"], "next": "/"},
                allow_redirects=False,
            ) as resp:
                assert resp.status == 303
            async with http.get(base + "/dashboard", allow_redirects=False) as resp:
                assert resp.status == 200  # with the token, the lead's dashboard
            async with http.get(base + "/healthz") as resp:
                health = await resp.json()
            assert health["channels"]["teams"]["on"] is False  # the detail, for the lead
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
