"""A fake Bot Framework token issuer on 127.0.0.1, and a proxy whose tunnels hang.

:class:`FakeIssuer` serves what ``login.botframework.com`` serves the bot: the
OpenID configuration (``/v1/.well-known/openidconfiguration``) pointing at a
JWKS (``/v1/.well-known/keys``) with endorsed RSA keys, and signs tokens the
way the Bot Connector does (``iss https://api.botframework.com``, ``aud`` the
app id, ``serviceurl`` the activity's). The bot reads it through
``BOT_OPENID_METADATA``; it counts every fetch, so a test knows the keys were
really read and a 401 is not a network error.

:class:`HangingProxy` is an HTTPS proxy (``HTTPS_PROXY``) that accepts the
``CONNECT`` to a host and answers nothing for a while, then 502: to the bot,
that host (``login.botframework.com``, ``login.microsoftonline.com``) hangs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socketserver
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

APP_ID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
APP_PASSWORD = "teams-app-password-for-the-tests"
ISSUER = "https://api.botframework.com"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 token keyed with ``secret`` (PyJWT refuses a PEM public key as the secret)."""
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """An ``alg: none`` token naming a real key id (so the algorithm is what is refused)."""
    return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}."


@dataclass
class FakeIssuer:
    """OpenID configuration + JWKS on 127.0.0.1, and the private keys to sign with."""

    private: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    endorsements: dict[str, list[str]] = field(default_factory=dict)
    metadata_hits: int = 0
    jwks_hits: int = 0
    url: str = ""

    def add_key(self, kid: str, endorsements: tuple[str, ...] = ("msteams",)) -> None:
        self.private[kid] = new_key()
        self.endorsements[kid] = list(endorsements)

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/v1/.well-known/openidconfiguration"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/.well-known/openidconfiguration", self._metadata)
        app.router.add_get("/v1/.well-known/keys", self._jwks)
        return app

    async def _metadata(self, request: web.Request) -> web.Response:
        self.metadata_hits += 1
        return web.json_response(
            {
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com/v1/auth",
                "jwks_uri": f"{self.url}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_hits += 1
        keys = []
        for kid, key in self.private.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "endorsements": self.endorsements[kid]})
        return web.json_response({"keys": keys})

    def claims(self, service_url: str, **changes: Any) -> dict[str, Any]:
        """What the Bot Connector puts in a token; ``changes`` set (or, as None, drop) claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "serviceurl": service_url,
            "nbf": now - 10,
            "exp": now + 3600,
            "iss": ISSUER,
            "aud": APP_ID,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, claims: dict[str, Any], kid: str = "k1", key: rsa.RSAPrivateKey | None = None
    ) -> str:
        return jwt.encode(claims, key or self.private[kid], algorithm="RS256", headers={"kid": kid})


@asynccontextmanager
async def fake_issuer() -> AsyncIterator[FakeIssuer]:
    """A running :class:`FakeIssuer` with key ``k1`` (endorsed for msteams) and ``k-webchat``."""
    issuer = FakeIssuer()
    issuer.add_key("k1")
    issuer.add_key("k-webchat", ("webchat",))
    server = TestServer(issuer.app(), host="127.0.0.1")
    await server.start_server()
    issuer.url = str(server.make_url("")).rstrip("/")
    try:
        yield issuer
    finally:
        await server.close()


class HangingProxy:
    """An HTTPS proxy on 127.0.0.1, in its own thread: a ``CONNECT`` to ``hang_hosts`` gets
    nothing for ``hang`` seconds, then 502; other hosts get 502 at once.

    Its own thread, not the test's event loop: code that blocks that loop (what
    the tests look for) must still see the hang end, not wait forever.
    """

    def __init__(self, hang: float, hang_hosts: tuple[str, ...]) -> None:
        self.hang = hang
        self.hang_hosts = hang_hosts
        self.connects: list[str] = []
        self.hung = threading.Event()  # a CONNECT to a hanging host arrived
        self.released = threading.Event()  # and its hang is over
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                target = self.rfile.readline().decode("latin-1").split(" ")[1:2]
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # the rest of the request head
                host = target[0].rsplit(":", 1)[0] if target else ""
                proxy.connects.append(host)
                if host in proxy.hang_hosts:
                    proxy.hung.set()
                    time.sleep(proxy.hang)
                    proxy.released.set()
                self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment that sends a process's https calls through this proxy."""
        no_proxy = "127.0.0.1,localhost"
        return {
            "HTTPS_PROXY": self.url,
            "https_proxy": self.url,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }

    def start(self) -> HangingProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


__all__ = [
    "APP_ID",
    "APP_PASSWORD",
    "FakeIssuer",
    "HangingProxy",
    "fake_issuer",
    "hs256",
    "new_key",
    "unsigned",
]
