"""Who is at the web page: sessions, login by token, CSRF tokens, and when login is needed.

The page is open (a name is enough, as in ``billing-bot chat --as NAME``) only
when the server is bound to loopback *and* the request comes from loopback
with a loopback ``Host`` and no proxy headers (a page on another site that
makes the browser talk to 127.0.0.1 through DNS rebinding has a foreign Host).
Everywhere else each person logs in with their own token from the config file
(``web_token_sha256`` in ``[[users]]``: the SHA-256 hex digest of the token),
compared in constant time. ``[web] require_login = true|false`` overrides the
rule either way (e.g. behind a reverse proxy on the same machine: ``true``).

Sessions live in memory (a restart logs everyone out) and are made only at
login: a visitor who has not logged in holds just a random cookie, and the
login form's CSRF token is an HMAC of that cookie under a per-process secret,
so anonymous requests allocate nothing. Token logins are kept per user (at
most :data:`MAX_SESSIONS_PER_USER`, a user's own oldest dropped first);
name-only logins (open on loopback) share a pool of :data:`MAX_NAMED_SESSIONS`
and never push out a token login. The cookie is HttpOnly and SameSite=Strict
(Secure on https); every POST must carry the CSRF token (form field ``csrf``
or header ``X-CSRF-Token``).

Nobody is ever locked out (:class:`LoginThrottle`): a wrong token is answered
after a delay that doubles with the recent failures of that name and of that
address, failures beyond a global rate get a quick 429, and a right token
always logs in at once (behind a proxy everyone shares one address).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from asyncio import sleep
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.config import ConfigError, Settings, UserConfig
from bot.locality import is_local, is_loopback

log = logging.getLogger(__name__)

COOKIE = "billing_bot_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_IDLE_SECONDS = 12 * 3600
MAX_SESSIONS_PER_USER = 20  # token logins of one user (browsers, devices)
MAX_NAMED_SESSIONS = 500  # name-only logins (open on loopback), all together
LOGIN_DELAY_FIRST = 0.25  # seconds before answering a first failed login ...
LOGIN_DELAY_MAX = 4.0  # ... doubling with each recent failure, up to this
FAILURE_MEMORY = 300.0  # a name's or address's failures are forgotten after this quiet time
MAX_FAILURES_PER_MINUTE = 60  # failed logins of everyone; beyond them a quick 429
MAX_TRACKED = 10_000  # names and addresses remembered for the delay


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
    """The in-memory session table: idle expiry, made at login only, bounded per kind."""

    def __init__(self) -> None:
        # Signs visitors' CSRF tokens; per process, like the sessions themselves.
        self._secret = secrets.token_bytes(32)
        self._by_user: dict[str, OrderedDict[str, Session]] = {}  # token logins
        self._named: OrderedDict[str, Session] = OrderedDict()  # name-only logins
        self._owner: dict[str, str] = {}  # sid -> user, for token logins

    def __len__(self) -> int:
        return len(self._owner) + len(self._named)

    def _pool(self, sid: str) -> OrderedDict[str, Session] | None:
        user = self._owner.get(sid)
        if user is not None:
            return self._by_user.get(user)
        return self._named if sid in self._named else None

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        pool = self._pool(sid)
        if pool is None or sid not in pool:
            return None
        session = pool[sid]
        now = time.monotonic()
        if now - session.seen > SESSION_IDLE_SECONDS:
            self.drop(session)
            return None
        session.seen = now
        pool.move_to_end(sid)  # keeps each pool least recently seen first, for eviction
        return session

    def visitor(self, cookie: str | None) -> tuple[Session, bool]:
        """A session that is not stored, for someone not logged in; True if the cookie is new.

        Its CSRF token is an HMAC of the cookie, so the login form works with
        nothing kept on the server (a double-submit token only this process can make).
        """
        fresh = not _looks_like_sid(cookie)
        sid = secrets.token_urlsafe(32) if fresh or cookie is None else cookie
        mac = hmac.new(self._secret, b"csrf|" + sid.encode("ascii"), hashlib.sha256)
        return Session(sid=sid, csrf=mac.hexdigest()), fresh

    def new(self, *, user: str, authenticated: bool = False) -> Session:
        """Store a session for someone who just logged in (by token, or by name on loopback)."""
        session = Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            user=user,
            authenticated=authenticated,
        )
        if authenticated:
            # Only a right token gets here, and each user fills only their own pool.
            pool = self._by_user.setdefault(user, OrderedDict())
            while len(pool) >= MAX_SESSIONS_PER_USER:
                old, _session = pool.popitem(last=False)
                self._owner.pop(old, None)
            self._owner[session.sid] = user
        else:
            pool = self._named
            while len(pool) >= MAX_NAMED_SESSIONS:
                pool.popitem(last=False)
        pool[session.sid] = session
        return session

    def drop(self, session: Session) -> None:
        user = self._owner.pop(session.sid, None)
        if user is not None:
            pool = self._by_user.get(user)
            if pool is not None:
                pool.pop(session.sid, None)
                if not pool:
                    del self._by_user[user]
        self._named.pop(session.sid, None)


def _looks_like_sid(cookie: str | None) -> bool:
    # Only our own kind of value is reused as a visitor id (it is HMAC'd and sent back).
    return (
        cookie is not None
        and 32 <= len(cookie) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in cookie)
    )


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Failed logins slow down; nobody is locked out and a right token always gets in.

    A wrong token is answered after ``LOGIN_DELAY_FIRST * 2**n`` seconds (at
    most ``LOGIN_DELAY_MAX``), where ``n`` is the larger count of recent
    failures of that name and of that client address: an attacker who shares
    an address with everyone (behind a proxy) slows only the wrong guesses.
    Beyond ``MAX_FAILURES_PER_MINUTE`` failures of everyone together, failures
    are answered 429 at once (no sleeping request piles up). Memory is bounded:
    at most ``MAX_TRACKED`` names and addresses, the quietest forgotten first.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self._recent: deque[float] = deque()  # times of the failures of the last minute
        self._capped = False

    def delay(self, name: str, client: str) -> float:
        """How long the next failure of this name or address would wait (seconds)."""
        n = max(self._count(_name_key(name)), self._count(_addr_key(client)))
        return min(LOGIN_DELAY_FIRST * 2 ** min(n, 16), LOGIN_DELAY_MAX)

    def over_cap(self) -> bool:
        """Whether everyone's failures of the last minute reached the global cap."""
        now = self.clock()
        while self._recent and now - self._recent[0] >= 60.0:
            self._recent.popleft()
        return len(self._recent) >= MAX_FAILURES_PER_MINUTE

    async def failed(self, name: str, client: str) -> bool:
        """Record a failed login, then wait its delay; False (answer 429 now) beyond the cap."""
        if self.over_cap():
            self._bump(name, client)
            if not self._capped:
                self._capped = True  # once per flood, not once per request
                log.warning(
                    "more than %d failed web logins in a minute: answering 429",
                    MAX_FAILURES_PER_MINUTE,
                )
            return False
        self._capped = False
        wait = self.delay(name, client)
        self._recent.append(self.clock())
        self._bump(name, client)
        await sleep(wait)  # the loop keeps serving everyone else meanwhile
        return True

    def succeeded(self, name: str) -> None:
        """A right token for this name: its own failures are forgotten (not the address's)."""
        self._keys.pop(_name_key(name), None)

    def _count(self, key: str) -> int:
        entry = self._keys.get(key)
        if entry is None:
            return 0
        if self.clock() - entry.last > FAILURE_MEMORY:
            del self._keys[key]
            return 0
        return entry.count

    def _bump(self, name: str, client: str) -> None:
        now = self.clock()
        for key in (_name_key(name), _addr_key(client)):
            count = self._count(key)
            self._keys[key] = _Failures(min(count + 1, 64), now)
            self._keys.move_to_end(key)
        while len(self._keys) > MAX_TRACKED:
            self._keys.popitem(last=False)


def _name_key(name: str) -> str:
    return "name:" + name.strip().casefold()[:64]


def _addr_key(client: str) -> str:
    return "addr:" + client


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
