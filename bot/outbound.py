"""Timeouts of every outbound HTTP call (Slack, the Bot Connector, Partner Center, tokens).

A destination that accepts a connection and never answers must cost a bounded
while, never the SDKs' defaults (msrest waits ~100 s, the Slack SDK 30 s). The
durable request queue retries a failed item later, without holding up anyone
else's (see ``bot.kernel.runtime``), so short timeouts lose nothing.
"""

from __future__ import annotations

import aiohttp

CONNECT_SECONDS = 5.0  # TCP (and TLS) connect: a healthy API on the internet takes < 1 s
READ_SECONDS = 15.0  # between two reads of the answer (Slack and Teams answer in < 2 s)
TOTAL_SECONDS = 30.0  # one whole call, connect to last byte (Partner Center's slowest calls)


def client_timeout(total: float = TOTAL_SECONDS) -> aiohttp.ClientTimeout:
    """The aiohttp timeout of one outbound call: connect, read and total bounded."""
    return aiohttp.ClientTimeout(
        total=total,
        connect=CONNECT_SECONDS,
        sock_connect=CONNECT_SECONDS,
        sock_read=min(READ_SECONDS, total),
    )
