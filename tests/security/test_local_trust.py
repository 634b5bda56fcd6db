"""What counts as local, against a real ``billing-bot serve`` (issue 17, items 1 and 10).

The attack: the TCP peer of a request is 127.0.0.1, but it comes through DNS
rebinding (a foreign ``Host``) or a reverse proxy on the same machine (a
forwarding header). The loopback-only routes must refuse it, for that reason
(the 403's message names the rule), while the same request with a loopback
Host and no proxy header is answered. ``/healthz`` gives such a request only
status and storage health. A Slack request with a bad signature is refused
without its body reaching the log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.world import World, open_world
from tests.slack.slackfake import sign

pytestmark = pytest.mark.slow

ATTACKS: dict[str, dict[str, str]] = {
    "rebinding Host": {"Host": "rebind.attacker.example:{port}"},
    "rebinding Host, no port": {"Host": "rebind.attacker.example"},
    "X-Forwarded-For": {"X-Forwarded-For": "203.0.113.9"},
    "Forwarded": {"Forwarded": "for=203.0.113.9;proto=https"},
    "X-Forwarded-Host": {"X-Forwarded-Host": "billing.example.com"},
    "X-Real-IP": {"X-Real-IP": "203.0.113.9"},
    "both": {"Host": "rebind.attacker.example:{port}", "X-Forwarded-For": "203.0.113.9"},
}

LOCAL_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/local/messages", {"user": "lena", "text": "status BILL-1"}),
    ("GET", "/local/inbox?user=lena", None),
    ("GET", "/local/reminders?user=lena&at=2026-11-24T10:00:00%2B00:00", None),
    ("POST", "/local/receivables", {"csv": "customer,invoice,amount,currency,due\n"}),
    ("POST", "/local/demo-data", {}),
]


async def _request(
    world: World, method: str, path: str, payload: Any, headers: dict[str, str]
) -> tuple[int, Any]:
    assert world.http is not None
    kw: dict[str, Any] = {"headers": headers}
    if payload is not None:
        kw["data"] = json.dumps(payload)
        kw["headers"] = {**headers, "Content-Type": "application/json"}
    async with world.http.request(method, world.url + path, **kw) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_the_local_routes_refuse_a_request_that_is_not_local(
    tmp_path: Path, attack: str
) -> None:
    async with open_world(tmp_path) as world:
        await world.start()
        headers = {k: v.format(port=world.port) for k, v in ATTACKS[attack].items()}
        for method, path, payload in LOCAL_ROUTES:
            status, body = await _request(world, method, path, payload, headers)
            assert status == 403, (attack, path, status, body)
            # Refused for the rule this test names, not for a bad body or a network error.
            assert "local requests" in body["error"] and "forwarding" in body["error"]
        # The same requests, local: answered (the positive control).
        status, body = await _request(
            world, "POST", "/local/messages", {"user": "lena", "text": "resources"}, {}
        )
        assert status == 200 and body["replies"], body
        status, body = await _request(world, "GET", "/local/inbox?user=lena", None, {})
        assert status == 200 and "items" in body


async def test_a_rebound_request_never_reads_a_case_as_the_lead(tmp_path: Path) -> None:
    async with open_world(tmp_path) as world:
        await world.start()
        status, body = await _request(
            world, "POST", "/local/messages", {"user": "lena", "text": "ask Why two charges?"}, {}
        )
        assert status == 200, body
        headers = {
            "Host": f"rebind.attacker.example:{world.port}",
            "X-Forwarded-For": "203.0.113.9",
        }
        status, body = await _request(
            world, "POST", "/local/messages", {"user": "lena", "text": "list all"}, headers
        )
        assert status == 403 and "replies" not in body


async def test_healthz_shows_its_detail_only_to_local_requests(tmp_path: Path) -> None:
    async with open_world(tmp_path) as world:
        await world.start()
        status, local = await _request(world, "GET", "/healthz", None, {})
        assert status == 200
        assert local["storage"]["path"].endswith("billing.json")
        assert "slack" in local["channels"] and "cases" in local
        for attack, raw in ATTACKS.items():
            headers = {k: v.format(port=world.port) for k, v in raw.items()}
            status, public = await _request(world, "GET", "/healthz", None, headers)
            assert status == 200, attack
            assert public == {"status": "ok", "storage": {"ok": True}}, attack
            assert str(world.db) not in json.dumps(public)
            assert world.slack.url not in json.dumps(public)


async def test_a_bad_slack_signature_is_refused_without_its_body_in_the_log(
    tmp_path: Path,
) -> None:
    async with open_world(tmp_path) as world:
        await world.start()
        assert world.http is not None and world.serve is not None
        marker = "ATTACKER-TEXT-7f3a9"
        body = (
            "token=verification-token-SECRET-41&team_id=T1&user_id=UANA&command=%2Fbilling"
            f"&text={marker}&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FSECRET"
        )
        cases = {
            "wrong secret": sign(body, secret="not-the-secret"),
            "stale timestamp": sign(body, ts=int(time.time()) - 600),
            "right secret": sign(body),  # the positive control: accepted
        }
        for why, headers in cases.items():
            async with world.http.post(
                world.url + "/slack/events",
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
            ) as resp:
                assert resp.status == (200 if why == "right secret" else 401), why
        await world.serve.stop()
        log = world.serve.log.read_text(errors="replace")
        refusals = [line for line in log.splitlines() if "refused a Slack request" in line]
        assert len(refusals) == 2, log[-3000:]
        assert any("more than 5 minutes" in line for line in refusals)
        assert any("does not match" in line for line in refusals)
        for line in refusals:
            assert marker not in line and "SECRET" not in line
        assert "Invalid request signature" not in log  # bolt's log line, with the body
