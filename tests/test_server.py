"""The real server and the local chat: healthz, the loopback endpoint, piped sessions, one owner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app.server import build_app
from bot.storage import open_store
from tests.harness import PARITY_SCRIPT, make_settings
from tests.processes import ROOT, Serve, bot_env, chat, free_port

QUESTION = """ask Why was Contoso charged twice?
Contoso
yes
skip
G012345678
2
ok
take BILL-1
note BILL-1 checked the invoice with Microsoft
resolve BILL-1 duplicate charge reversed
informed BILL-1 email told them
close BILL-1
"""

DISPUTE = """dispute G0999
Contoso
ok
12,50 EUR
120.00 EUR
Seats billed twice
take BILL-2
escalate BILL-2
moderate
2411240010001234
resolve BILL-2 partial 60.00 EUR half the seats
informed BILL-2 call
"""


def check_both_cases(output: str) -> None:
    assert "BILL-1 · Question · Contoso" in output
    assert "State: closed" in output
    assert "BILL-2 · Dispute · Contoso" in output
    assert "State: customer informed" in output
    for event in ("created", "started work", "resolved", "recorded that the customer was told"):
        assert event in output
    assert "escalated to Microsoft" in output and "closed (via terminal chat)" in output


def test_piped_resources(tmp_path: Path) -> None:
    out = chat(tmp_path / "db.json", "resources\nquit\n")
    assert "Microsoft resources for answering billing questions" in out
    assert "virtual knowledge base (vKB)" in out


def test_piped_sessions_persist_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    out = chat(db, QUESTION + DISPUTE + "quit\n")
    assert "Use a dot for decimals: 12.50" in out
    assert "BILL-1 is closed." in out and "Recorded: the customer was told about BILL-2" in out
    later = chat(db, "status BILL-1\nstatus BILL-2\nlist all\n")
    check_both_cases(later)
    assert "All cases (2)" in later


def test_piped_session_through_a_running_serve_and_one_owner(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    serve = Serve(db)
    serve.start()
    try:
        out = chat(db, QUESTION + DISPUTE)
        assert "Connected to the billing-bot at http://127.0.0.1:" in out
        assert "BILL-1 is closed." in out
        check_both_cases(chat(db, "status BILL-1\nstatus BILL-2\n"))
        second = subprocess.run(
            [sys.executable, "-m", "bot", "serve", "--port", str(free_port())],
            env=bot_env(db),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "is in use by another billing-bot" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        code, err = serve.stop()
    assert code == 0, err
    assert "storage flushed and unlocked" in err
    # After a clean stop the store opens without a serve, with everything in it.
    check_both_cases(chat(db, "status BILL-1\nstatus BILL-2\n"))


def test_bad_config_fails_fast(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[desk]\ndefault_role = "boss"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        input="quit\n",
        capture_output=True,
        text=True,
        env=bot_env(tmp_path / "db.json", BOT_CONFIG=str(cfg)),
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "desk.default_role: role must be one of" in proc.stderr


@pytest.fixture
async def client(tmp_path: Path) -> TestClient:  # type: ignore[type-arg]
    settings = make_settings(db_path=str(tmp_path / "db.json"))
    app = build_app(settings, open_store(settings.db_path))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def test_healthz_reports_storage_counts_and_channels(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post("/local/messages", json={"user": "alice", "text": "ask"})
    assert resp.status == 200
    body = await (await client.get("/healthz")).json()
    assert body["status"] == "ok"
    assert body["storage"]["backend"] == "tinydb" and body["storage"]["ok"] is True
    assert body["cases"]["total"] == 0
    assert body["channels"]["local"]["on"] is True
    assert (
        body["channels"]["slack"]["on"] is False
        and "SLACK_BOT_TOKEN" in body["channels"]["slack"]["why"]
    )


async def test_local_endpoint_rejects_bad_input_with_4xx(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post(
        "/local/messages", data="not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    resp = await client.post("/local/messages", data="x", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await client.post("/local/messages", json={"text": "help"})
    assert resp.status == 400 and "user" in (await resp.json())["error"]
    resp = await client.post("/local/messages", json={"user": "alice", "text": 5})
    assert resp.status == 400
    resp = await client.post("/local/messages", json=["x"])
    assert resp.status == 400
    big = {"user": "alice", "text": "x" * 300_000}
    resp = await client.post(
        "/local/messages", data=json.dumps(big), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413


async def test_local_endpoint_runs_flows(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post("/local/messages", json={"user": "alice", "text": "resources"})
    replies = (await resp.json())["replies"]
    assert "vKB" in replies[0]["text"]


def _keys(node: Any) -> set[str]:
    """Every key of every object in a JSON tree."""
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


async def test_local_clicks_carry_the_stage_and_old_ones_still_work(client: TestClient) -> None:  # type: ignore[type-arg]
    """Today's replies say "stage"; a click as 79a86d9's chat sent it ("version") acts, once."""

    async def local(user: str, **body: Any) -> list[dict[str, Any]]:
        resp = await client.post("/local/messages", json={"user": user, **body})
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["replies"])

    for line in PARITY_SCRIPT[:7]:  # alice asks: BILL-1
        replies = await local("alice", text=line)
    (card,) = [r["card"] for r in await local("bob", text="status BILL-1") if r["card"]]
    take = next(b["action"] for b in card["buttons"] if b["action"]["name"] == "take")
    assert take == {"name": "take", "case_id": "BILL-1", "stage": card["stage"], "value": None}
    assert "version" not in _keys(replies) | _keys(card)  # the new writers write "stage"
    old = {"name": "take", "case_id": "BILL-1", "version": card["stage"], "value": None}
    replies = await local("bob", action=old)
    assert any("BILL-1 is yours now" in r["text"] for r in replies), replies
    # alice clicks the same old button: the card is out of date, nothing changes.
    replies = await local("alice", action=old)
    assert any("Already done" in r["text"] for r in replies), replies
    status = await local("alice", text="status BILL-1")
    assert "Bob Agent" in json.dumps(status)


async def test_second_app_on_same_store_is_refused(tmp_path: Path) -> None:
    from bot.storage import StoreLocked

    store1 = open_store(tmp_path / "db.json")
    await store1.open()
    try:
        store2 = open_store(tmp_path / "db.json")
        with pytest.raises(StoreLocked, match="in use by another billing-bot"):
            await store2.open()
    finally:
        await store1.close()


async def test_local_endpoint_refuses_non_loopback_peers() -> None:
    from bot.app.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.8.9.1")
    assert not is_loopback("10.0.0.5") and not is_loopback("192.168.1.2") and not is_loopback(None)


def test_chat_module_importable_without_serve() -> None:
    """The local chat client loads neither the server nor the channel SDKs."""
    probe = (
        "import sys, adapters.local.chat; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('slack_bolt', 'slack_sdk', 'botbuilder') or m in "
        "('bot.app.server', 'bot.kernel.runtime', 'conversations.runtime')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
