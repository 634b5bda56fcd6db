"""The Slack endpoint at the HTTP edge: on/off, url_verification, signatures, lifecycle."""

from __future__ import annotations

import json
import time
import urllib.parse

from aiohttp.test_utils import TestClient, TestServer

from bot.app.server import CHANNELS, RUNTIME, build_app
from bot.storage import open_store
from tests.slack.slackfake import SECRET, FakeSlack, SlackEnv, load, make_settings, sign


async def test_url_verification_answers_the_challenge(slack: SlackEnv) -> None:
    body = load("url_verification")
    status, text = await slack.post(json.dumps(body), "application/json")
    assert status == 200
    assert json.loads(text) == {"challenge": body["challenge"]}
    assert slack.fake.calls == []  # no Web API call needed for the handshake


async def test_bad_missing_and_stale_signatures_get_401_and_touch_nothing(
    slack: SlackEnv,
) -> None:
    fields = load("slash_command")
    fields.update(user_id="UANA", text="ask hello", channel_id="CGENERAL")
    form = urllib.parse.urlencode(fields)
    cases = {
        "missing": {},
        "wrong secret": sign(form, secret="not-the-secret"),
        "stale (6 minutes old)": sign(form, ts=int(time.time()) - 360),
        "garbage timestamp": {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        "signature of another body": sign(form + "&x=1"),
    }
    store = slack.runtime.store
    for why, headers in cases.items():
        status, _text = await slack.post(
            form, "application/x-www-form-urlencoded", headers=headers, signed=False
        )
        assert status == 401, why
    event = load("event_message_im")
    status, _text = await slack.post(
        json.dumps(event), "application/json", headers=sign("{}"), signed=False
    )
    assert status == 401
    assert store.engine.view("inbox") == {}
    assert store.engine.view("events") == {}
    assert await store.users() == []
    assert slack.fake.calls == []


async def test_healthz_says_slack_is_on(slack: SlackEnv) -> None:
    resp = await slack.client.get("/healthz")
    body = await resp.json()
    assert body["channels"]["slack"]["on"] is True
    assert "/slack/events" in body["channels"]["slack"]["why"]


async def test_off_without_credentials_and_says_why(fake_slack: FakeSlack, tmp_path) -> None:
    for token, secret, missing in (
        (None, None, "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are not set"),
        ("xoxb-1", None, "SLACK_SIGNING_SECRET is not set"),
        (None, SECRET, "SLACK_BOT_TOKEN is not set"),
    ):
        settings = make_settings(
            f"{fake_slack.url}/api/", slack_bot_token=token, slack_signing_secret=secret
        )
        app = build_app(settings, open_store(tmp_path / f"{missing[:5]}.json"))
        assert app[CHANNELS]["slack"] == {"on": False, "why": missing}
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            resp = await client.post("/slack/events", data=b"{}")
            assert resp.status in (404, 405)  # no Slack route at all


async def test_shared_session_is_closed_on_shutdown(fake_slack: FakeSlack, tmp_path) -> None:
    settings = make_settings(f"{fake_slack.url}/api/")
    app = build_app(settings, open_store(tmp_path / "b.json"))
    runtime = app[RUNTIME]
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        status = (await client.post("/slack/events", data=b"{}", headers=sign("{}"))).status
        assert status in (200, 404)
        handler = runtime.request_handlers["slack"]
        channel = handler.__self__
        session = channel.session
        assert session is not None and not session.closed
        assert channel.client.session is session  # one session for every Web API call
    assert session.closed


def test_manifest_matches_what_the_bot_serves() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    manifest = (root / "manifest" / "slack.yaml").read_text(encoding="utf-8")
    docs = (root / "docs" / "slack.md").read_text(encoding="utf-8")
    assert "command: /billing" in manifest and "should_escape: true" in manifest
    urls = [line for line in manifest.splitlines() if "url: https://" in line]
    assert len(urls) == 3 and all(u.endswith("/slack/events") for u in urls)
    for event in ("app_mention", "message.channels", "message.groups", "message.im"):
        assert f"      - {event}\n" in manifest
    scopes = manifest.split("bot:\n", 1)[1].split("settings:", 1)[0]
    names = [line.strip()[2:] for line in scopes.splitlines() if line.strip().startswith("- ")]
    assert names == [
        "app_mentions:read",
        "channels:history",
        "chat:write",
        "commands",
        "groups:history",
        "im:history",
        "im:write",
        "users:read",
    ]
    for scope in names:
        assert f"| `{scope}` |" in docs, f"docs/slack.md does not explain {scope}"


def test_flows_and_domain_never_import_the_slack_sdks() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for folder in ("bot", "conversations", "adapters/local"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "slack_bolt" not in text and "slack_sdk" not in text, path
    translator = (root / "adapters" / "slack" / "translate.py").read_text(encoding="utf-8")
    assert "slack_bolt" not in translator and "slack_sdk" not in translator  # pure
