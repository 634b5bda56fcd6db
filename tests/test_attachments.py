"""Files on cases (issue 20): the terminal's ``attach BILL-n PATH``, the case in context,
the upload rules (size, type from the content), duplicates, and who sees which file."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from adapters.local.chat import ChatSession, message_for
from bot.attachments import CSV, JPEG, PDF, PNG, XLSX, FileRefused, check_upload, sniff
from bot.kernel.model import Channel, Reply, SharedFile
from bot.storage import blob_digest
from tests.harness import Chat, DeskEnv, make_settings

PDF_BYTES = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40


def xlsx_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


@pytest.fixture
def env() -> DeskEnv:
    return DeskEnv()


async def share(chat: Chat, text: str, *files: SharedFile) -> list[Reply]:
    chat.transcript.append(f"> {text} +{len(files)} files")
    return await chat._run(chat._msg(text=text, files=list(files)))


# ---- the rules -------------------------------------------------------------------------


def test_the_type_is_read_from_the_content_not_the_name() -> None:
    assert sniff(PDF_BYTES) == PDF and sniff(PNG_BYTES) == PNG
    assert sniff(b"\xff\xd8\xff\xe0" + b"\x00" * 20) == JPEG
    assert sniff(xlsx_bytes()) == XLSX
    assert sniff("invoice,amount\nG1,12.50\n发票,1\n".encode()) == CSV
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", "<w/>")  # a .docx is a zip too, but not a workbook
    assert sniff(buf.getvalue()) is None
    assert sniff(b"MZ\x90\x00\x03" + b"\x00" * 30) is None  # an .exe called invoice.pdf
    assert sniff(b"a,b\n\x00\x01") is None  # NUL: not text
    assert sniff(b"\xff\xfe\xfd not utf-8") is None
    assert sniff(b'"unclosed,quote\n') is None
    with pytest.raises(FileRefused, match="only PDF, PNG, JPEG, CSV and XLSX"):
        check_upload("invoice.pdf", b"MZ\x90\x00" + b"\x00" * 30)
    with pytest.raises(FileRefused, match="up to 1 KB"):
        check_upload("big.pdf", PDF_BYTES + b" " * 2000, max_bytes=1024)
    assert check_upload("scan.JPG.exe", PNG_BYTES) == PNG  # the name says nothing either way


# ---- the terminal: attach BILL-n PATH ----------------------------------------------------


async def test_attach_in_the_terminal_keeps_the_file_and_lists_it(
    env: DeskEnv, tmp_path: Path
) -> None:
    case = await env.new_question("alice")
    path = tmp_path / "Rechnung März.pdf"
    path.write_bytes(PDF_BYTES)

    async def send(payload: dict[str, Any]) -> list[Reply]:  # the chat that opened the store
        return (await env.runtime.handle(message_for(payload))).replies

    session = ChatSession(send, "alice")
    out = await session.line(f"attach {case} {path}")
    assert "Attached Rechnung März.pdf (" in out and case in out, out
    assert "Internal: the customer does not see it." in out
    file_id = blob_digest(PDF_BYTES)
    assert await env.store.file_bytes(file_id) == PDF_BYTES
    stored = await env.store.get_case(int(case.split("-")[1]))
    assert stored is not None and [a.name for a in stored.attachments] == ["Rechnung März.pdf"]
    assert stored.attachments[0].stored and stored.attachments[0].internal
    out = await session.line(f"附件 {case} {path}")  # the Chinese alias; the same file again
    assert "already attached" in out
    assert len((await env.store.get_case(stored.number)).attachments) == 1  # type: ignore[union-attr]
    out = await session.line(f"status {case}")
    assert "Attachments:" in out and "Rechnung März.pdf" in out
    assert f"/cases/{case}/attachments/{file_id}" in out
    out = await session.line(f"attach {case} {tmp_path / 'nope.pdf'}")
    assert "I cannot read" in out


async def test_a_disallowed_or_over_size_file_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    env = DeskEnv(make_settings(attachment_max_bytes=1024))
    case = await env.new_question("alice")
    alice = env.chat("alice")
    await share(alice, f"attach {case}", SharedFile("run.pdf", b"MZ\x90\x00" + b"\x00" * 40))
    alice.expect("not a file type I keep", "Nothing was stored")
    assert alice.kinds == ["error"]
    big = PDF_BYTES + b"0" * 2000
    await share(alice, f"attach {case}", SharedFile("big.pdf", big))
    alice.expect("files up to 1 KB can be attached", "Nothing was stored")
    for data in (big, b"MZ\x90\x00" + b"\x00" * 40):
        assert not await env.store.has_file(blob_digest(data))
    stored = await env.store.get_case(int(case.split("-")[1]))
    assert stored is not None and stored.attachments == []


async def test_customers_attach_to_their_own_cases_and_never_see_internal_files(
    env: DeskEnv,
) -> None:
    case = await env.new_question("alice")
    alice, carol, dave = env.chat("alice"), env.chat("carol"), env.chat("dave")
    await share(alice, f"attach {case}", SharedFile("notes.csv", b"a,b\n1,2\n"))
    await share(carol, f"attach {case}", SharedFile("remittance.png", PNG_BYTES))
    carol.expect("Attached remittance.png")
    carol.expect_not("Internal")
    await share(alice, f"attach {case} --customer", SharedFile("credit.pdf", PDF_BYTES))
    await carol.send(f"status {case}")
    carol.expect("remittance.png", "credit.pdf", "added a file")
    carol.expect_not("notes.csv", "internal")
    await alice.send(f"status {case}")
    alice.expect("notes.csv", "remittance.png", "credit.pdf", "attached an internal file")
    # Another tenant's contact: the same words as for a case that does not exist.
    await share(dave, f"attach {case}", SharedFile("x.pdf", PDF_BYTES + b"dave"))
    dave.expect(f"I can't find {case}.")
    assert not await env.store.has_file(blob_digest(PDF_BYTES + b"dave"))
    nora = env.chat("nora")
    await share(nora, f"attach {case}", SharedFile("x.pdf", PDF_BYTES + b"nora"))
    assert not await env.store.has_file(blob_digest(PDF_BYTES + b"nora"))


async def test_a_file_without_a_case_goes_to_the_case_in_context(env: DeskEnv) -> None:
    first = await env.new_question("alice")
    second = await env.new_question("alice", text="Another question")
    carol = env.chat("carol", Channel.WEB, "web:carol")
    await share(carol, "", SharedFile("a.pdf", PDF_BYTES))
    carol.expect("Which case is the file for?")
    await carol.send(f"status {first}")
    await share(carol, "", SharedFile("a.pdf", PDF_BYTES))
    carol.expect("Attached a.pdf", first)
    await share(carol, f"here it is for {second}", SharedFile("b.png", PNG_BYTES))
    carol.expect("Attached b.png", second)
    # The context is per person and conversation: alice's chat has none of carol's.
    alice = env.chat("alice", Channel.WEB, "web:alice")
    await share(alice, "", SharedFile("c.pdf", PDF_BYTES + b"c"))
    alice.expect("Which case is the file for?")
    await alice.send("attach")
    alice.expect("Which case is the file for?")
    await alice.send(f"attach {first}")
    alice.expect("Send the file with it")
