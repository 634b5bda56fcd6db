"""Issue 17, items 4 and 6: anonymous traffic cannot log anyone out, failed logins lock nobody out.

Each test runs the bot's real aiohttp app on 127.0.0.1 and talks HTTP to it.
Item 4: a flood of cookie-less requests used to create one stored session
each, and at 5,000 the least recently seen were evicted — the lead's with
them. Item 6: ten failures from one client address locked everyone behind
that address (a proxy) out for five minutes, the right token included.
Failed logins now wait a growing delay (recorded by ``login_sleeps`` instead
of slept, so no assertion depends on the machine's speed).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from adapters.web.pages import WEB
from tests.web.conftest import AppFactory
from tests.web.helpers import TOKENS, Browser

LOGIN_REQUIRED = {"raw": {"web": {"require_login": True}}}
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def table_size(client: TestClient) -> int:  # type: ignore[type-arg]
    return len(client.app[WEB].sessions)


async def flood(client: TestClient, count: int) -> dict[int, int]:  # type: ignore[type-arg]
    """``count`` anonymous requests (no cookie kept), three GETs to one POST; their statuses."""
    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(50)
    requests = [
        ("GET", "/login", None),
        ("GET", "/", None),
        ("GET", "/login?next=/dashboard", None),
        ("POST", "/login", {"name": "lena", "token": "x"}),
    ]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def one(i: int) -> None:
            method, path, data = requests[i % len(requests)]
            async with gate:
                async with http.request(
                    method, client.make_url(path), data=data, allow_redirects=False
                ) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1

        await asyncio.gather(*(one(i) for i in range(count)))
    return statuses


async def second_browser(client: TestClient) -> Browser:  # type: ignore[type-arg]
    """Another browser on the same server: its own cookie jar, the same client address.

    Close it with ``await b.client.session.close()``: closing the TestClient
    would stop the shared server.
    """
    other = TestClient(client.server)
    await other.start_server()  # the server already runs: this only opens the client
    return Browser(other)


# ---------------------------------------------------------------- item 4: sessions
async def test_anonymous_requests_store_nothing_and_never_log_the_lead_out(
    make_web: AppFactory,
) -> None:
    lead, _runtime, client = await make_web(**LOGIN_REQUIRED)
    await lead.login("lena", TOKENS["lena"])
    assert table_size(client) == 1
    statuses = await flood(client, 8000)  # 6,000 GETs: once more than the old table's cap
    # Cookie-less GETs: the page and a redirect to it; cookie-less POSTs: refused, no session.
    assert statuses == {200: 4000, 303: 2000, 403: 2000}, statuses
    assert table_size(client) == 1  # the lead's session, nothing else
    assert "Lena Lead" in await lead.get("/")  # the lead's cookie still works
    assert "Billing desk commands" in await lead.say("help")  # and their CSRF token
    # A visitor's login form works with nothing stored until the login succeeds.
    visitor = await second_browser(client)
    try:
        await visitor.get("/login")
        assert table_size(client) == 1
        await visitor.login("alice", TOKENS["alice"])
        assert table_size(client) == 2
    finally:
        await visitor.client.session.close()


async def test_a_visitors_login_form_needs_its_own_cookie(make_web: AppFactory) -> None:
    """The form's CSRF token is tied to the visitor's cookie: another cookie cannot use it."""
    b, _runtime, client = await make_web(**LOGIN_REQUIRED)
    await b.get("/login")
    stolen = b.csrf
    other = await second_browser(client)
    try:
        await other.get("/login")
        assert other.csrf != stolen
        resp = await other.client.post(
            "/login",
            data={"csrf": stolen, "name": "lena", "token": TOKENS["lena"]},
            allow_redirects=False,
        )
        assert resp.status == 403
    finally:
        await other.client.session.close()
    await b.login("lena", TOKENS["lena"])


async def test_name_only_logins_are_bounded_and_never_push_out_a_token_login(
    make_web: AppFactory,
) -> None:
    """Open on loopback a name makes a session: those are capped, and a token login stays."""
    from adapters.web.auth import MAX_NAMED_SESSIONS

    lead, _runtime, client = await make_web()
    await lead.login("lena", TOKENS["lena"])  # a token on loopback: a token login
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        # One visitor cookie and its form token, replayed for many name-only logins.
        resp = await http.get(client.make_url("/login"))
        visitor = resp.cookies["billing_bot_session"].value
        found = _CSRF.search(await resp.text())
        assert found
        headers = {"Cookie": f"billing_bot_session={visitor}"}
        for i in range(MAX_NAMED_SESSIONS + 100):
            async with http.post(
                client.make_url("/login"),
                data={"csrf": found.group(1), "name": f"guest{i}"},
                headers=headers,
                allow_redirects=False,
            ) as resp:
                assert resp.status == 303
    assert table_size(client) == 1 + MAX_NAMED_SESSIONS
    assert "Lena Lead" in await lead.get("/")


# ---------------------------------------------------------------- item 6: no lockout
async def test_an_attacker_behind_the_same_address_never_locks_the_lead_out(
    make_web: AppFactory, login_sleeps: list[float]
) -> None:
    lead, _runtime, client = await make_web(**LOGIN_REQUIRED)
    attacker = await second_browser(client)  # 127.0.0.1 too, as everyone behind a proxy
    try:
        await attacker.get("/login")
        statuses = []
        for i in range(50):
            resp = await attacker.client.post(
                "/login",
                data={"csrf": attacker.csrf, "name": "lena", "token": f"guess-{i}"},
                allow_redirects=False,
            )
            statuses.append(resp.status)
    finally:
        await attacker.client.session.close()
    assert 303 not in statuses
    answered = len(login_sleeps)
    await lead.login("lena", TOKENS["lena"])  # a successful login (303), not 429
    assert "Lena Lead" in await lead.get("/")
    assert len(login_sleeps) == answered  # at once: the right token waited for nothing
    # The attacker's failures got slower: 0.25 s doubling up to the cap, never shorter.
    assert statuses == [401] * 50
    assert login_sleeps[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert login_sleeps == sorted(login_sleeps) and max(login_sleeps) == 4.0


async def test_failures_slow_down_per_address_whatever_the_name(
    make_web: AppFactory, login_sleeps: list[float]
) -> None:
    b, _runtime, _client = await make_web(**LOGIN_REQUIRED)
    for name in ("alice", "bob", "carol", "nobody"):
        await b.login(name, "wrong", status=401)
    assert login_sleeps == [0.25, 0.5, 1.0, 2.0]
    await b.login("alice", TOKENS["alice"])


async def test_beyond_the_global_cap_wrong_tokens_get_429_and_the_right_one_logs_in(
    make_web: AppFactory, login_sleeps: list[float]
) -> None:
    from adapters.web.auth import MAX_FAILURES_PER_MINUTE

    lead, _runtime, client = await make_web(**LOGIN_REQUIRED)
    throttle = client.app[WEB].throttle
    now = [1000.0]
    throttle.clock = lambda: now[0]
    await lead.get("/login")

    async def attempt(name: str, token: str) -> int:
        resp = await lead.client.post(
            "/login",
            data={"csrf": lead.csrf, "name": name, "token": token},
            allow_redirects=False,
        )
        await resp.read()
        return resp.status

    for i in range(MAX_FAILURES_PER_MINUTE):
        assert await attempt(f"user{i}", "wrong") == 401
    slept = len(login_sleeps)
    assert await attempt("alice", "wrong") == 429
    assert len(login_sleeps) == slept  # answered at once: nothing sleeps beyond the cap
    assert await attempt("lena", TOKENS["lena"]) == 303
    now[0] += 61.0  # a minute later the cap has room again
    await lead.get("/login")
    assert await attempt("alice", "wrong") == 401


async def test_a_failed_login_waits_without_holding_up_anyone_else(
    make_web: AppFactory, monkeypatch: Any
) -> None:
    parked = asyncio.Event()
    release = asyncio.Event()

    async def held(_seconds: float) -> None:
        parked.set()
        await release.wait()

    monkeypatch.setattr("adapters.web.auth.sleep", held)
    lead, _runtime, client = await make_web(**LOGIN_REQUIRED)
    attacker = await second_browser(client)
    try:
        await attacker.get("/login")
        failing = asyncio.ensure_future(
            attacker.client.post(
                "/login",
                data={"csrf": attacker.csrf, "name": "lena", "token": "wrong"},
                allow_redirects=False,
            )
        )
        await asyncio.wait_for(parked.wait(), 10)
        await lead.login("lena", TOKENS["lena"])  # served while the failure still waits
        assert not failing.done()
        release.set()
        assert (await failing).status == 401
    finally:
        await attacker.client.session.close()


# ---------------------------------------------------------------- the throttle's arithmetic
def test_the_delay_grows_per_name_and_per_address_and_is_forgotten() -> None:
    from adapters.web.auth import FAILURE_MEMORY, LoginThrottle

    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    assert throttle.delay("lena", "10.0.0.1") == 0.25
    for _i in range(3):
        throttle._bump("lena", "10.0.0.1")
    assert throttle.delay("lena", "10.0.0.9") == 2.0  # the name's failures, another address
    assert throttle.delay("LENA ", "10.0.0.9") == 2.0  # the same name as typed differently
    assert throttle.delay("alice", "10.0.0.1") == 2.0  # the address's failures, another name
    assert throttle.delay("alice", "10.0.0.9") == 0.25
    throttle.succeeded("lena")  # the right token: the name's failures forgotten ...
    assert throttle.delay("lena", "10.0.0.9") == 0.25
    assert throttle.delay("lena", "10.0.0.1") == 2.0  # ... not the shared address's
    now[0] += FAILURE_MEMORY + 1
    assert throttle.delay("alice", "10.0.0.1") == 0.25


def test_the_throttle_remembers_a_bounded_number_of_names() -> None:
    from adapters.web import auth

    throttle = auth.LoginThrottle(clock=lambda: 0.0)
    for i in range(auth.MAX_TRACKED + 50):
        throttle._bump(f"name{i}", "10.0.0.1")
    assert len(throttle._keys) == auth.MAX_TRACKED
    assert throttle.delay("fresh", "10.0.0.1") == auth.LOGIN_DELAY_MAX  # the address stays


def test_sessions_are_made_only_at_login_and_bounded_per_kind() -> None:
    from adapters.web import auth

    sessions = auth.Sessions()
    visitor, fresh = sessions.visitor(None)
    assert fresh and len(sessions) == 0
    again, fresh = sessions.visitor(visitor.sid)
    assert not fresh and again.csrf == visitor.csrf  # the same cookie, the same form token
    assert sessions.visitor("short")[1] and sessions.visitor("x" * 43 + "!")[1]
    lena = [sessions.new(user="lena", authenticated=True) for _i in range(3)]
    for i in range(auth.MAX_SESSIONS_PER_USER + 5):
        sessions.new(user="alice", authenticated=True)
        sessions.new(user=f"guest{i}")
    assert all(sessions.get(s.sid) is lena[i] for i, s in enumerate(lena))
    named = auth.MAX_SESSIONS_PER_USER + 5  # all kept: far below MAX_NAMED_SESSIONS
    assert len(sessions) == len(lena) + auth.MAX_SESSIONS_PER_USER + named  # alice: her cap
    sessions.drop(lena[0])
    assert sessions.get(lena[0].sid) is None
