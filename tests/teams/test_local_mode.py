"""Teams' local (Emulator) mode: local requests only, answers only to a loopback serviceUrl.

Without ``MICROSOFT_APP_ID`` nothing is authenticated, so anyone who reaches
``POST /api/messages`` can claim any ``aadObjectId`` — the lead's, say, and
ask for every customer. The rule of ``bot.locality`` applies: loopback peer,
loopback ``Host``, no forwarding header; and the answers go only to a
``serviceUrl`` on this machine, checked at the edge (nothing is queued) and
again when sending (an item or reference recorded before is never sent).

Every request here is real HTTP to the real server on 127.0.0.1. Where this
machine has a non-loopback address, a second fake Bot Connector listens
there, so "nothing was sent" is seen, not assumed.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from bot.domain import Role, User
from bot.kernel.model import Reply

from .conftest import ALICE, LENA, BotServer, FakeConnector, Teams


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback and can be bound, if there is one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    if ipaddress.ip_address(address).is_loopback or address == "0.0.0.0":
        return None
    with socket.socket() as s:
        try:
            s.bind((address, 0))
        except OSError:
            return None
    return address


ADDRESS = non_loopback_address()


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeConnector]:
    """A fake Bot Connector on this machine's non-loopback address: who posts there is seen."""
    if ADDRESS is None:
        pytest.skip("this machine has no non-loopback address to listen on")
    fake = FakeConnector()
    server = TestServer(fake.app(), host=ADDRESS)
    await server.start_server()
    fake.url = f"http://{ADDRESS}:{server.port}"
    yield fake
    await server.close()


async def post(bot: BotServer, activity: dict[str, Any], **headers: str) -> tuple[int, Any]:
    assert bot.http is not None
    async with bot.http.post(
        f"{bot.url}/api/messages",
        data=json.dumps(activity),
        headers={"Content-Type": "application/json", **headers},
    ) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


def nothing_recorded(bot: BotServer) -> bool:
    engine = bot.store.engine
    return engine.view("inbox") == {} and not any(
        k.startswith("teams:") for k in engine.view("events")
    )


async def test_a_local_request_is_answered_on_the_local_connector(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    status, _ = await post(bot, teams.say(LENA, "customers"))
    assert status == 201
    await bot.idle()
    (answer,) = connector.posts(LENA.dm)
    assert "customers" in answer.everything().lower()
    assert answer.authorization is None  # local mode: no token either way


async def test_a_foreign_host_is_refused_with_403(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    """DNS rebinding: a page elsewhere reaches 127.0.0.1 with its own name as the Host."""
    port = URL(bot.url).port
    forged = teams.say(LENA, "customers")  # Lena is the lead: she may list every customer
    status, body = await post(bot, forged, Host=f"rebind.attacker.example:{port}")
    assert status == 403
    assert "loopback Host" in body["error"] and "MICROSOFT_APP_ID" in body["error"]
    await bot.idle()
    assert nothing_recorded(bot)
    assert connector.calls == []


async def test_a_forwarded_request_is_refused_with_403(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    """A reverse proxy on this machine makes outside requests come from loopback."""
    status, body = await post(
        bot, teams.say(LENA, "customers"), **{"X-Forwarded-For": "203.0.113.9"}
    )
    assert status == 403
    assert "forwarding" in body["error"]
    await bot.idle()
    assert nothing_recorded(bot)
    assert connector.calls == []


async def test_a_service_url_off_this_machine_is_refused_before_it_is_queued(
    bot: BotServer, connector: FakeConnector, teams: Teams
) -> None:
    for service_url in ("https://smba.trafficmanager.net/amer/", "http://203.0.113.9:8080/"):
        activity = teams.say(LENA, "customers", serviceUrl=service_url)
        status, body = await post(bot, activity)
        assert status == 400, service_url
        assert "loopback" in body["error"]
    await bot.idle()
    assert nothing_recorded(bot)
    assert connector.calls == []


async def test_nothing_is_sent_to_a_listening_service_url_off_loopback(
    bot: BotServer, connector: FakeConnector, teams: Teams, elsewhere: FakeConnector
) -> None:
    activity = teams.say(LENA, "customers", serviceUrl=f"{elsewhere.url}/")
    status, _ = await post(bot, activity)
    assert status == 400
    await bot.idle()
    assert nothing_recorded(bot)
    assert elsewhere.calls == [] and connector.calls == []


async def test_what_was_recorded_before_is_not_sent_off_loopback_either(
    bot: BotServer, connector: FakeConnector, teams: Teams, elsewhere: FakeConnector
) -> None:
    """The send-time guard: an inbox item and a DM reference from before the edge refused them."""
    activity = teams.say(LENA, "customers", serviceUrl=f"{elsewhere.url}/")
    payload = {"kind": "message", "activity": activity, "key": "recorded-before"}
    await bot.runtime.enqueue("teams", payload, None)
    await bot.idle()
    assert bot.store.engine.view("inbox") == {}  # worked off, not retried forever
    dm = {**teams.say(ALICE, "")}
    reference = {
        "user": ALICE.account(),
        "bot": dm["recipient"],
        "conversation": dm["conversation"],
        "channelId": "msteams",
        "serviceUrl": f"{elsewhere.url}/",
    }
    await bot.store.save_reference("alice", "teams", {"dm": reference, "service_url": None})
    alice = User(id="alice", display_name="Alice Agent", role=Role.AGENT)
    assert await bot.runtime.deliverers["teams"](alice, [Reply(text="a reminder")]) is False
    assert elsewhere.calls == [] and connector.calls == []
