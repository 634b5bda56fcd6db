"""What counts as a local request (PRODUCT.md, "what counts as local"): one rule for every route.

A request is local only when its TCP peer is a loopback address, its ``Host``
is a loopback name or address, and it carries no forwarding header
(``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``). The peer address alone is not
enough: a page on another site reaches ``127.0.0.1`` through DNS rebinding with
a foreign ``Host``, and a reverse proxy on the same machine makes every
outside request come from loopback (with a forwarding header).

Only local requests may use the loopback-only routes (``/local/*``), Teams'
unauthenticated local (Emulator) mode, the open web page and the detailed
``/healthz``. This module needs no aiohttp: it reads what any request has.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

LOCAL_ONLY = (
    "the local endpoints answer only local requests: from loopback, to a loopback Host, "
    "with no proxy (forwarding) header"
)


class RequestLike(Protocol):
    """The three things the rule reads (an ``aiohttp.web.Request`` has them)."""

    @property
    def remote(self) -> str | None: ...

    @property
    def host(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``, no port) is a loopback address."""
    if not host:
        return False
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def host_name(host_header: str | None) -> str | None:
    """The name or address of a ``Host`` header value, without its port; None if malformed."""
    if not host_header or any(c.isspace() or c in "/?#@\\" for c in host_header):
        return None
    try:
        parts = urlsplit(f"http://{host_header}")
        return parts.hostname
    except ValueError:
        return None


def forwarded(headers: Mapping[str, str]) -> bool:
    """Whether the request carries a forwarding header (it passed through a proxy)."""
    return any(
        name.lower() in ("forwarded", "x-real-ip") or name.lower().startswith("x-forwarded-")
        for name in headers
    )


def is_local(request: RequestLike) -> bool:
    """Loopback peer **and** loopback ``Host`` **and** no forwarding header."""
    if not is_loopback(request.remote):
        return False
    try:
        host_header = request.host
    except (ValueError, KeyError):
        return False
    if not is_loopback(host_name(host_header)):
        return False
    return not forwarded(request.headers)


def is_loopback_url(url: str | None) -> bool:
    """Whether ``url`` is an http(s) URL whose host is a loopback address or name."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and is_loopback(parts.hostname)
    except ValueError:
        return False
