"""What a file uploaded to a case may be: its size, and its type read from its bytes.

The one place for the upload rules (the terminal's ``attach BILL-n PATH`` and the
web page's file input both come here through the desk): at most
:data:`DEFAULT_MAX_BYTES` (``attachments.max_bytes`` in the config), and one of
PDF, PNG, JPEG, CSV, XLSX as its *content* says — the name and the type a browser
claims are not trusted. A file that breaks a rule is refused with
:class:`FileRefused`, whose text is for the person, and nothing is stored.
"""

from __future__ import annotations

import csv
import io
import zipfile

from bot.domain import DomainError
from bot.i18n import _

DEFAULT_MAX_BYTES = 10 * 2**20

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

ALLOWED_TYPES = (PDF, PNG, JPEG, CSV, XLSX)
TYPE_LABELS = {PDF: "PDF", PNG: "PNG", JPEG: "JPEG", CSV: "CSV", XLSX: "XLSX"}
MAX_NAME = 200


class FileRefused(DomainError):
    """A file the desk does not keep (too large, empty, or not an allowed type)."""


def _is_xlsx(data: bytes) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return False
    return "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names)


def _is_csv(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    if not text.strip():
        return False
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return False
    return bool(rows)


def sniff(data: bytes) -> str | None:
    """The allowed content type ``data`` is, read from its bytes; None for anything else."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if _is_xlsx(data):
        return XLSX
    if _is_csv(data):
        return CSV
    return None


def size_text(size: int) -> str:
    """A file size as people read it: 812 B, 14 KB, 2.5 MB."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 2**20:.1f} MB"


def clean_name(name: str) -> str:
    """A file's name without any folder, control characters or excess length."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip() or "file"
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: MAX_NAME - len(ext) - 2] + "…" + dot + ext) if dot else base[:MAX_NAME]
    return base


def check_upload(name: str, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The content type of an upload the desk may keep; :class:`FileRefused` otherwise."""
    shown = clean_name(name)
    if len(data) > max_bytes:
        raise FileRefused(
            _("{name} is {size}; files up to {limit} can be attached. Nothing was stored.").format(
                name=shown, size=size_text(len(data)), limit=size_text(max_bytes)
            )
        )
    if not data:
        raise FileRefused(_("{name} is empty. Nothing was stored.").format(name=shown))
    kind = sniff(data)
    if kind is None:
        raise FileRefused(
            _(
                "{name} is not a file type I keep: only PDF, PNG, JPEG, CSV and XLSX files "
                "(checked from the file's content, not its name). Nothing was stored."
            ).format(name=shown)
        )
    return kind


__all__ = [
    "ALLOWED_TYPES",
    "DEFAULT_MAX_BYTES",
    "FileRefused",
    "check_upload",
    "clean_name",
    "size_text",
    "sniff",
]
