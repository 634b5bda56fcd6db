"""A Microsoft endpoint that hangs never stalls the server (the Teams SDK's blocking fetches).

With ``MICROSOFT_APP_ID`` set, a token with ``iss https://api.botframework.com``
and an unknown ``kid`` makes botbuilder fetch the OpenID metadata from
``login.botframework.com``; an outbound answer makes MSAL fetch a token from
``login.microsoftonline.com``. Both are synchronous HTTP calls. Here the way
to those hosts hangs for 5 seconds (an ``HTTPS_PROXY`` on 127.0.0.1 that
accepts the tunnel and answers nothing), and the server must go on answering
meanwhile: a heartbeat on its event loop never misses a beat by a second, and
``/healthz``, a Slack command and other Teams requests are answered before
the hang ends. The Teams request that needs the keys gets 503 (retry later).

No fixed timing of this machine is asserted: only that answers came while
the fetch was still hanging, which a blocked event loop cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from bot.domain import Role, User
from bot.kernel.model import Reply
from tests.processes import Serve
from tests.slack.slackfake import SECRET, sign

from .botframework import APP_ID, APP_PASSWORD, HangingProxy, new_key
from .conftest import ALICE, BotServer, FakeConnector, Teams, teams_settings

HANG = 5.0  # seconds the way to Microsoft's endpoint hangs
KEYS_HOST = "login.botframework.com"
TOKEN_HOST = "login.microsoftonline.com"


def unknown_kid_token(service_url: str) -> str:
    """Claims as the Bot Connector's, signed by a key nobody published under ``kid``."""
    now = int(time.time())
    claims = {
        "iss": "https://api.botframework.com",
        "aud": APP_ID,
        "serviceurl": service_url,
        "nbf": now - 10,
        "exp": now + 600,
    }
    return jwt.encode(claims, new_key(), algorithm="RS256", headers={"kid": "not-published"})


class Heartbeat:
    """Ticks on the server's event loop every 50 ms and keeps the longest gap between ticks."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    def __enter__(self) -> Heartbeat:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
def proxy_to(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], HangingProxy]]:
    """Route this process's https calls through a proxy on which ``host`` hangs."""
    proxies: list[HangingProxy] = []

    def start(host: str) -> HangingProxy:
        proxy = HangingProxy(HANG, (host,)).start()
        proxies.append(proxy)
        for name, value in proxy.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("BOT_OPENID_METADATA", raising=False)  # Microsoft's real URL
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


@pytest.fixture
async def secured(tmp_path: Path, connector: FakeConnector) -> AsyncIterator[BotServer]:
    settings = teams_settings(
        tmp_path / "billing.json",
        teams_app_id=APP_ID,
        teams_app_password=APP_PASSWORD,
        teams_app_type="MultiTenant",
    )
    server = await BotServer(settings, connector).start()
    yield server
    await server.close()


async def wait_for(event: Any, timeout: float = 20.0) -> None:
    """Wait for a proxy's threading.Event without holding the event loop."""
    assert await asyncio.to_thread(event.wait, timeout), "the proxy never saw the call"


async def test_a_hung_key_fetch_never_stalls_the_event_loop(
    proxy_to: Callable[[str], HangingProxy],
    connector: FakeConnector,
    teams: Teams,
    tmp_path: Path,
) -> None:
    proxy = proxy_to(KEYS_HOST)  # before the server: nothing is read at start, but be plain
    settings = teams_settings(
        tmp_path / "billing.json", teams_app_id=APP_ID, teams_app_password=APP_PASSWORD
    )
    bot = await BotServer(settings, connector).start()
    try:
        activity = teams.say(ALICE, "customers")
        token = unknown_kid_token(activity["serviceUrl"])
        with Heartbeat() as heartbeat:
            first = asyncio.create_task(
                bot.post_raw(json.dumps(activity), Authorization=f"Bearer {token}")
            )
            await wait_for(proxy.hung)
            status, _ = await bot.get("/healthz")
            assert status == 200 and not proxy.released.is_set()
            other = teams.say(ALICE, "help")
            second = await bot.post_raw(json.dumps(other), Authorization=f"Bearer {token}")
            assert (await first).status == 503 and second.status == 503
            assert not proxy.released.is_set()  # answered while the fetch still hung
            await wait_for(proxy.released)
            await asyncio.sleep(0.2)
        assert heartbeat.max_gap < 1.0, f"the event loop stalled for {heartbeat.max_gap:.2f} s"
        print(f"max heartbeat gap while the key fetch hung: {heartbeat.max_gap * 1000:.0f} ms")
        assert bot.store.engine.view("inbox") == {} and connector.calls == []
    finally:
        await bot.close()


