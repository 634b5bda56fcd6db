"""The log records of the security package's tests (filled by ``conftest.py``, scanned last)."""

from __future__ import annotations

import logging

RECORDS: list[str] = []


class Recorder(logging.Handler):
    """Keeps each record as a person (or a log shipper) would read it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is still recorded raw
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        RECORDS.append(f"{record.levelname} {record.name}: {text}")
