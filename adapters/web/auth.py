"""Who is at the web page: sessions, login by token, CSRF tokens, and when login is needed.

The page is open (a name is enough, as in ``billing-bot chat --as NAME``) only
when the server is bound to loopback *and* the request comes from loopback
with a loopback ``Host`` and no proxy headers (a page on another site that
makes the browser talk to 127.0.0.1 through DNS rebinding has a foreign Host).
Everywhere else each person logs in with their own token from the config file
(``web_token_sha256`` in ``[[users]]``: the SHA-256 hex digest of the token),
compared in constant time. ``[web] require_login = true|false`` overrides the
rule either way (e.g. behind a reverse proxy on the same machine: ``true``).

Sessions live in memory (a restart logs everyone out). The cookie is
HttpOnly and SameSite=Strict (Secure on https); every POST must carry the
session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.config import ConfigError, Settings, UserConfig
from bot.locality import is_local, is_loopback

COOKIE = "billing_bot_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_IDLE_SECONDS = 12 * 3600
MAX_SESSIONS = 5000
MAX_FAILURES = 10  # failed logins per client address ...
FAILURE_WINDOW = 300.0  # ... within this many seconds, then 429


@dataclass(slots=True)
class Session:
    """One browser's session: who (once known), its CSRF token, messages for the next page."""

    sid: str
    csrf: str
    user: str | None = None
    authenticated: bool = False  # logged in with a token (not just a name on loopback)
    seen: float = field(default_factory=time.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The ``[web]`` table of the config file."""

    require_login: bool | None = None  # None: decided per request (open on loopback only)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebConfig:
        data = settings.raw.get("web", {})
        if not isinstance(data, dict):
            raise ConfigError("[web] must be a table")
        value = data.get("require_login")
        if value is not None and not isinstance(value, bool):
            raise ConfigError("web.require_login must be true or false")
        unknown = set(data) - {"require_login"}
        if unknown:
            raise ConfigError(f"[web] has unknown keys: {', '.join(sorted(unknown))}")
        for i, user in enumerate(settings.users):
            digest = user.web_token_sha256
            if digest is not None and not _is_sha256_hex(digest):
                raise ConfigError(
                    f"users[{i}].web_token_sha256 must be the 64-character SHA-256 hex digest "
                    'of the token (python3 -c "import hashlib,sys; '
                    'print(hashlib.sha256(sys.argv[1].encode()).hexdigest())" TOKEN)'
                )
        return cls(require_login=value)


def _is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def token_digest(token: str) -> str:
    """What the config stores for a token: its SHA-256 as lower-case hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Sessions:
    """The in-memory session table, with idle expiry and a size cap."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        now = time.monotonic()
        if session is None or now - session.seen > SESSION_IDLE_SECONDS:
            self._by_id.pop(sid, None)
            return None
        session.seen = now
        return session

    def new(self, *, user: str | None = None, authenticated: bool = False) -> Session:
        if len(self._by_id) >= MAX_SESSIONS:
            oldest = sorted(self._by_id.values(), key=lambda s: s.seen)[: MAX_SESSIONS // 10]
            for s in oldest:
                self._by_id.pop(s.sid, None)
        session = Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            user=user,
            authenticated=authenticated,
        )
        self._by_id[session.sid] = session
        return session

    def drop(self, session: Session) -> None:
        self._by_id.pop(session.sid, None)

    # ---- failed logins ---------------------------------------------------------
    def throttled(self, client: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW]
        self._failures[client] = recent
        return len(recent) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, []).append(time.monotonic())


def login_required(request: web.Request, settings: Settings, config: WebConfig) -> bool:
    """Whether this request must come from a token login (see the module docstring)."""
    if config.require_login is not None:
        return config.require_login
    return not (is_loopback(settings.host) and is_local(request))


def check_token(settings: Settings, name: str, token: str) -> UserConfig | None:
    """The configured user whose token this is, compared in constant time; else None."""
    cfg = settings.user_by_name(name.strip()) if name.strip() else None
    expected = (cfg.web_token_sha256 or "").lower() if cfg else ""
    digest = token_digest(token)
    # Always one comparison of two 64-character strings, whether the name exists or not.
    ok = hmac.compare_digest(digest, expected if expected else "0" * 64)
    if cfg is None or not expected or not token:
        return None
    return cfg if ok else None


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    if session is None or not sent:
        return False
    return hmac.compare_digest(session.csrf.encode(), sent.encode())


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.sid,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def safe_next(target: Any, default: str = "/") -> str:
    """A local path to go back to after a POST (never another site)."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


def tokens_configured(settings: Settings) -> bool:
    return any(u.web_token_sha256 for u in settings.users)