async def test_a_hung_token_fetch_never_stalls_the_event_loop(
    proxy_to: Callable[[str], HangingProxy],
    secured: BotServer,
    connector: FakeConnector,
    teams: Teams,
) -> None:
    """A DM needs an outbound token (MSAL); the way to Entra ID hangs."""
    proxy = proxy_to(TOKEN_HOST)
    dm = teams.say(ALICE, "")
    reference = {
        "user": ALICE.account(),
        "bot": dm["recipient"],
        "conversation": dm["conversation"],
        "channelId": "msteams",
        "serviceUrl": dm["serviceUrl"],
    }
    await secured.store.save_reference("alice", "teams", {"dm": reference})
    alice = User(id="alice", display_name="Alice Agent", role=Role.AGENT)
    deliver: Callable[..., Coroutine[Any, Any, bool]] = secured.runtime.deliverers["teams"]
    with Heartbeat() as heartbeat:
        sending = asyncio.create_task(deliver(alice, [Reply(text="a reminder")]))
        await wait_for(proxy.hung)
        status, _ = await secured.get("/healthz")
        assert status == 200 and not proxy.released.is_set()
        await wait_for(proxy.released)
        await asyncio.sleep(0.2)
    sending.cancel()  # no token came; MSAL may try again, which is not this test's business
    with contextlib.suppress(BaseException):
        await sending
    assert heartbeat.max_gap < 1.0, f"the event loop stalled for {heartbeat.max_gap:.2f} s"
    print(f"max heartbeat gap while the token fetch hung: {heartbeat.max_gap * 1000:.0f} ms")
    assert connector.calls == []  # nothing went out without a token


def slack_command(text: str) -> tuple[bytes, dict[str, str]]:
    body = urllib.parse.urlencode(
        {
            "command": "/billing",
            "text": text,
            "user_id": "UANA",
            "team_id": "TPARTNER",
            "channel_id": "CGENERAL",
            "response_url": "http://127.0.0.1:9/response",
            "trigger_id": "1.2.3",
        }
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, SECRET)}
    return body.encode(), headers


async def test_serve_answers_everyone_else_while_the_key_fetch_hangs(tmp_path: Path) -> None:
    """``billing-bot serve`` as deployed: Teams with an app id, Slack, the way to the keys hung."""
    proxy = HangingProxy(HANG, (KEYS_HOST,)).start()
    serve = Serve(
        tmp_path / "billing.json",
        MICROSOFT_APP_ID=APP_ID,
        MICROSOFT_APP_PASSWORD=APP_PASSWORD,
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL="http://127.0.0.1:9/api/",
        **proxy.env(),
    )
    await asyncio.to_thread(serve.start)
    teams = Teams(FakeConnector(url="http://127.0.0.1:9"))  # never answered: the token fails
    answered: dict[str, int] = {}

    async def send(
        http: aiohttp.ClientSession, name: str, method: str, path: str, **kw: Any
    ) -> None:
        async with http.request(method, serve.url + path, **kw) as resp:
            await resp.read()
            if not proxy.released.is_set():
                answered[name] = resp.status

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            activity = teams.say(ALICE, "customers")
            headers = {"Authorization": f"Bearer {unknown_kid_token(activity['serviceUrl'])}"}
            first = asyncio.create_task(
                send(http, "teams", "POST", "/api/messages", json=activity, headers=headers)
            )
            await wait_for(proxy.hung)
            await send(http, "healthz", "GET", "/healthz")
            body, slack_headers = slack_command("help")
            await send(http, "slack", "POST", "/slack/events", data=body, headers=slack_headers)
            other = teams.say(ALICE, "help")
            await send(http, "teams again", "POST", "/api/messages", json=other, headers=headers)
            await first
        assert answered == {"teams": 503, "healthz": 200, "slack": 200, "teams again": 503}
    finally:
        code, err = await asyncio.to_thread(serve.stop)
        proxy.close()
    assert "did not answer within" in err, err[-2000:]  # the 503s, logged with their reason


async def test_bot_connector_clients_have_connect_and_read_timeouts(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    """msrest's default is 100 s for both; a Bot Connector that accepts and never answers
    must cost a bounded while."""
    assert await bot.post(teams.say(ALICE, "help")) == 201
    assert connector.posts(ALICE.dm)
    channel = bot.runtime.deliverers["teams"].__self__
    timeouts = {client.config.connection.timeout for client in channel.auth.connectors.values()}
    assert timeouts == {(5.0, 15.0)}
