"""Fault points for crash tests: ``BILLING_BOT_FAULT=<point>[:<marker file>]``.

At a named point (e.g. ``attach-after-blob``: an attachment's bytes are stored, its
record not yet committed) a process started with that variable writes its pid to
the marker file and stops there, so a test can ``kill -9`` it at exactly that
moment. Without the variable a fault point does nothing.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

FAULT_ENV = "BILLING_BOT_FAULT"


async def fault_point(name: str) -> None:
    """Stop here forever when ``BILLING_BOT_FAULT`` names this point (a crash test's hook)."""
    spec = os.environ.get(FAULT_ENV, "")
    point, _sep, marker = spec.partition(":")
    if not spec or point != name:
        return
    if marker:
        Path(marker).write_text(str(os.getpid()))
    await asyncio.Event().wait()
