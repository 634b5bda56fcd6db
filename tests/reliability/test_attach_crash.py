"""kill -9 during an upload (issue 20): a real ``serve``, stopped by a fault point between
storing a file's bytes and committing the attachment, then SIGKILLed; and killed just after.

After each restart the store holds the whole attachment (its record and its bytes) or none
of it (at most bytes nobody names, which the next upload of the same file reuses) — never a
record naming bytes that are not there.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.domain import Actor, Case, Category, Kind, Role
from bot.storage import Store, TinyDBEngine, blob_digest
from conversations.text import plain
from tests.processes import Serve

NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)
PDF = b"%PDF-1.7\n" + b"remittance advice 4711 " * 2000 + b"\n%%EOF\n"
LEAD = Actor("lena", Role.LEAD, "local", display_name="Lena")


def post(url: str, payload: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{url}/local/messages",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def attach_payload(data: bytes) -> dict[str, Any]:
    return {
        "user": "alice",
        "text": "attach BILL-1",
        "files": [{"name": "remittance.pdf", "data": base64.b64encode(data).decode()}],
    }


async def open_db(db: Path) -> Store:
    store = Store(TinyDBEngine(db))
    await store.open()
    return store


async def check_whole_or_none(db: Path) -> list[str]:
    """The attachments of BILL-1, each with its bytes in the store (asserted)."""
    store = await open_db(db)
    try:
        case = await store.get_case(1)
        assert case is not None
        for a in case.attachments:
            assert a.stored and await store.file_bytes(a.id) == PDF, a
        return [a.id for a in case.attachments]
    finally:
        await store.close()


async def test_kill_minus_nine_during_an_upload_leaves_the_whole_attachment_or_none(
    tmp_path: Path,
) -> None:
    db = tmp_path / "billing.json"
    store = await open_db(db)
    await store.create_case(
        lambda n: Case.new(
            n,
            kind=Kind.QUESTION,
            customer_id="contoso",
            category=Category.INVOICE,
            description="remittance",
            actor=LEAD,
            now=NOW,
        )
    )
    await store.close()

    # 1. Killed between the bytes and the record: none (the bytes may lie there, unnamed).
    marker = tmp_path / "stopped"
    serve = Serve(db, BILLING_BOT_FAULT=f"attach-after-blob:{marker}")
    serve.start()
    try:
        errors: list[BaseException] = []

        def send() -> None:
            try:
                post(serve.url, attach_payload(PDF), timeout=60)
            except BaseException as exc:  # the connection dies with the process
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the upload never reached the fault point"
            time.sleep(0.02)
    finally:
        serve.kill()
    sender.join(timeout=30)
    assert errors, "the upload was answered although the process was stopped before its commit"
    assert (db.with_name("billing.files") / blob_digest(PDF)).exists()  # the bytes, unnamed
    assert await check_whole_or_none(db) == []

    # 2. Again after the restart: attached, the bytes reused; then killed: all of it stays.
    serve = Serve(db)
    serve.start()
    try:
        answer = post(serve.url, attach_payload(PDF))
        text = plain(answer["replies"][0]["text"])
        assert text.startswith("Attached remittance.pdf"), answer
    finally:
        serve.kill()
    assert await check_whole_or_none(db) == [blob_digest(PDF)]
