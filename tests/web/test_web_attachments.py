"""The web page's file input (issue 20): a multipart upload with the CSRF token, the upload
rules, and the file served back only to people who may see the case and the file."""

from __future__ import annotations

import hashlib

import aiohttp

from tests.harness import ask_many
from tests.web.conftest import AppFactory
from tests.web.helpers import TOKENS, Browser

PDF = b"%PDF-1.7\n" + b"invoice G012345678 " * 40 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def upload(
    browser: Browser,
    data: bytes,
    name: str,
    *,
    case: str = "",
    csrf: bool = True,
    for_customer: bool = False,
    claimed: str = "application/pdf",
    status: int = 200,
) -> str:
    form = aiohttp.FormData()
    if csrf:
        form.add_field("csrf", browser.csrf)
    form.add_field("case", case)
    if for_customer:
        form.add_field("for_customer", "on")
    form.add_field("file", data, filename=name, content_type=claimed)
    resp = await browser.client.post(
        "/chat/upload", data=form, headers={"X-Requested-With": "fetch"}, allow_redirects=False
    )
    text = await resp.text()
    assert resp.status == status, (resp.status, text[:800])
    return text


async def test_a_multipart_upload_is_attached_and_served_back_to_who_may_see_it(
    make_web: AppFactory,
) -> None:
    alice, runtime, client = await make_web()
    await ask_many(runtime, "alice", 1)
    await alice.login("alice", TOKENS["alice"])
    page = await alice.get("/chat?case=BILL-1")
    assert 'action="/chat/upload"' in page and 'enctype="multipart/form-data"' in page
    assert 'name="case" value="BILL-1"' in page
    # Without the CSRF token: refused, nothing stored.
    await upload(alice, PDF, "invoice.pdf", case="BILL-1", csrf=False, status=403)
    file_id = hashlib.sha256(PDF).hexdigest()
    assert not await runtime.store.has_file(file_id)
    text = await upload(alice, PDF, "invoice.pdf", case="BILL-1")
    assert "Attached invoice.pdf" in text and "BILL-1" in text
    assert await runtime.store.file_bytes(file_id) == PDF
    text = await upload(alice, PNG, "remittance.png", case="BILL-1", for_customer=True)
    png_id = hashlib.sha256(PNG).hexdigest()
    # A duplicate delivery (the same bytes again): attached once.
    text = await upload(alice, PDF, "invoice-again.pdf", case="BILL-1")
    assert "already attached" in text
    case = await runtime.store.get_case(1)
    assert [a.name for a in case.attachments] == ["invoice.pdf", "remittance.png"]
    assert [a.internal for a in case.attachments] == [True, False]

    resp = await client.get(f"/cases/BILL-1/attachments/{file_id}")
    assert resp.status == 200 and await resp.read() == PDF
    assert resp.headers["Content-Type"] == "application/pdf"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="invoice.pdf"')
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    case_page = await alice.get("/cases/BILL-1")
    assert "invoice.pdf" in case_page and "remittance.png" in case_page
    assert f'href="/cases/BILL-1/attachments/{file_id}"' in case_page

    carol, _runtime, carol_client = alice, runtime, client
    await alice.post("/logout", {}, fetch=False, status=303)
    await carol.login("carol", TOKENS["carol"])
    resp = await carol_client.get(f"/cases/BILL-1/attachments/{png_id}")
    assert resp.status == 200 and await resp.read() == PNG
    resp = await carol_client.get(f"/cases/BILL-1/attachments/{file_id}")  # internal
    assert resp.status == 404
    resp = await carol_client.get(f"/cases/BILL-1/attachments/{'0' * 64}")
    assert resp.status == 404
    case_page = await carol.get("/cases/BILL-1")
    assert "remittance.png" in case_page and "invoice.pdf" not in case_page


async def test_a_disallowed_or_over_size_upload_is_refused_and_nothing_is_stored(
    make_web: AppFactory,
) -> None:
    alice, runtime, _client = await make_web(attachment_max_bytes=4096)
    await ask_many(runtime, "alice", 1)
    await alice.login("alice", TOKENS["alice"])
    await alice.get("/chat")
    exe = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200
    text = await upload(alice, exe, "invoice.pdf", case="BILL-1")  # the name lies
    assert "not a file type I keep" in text and "Nothing was stored" in text
    over = PDF + b"x" * 5000
    text = await upload(alice, over, "big.pdf", case="BILL-1")
    assert "files up to 4 KB can be attached" in text
    way_over = PDF + b"x" * (3 * 2**20)  # beyond the upload's body limit: refused at the door
    await upload(alice, way_over, "huge.pdf", case="BILL-1", status=413)
    for data in (exe, over, way_over):
        assert not await runtime.store.has_file(hashlib.sha256(data).hexdigest())
    case = await runtime.store.get_case(1)
    assert case.attachments == []
