"""No token, secret or ``Authorization`` value in anything the suite logged or wrote.

Runs last in this package (file name). It first makes the bot log its
errors with every kind of credential set (Slack refusing, Partner Center
refusing, Teams unreachable, a real ``serve`` subprocess that cannot reach
Slack), then scans:

* every log record of this package's tests (``conftest.py`` records them all,
  from DEBUG up) and the ``serve`` subprocess's stdout and stderr;
* every file under this session's temporary directories (stores, journals,
  lock files, exports) and every file under ``tests/**/fixtures``.

Config files the tests wrote themselves (``*.toml``, ``*.env``) are where
secrets belong and are left out; the store and everything else are not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bot.domain import State
from bot.kernel.model import ActionRef
from tests.fakes.partner_center import CLIENT_SECRET, REFRESH_TOKEN
from tests.processes import ROOT, bot_env, free_port
from tests.security.drivers import slack_driver
from tests.security.logs import RECORDS
from tests.security.matrix import PEOPLE, seed_case, settle_jobs
from tests.security.test_edges import APP_PASSWORD
from tests.slack.slackfake import SECRET, TOKEN
from tests.web.helpers import TOKENS

KNOWN_SECRETS = {
    "Slack bot token": TOKEN,
    "Slack signing secret": SECRET,
    "Partner Center client secret": CLIENT_SECRET,
    "Partner Center refresh token": REFRESH_TOKEN,
    "Teams app password": APP_PASSWORD,
    "Teams app password (Teams tests)": "not-a-real-secret",
    "subprocess Slack token": "xoxb-subprocess-0000-secret",
    "subprocess signing secret": "subprocess-signing-secret-1234",
    "subprocess Teams password": "subprocess-teams-password-5678",
    "subprocess Partner Center secret": "subprocess-pc-secret-9012",
    **{f"web token of {name}": token for name, token in TOKENS.items()},
}
PATTERNS = {
    "a Slack token": re.compile(r"xox[abposr]-[0-9A-Za-z-]{6,}"),
    "a bearer token": re.compile(r"Bearer\s+(?![*(<])[A-Za-z0-9._~+/=-]{12,}"),
    "an Authorization value": re.compile(
        r"[Aa]uthorization['\"]?\s*[:=]\s*['\"]?(?:Bearer|Basic)\s+(?![*(<])\S{8,}"
    ),
    "a client secret field": re.compile(r"client_secret=(?![*])[^&\s'\"]{6,}"),
}
SUBPROCESS_OUTPUT: list[str] = []


def findings(text: str) -> list[str]:
    out = [what for what, value in KNOWN_SECRETS.items() if value and value in text]
    out += [what for what, pattern in PATTERNS.items() if pattern.search(text)]
    return out


async def test_errors_with_every_credential_set_are_logged_without_them() -> None:
    """Make the bot log its failures while Slack and Partner Center credentials are set."""
    from tests.fakes.partner_center import FakePartnerCenter

    lead = next(p for p in PEOPLE if p.key == "lead")
    async with FakePartnerCenter() as pc:
        pc.valid_refresh_tokens.clear()  # every token request is refused
        overrides = {
            "partner_center_url": pc.url,
            "partner_center_login_url": pc.login_url,
            "partner_center_tenant_id": "0a1b2c3d-0000-4000-8000-00000000a11e",
            "partner_center_client_id": "5e7c0000-0000-4000-8000-0000000c1e17",
            "partner_center_client_secret": CLIENT_SECRET,
            "partner_center_refresh_token": REFRESH_TOKEN,
        }
        async with slack_driver(**overrides) as slack:
            case = await seed_case(slack.runtime, State.IN_PROGRESS)
            await settle_jobs(slack.runtime)
            slack.fake.fail("chat.postMessage", error="invalid_auth")
            slack.fake.fail("users.info", status=500)
            await slack.send(lead, "customers")
            await slack.click(lead, ActionRef("escalate", case.id, case.stage))
            await slack.submit(
                lead,
                "escalate",
                {"title": "t", "description": "d", "severity": "moderate", "topic": "1"},
                {"case": case.id, "stage": str(case.stage)},
            )
            await slack.send(lead, "suspend Contoso")
    assert any("Slack" in r or "slack" in r for r in RECORDS)


def test_a_serve_process_logs_no_secret_on_stderr(tmp_path: Path) -> None:
    """A real ``serve`` with credentials in its environment, made to fail on Slack's side."""
    port = free_port()
    env = bot_env(
        tmp_path / "data" / "billing-bot.json",
        SLACK_BOT_TOKEN=KNOWN_SECRETS["subprocess Slack token"],
        SLACK_SIGNING_SECRET=KNOWN_SECRETS["subprocess signing secret"],
        SLACK_API_URL="http://127.0.0.1:9/api/",
        MICROSOFT_APP_ID="c9e8c047-2a74-40a2-b28a-b162d5f5327c",
        MICROSOFT_APP_PASSWORD=KNOWN_SECRETS["subprocess Teams password"],
        PARTNER_CENTER_CLIENT_ID="5e7c0000-0000-4000-8000-0000000c1e17",
        PARTNER_CENTER_TENANT_ID="0a1b2c3d-0000-4000-8000-00000000a11e",
        PARTNER_CENTER_CLIENT_SECRET=KNOWN_SECRETS["subprocess Partner Center secret"],
        PARTNER_CENTER_LOGIN_URL="http://127.0.0.1:9/login",
        PARTNER_CENTER_URL="http://127.0.0.1:9",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        body = urllib.parse.urlencode(
            {
                "command": "/billing",
                "text": "help",
                "user_id": "UANA",
                "team_id": "TPARTNER",
                "channel_id": "CGENERAL",
                "response_url": "http://127.0.0.1:9/response",
                "trigger_id": "1.2.3",
            }
        )
        stamp = str(int(time.time()))
        secret = KNOWN_SECRETS["subprocess signing secret"].encode()
        digest = hmac.new(secret, f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            base + "/slack/events",
            data=body.encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": f"v0={digest}",
            },
        )
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError:
            pass  # Slack is unreachable: bolt's auth.test fails (logged, which is the point)
        forged = urllib.request.Request(
            base + "/api/messages",
            data=json.dumps({"type": "message", "text": "help"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer forged.jwt.x"},
        )
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(forged, timeout=10)
        time.sleep(2.0)  # the work after the ack fails against the unreachable Slack API
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    SUBPROCESS_OUTPUT.append(out + err)
    assert "error" in err.lower() or "warning" in err.lower(), err  # it did log its failures
    assert not findings(out + err), (findings(out + err), err[-3000:])


def test_nothing_logged_or_written_holds_a_secret(tmp_path_factory: pytest.TempPathFactory) -> None:
    assert RECORDS, "the package's log recorder saw nothing"
    for record in RECORDS:
        found = findings(record)
        assert not found, (found, record[:2000])
    for output in SUBPROCESS_OUTPUT:
        assert not findings(output)
    roots = [tmp_path_factory.getbasetemp(), *ROOT.joinpath("tests").glob("**/fixtures")]
    scanned = 0
    for root in roots:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix in (".toml", ".env"):
                continue
            try:
                text = path.read_bytes().decode("utf-8", errors="replace")
            except OSError:
                continue  # removed meanwhile (a store's temporary file)
            scanned += 1
            found = findings(text)
            assert not found, (found, path)
    assert scanned > 0
