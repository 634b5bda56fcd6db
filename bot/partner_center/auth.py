"""Access tokens for Partner Center from the Microsoft Entra ID OAuth2 token endpoint.

Plain form POSTs to ``{login}/{tenant}/oauth2/v2.0/token`` (no MSAL: it refuses
the non-https authority of a local test server). Two kinds of token:

* ``user`` (App+User) — ``grant_type=refresh_token`` with
  ``PARTNER_CENTER_REFRESH_TOKEN``; service requests accept only this kind.
* ``app`` (App-only) — ``grant_type=client_credentials``; enough for
  subscription changes.

Each token is cached until shortly before ``expires_in``; a refresh token the
endpoint rotates is kept in memory (never written anywhere). No token, secret
or form body is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.clock import Clock
from bot.i18n import _
from bot.partner_center.errors import PartnerCenterAuthError, PartnerCenterProtocolError

log = logging.getLogger(__name__)

TokenKind = Literal["user", "app"]

PARTNER_CENTER_RESOURCE = "https://api.partnercenter.microsoft.com"
APP_SCOPE = f"{PARTNER_CENTER_RESOURCE}/.default"
USER_SCOPE = f"{PARTNER_CENTER_RESOURCE}/user_impersonation offline_access"

# fetch(url, form) -> (HTTP status, parsed JSON body or None); retries are the caller's job.
FormPoster = Callable[[str, dict[str, str]], Awaitable[tuple[int, Any]]]


@dataclass(slots=True)
class AccessToken:
    value: str
    kind: TokenKind
    refresh_at: datetime

    def __repr__(self) -> str:
        return (
            f"AccessToken(kind={self.kind!r}, refresh_at={self.refresh_at.isoformat()}, value=***)"
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    login_url: str
    tenant_id: str
    client_id: str
    client_secret: str
    refresh_token: str | None

    def __repr__(self) -> str:
        return (
            f"Credentials(login_url={self.login_url!r}, tenant_id={self.tenant_id!r}, "
            f"client_id={self.client_id!r}, client_secret=***, "
            f"refresh_token={'***' if self.refresh_token else None})"
        )


class TokenProvider:
    """Fetches and caches the two token kinds; safe to share between concurrent calls."""

    def __init__(
        self,
        credentials: Credentials,
        post_form: FormPoster,
        clock: Clock,
        *,
        refresh_margin: timedelta = timedelta(minutes=5),
    ) -> None:
        self._creds = credentials
        self._post_form = post_form
        self._clock = clock
        self._margin = refresh_margin
        self._refresh_token = credentials.refresh_token
        self._cache: dict[TokenKind, AccessToken] = {}
        self._locks: dict[TokenKind, asyncio.Lock] = {"user": asyncio.Lock(), "app": asyncio.Lock()}

    def __repr__(self) -> str:
        cached = ", ".join(sorted(self._cache)) or "none"
        return f"TokenProvider({self._creds!r}, cached={cached})"

    @property
    def token_url(self) -> str:
        return f"{self._creds.login_url.rstrip('/')}/{self._creds.tenant_id}/oauth2/v2.0/token"

    def secrets(self) -> list[str]:
        """Every secret value this provider holds (to scrub them from any text we echo)."""
        values = [self._creds.client_secret, self._refresh_token, self._creds.refresh_token]
        values += [t.value for t in self._cache.values()]
        return [v for v in values if v]

    def invalidate(self, kind: TokenKind) -> None:
        """Forget a cached token (Partner Center answered 401 with it)."""
        self._cache.pop(kind, None)

    async def token(self, kind: TokenKind) -> str:
        cached = self._cache.get(kind)
        if cached and self._clock.now() < cached.refresh_at:
            return cached.value
        async with self._locks[kind]:
            cached = self._cache.get(kind)  # another caller may have fetched it meanwhile
            if cached and self._clock.now() < cached.refresh_at:
                return cached.value
            token = await self._fetch(kind)
            self._cache[kind] = token
            return token.value

    async def _fetch(self, kind: TokenKind) -> AccessToken:
        form = {"client_id": self._creds.client_id, "client_secret": self._creds.client_secret}
        if kind == "user":
            if not self._refresh_token:
                raise PartnerCenterAuthError(
                    _(
                        "Partner Center service requests need App+User sign-in: "
                        "set PARTNER_CENTER_REFRESH_TOKEN."
                    )
                )
            form |= {
                "grant_type": "refresh_token",
                "refresh_token": self._refresh_token,
                "scope": USER_SCOPE,
            }
        else:
            form |= {"grant_type": "client_credentials", "scope": APP_SCOPE}
        status, body = await self._post_form(self.token_url, form)
        if status != 200:
            raise self._error(kind, status, body)
        if not isinstance(body, Mapping) or not isinstance(body.get("access_token"), str):
            raise PartnerCenterProtocolError(
                _("Microsoft sign-in answered without an access token; try again later."),
                status=status,
            )
        try:
            expires_in = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        # Refresh 5 minutes early, or halfway for short-lived tokens.
        lifetime = max(expires_in - self._margin.total_seconds(), expires_in / 2)
        rotated = body.get("refresh_token")
        if (
            kind == "user"
            and isinstance(rotated, str)
            and rotated
            and rotated != self._refresh_token
        ):
            self._refresh_token = rotated
            log.info("partner center: kept the rotated refresh token (in memory only)")
        log.info("partner center: got an %s token, valid for %.0f s", _KIND_NAME[kind], expires_in)
        return AccessToken(
            value=body["access_token"],
            kind=kind,
            refresh_at=self._clock.now() + timedelta(seconds=lifetime),
        )

    def _error(self, kind: TokenKind, status: int, body: Any) -> PartnerCenterAuthError:
        error = ""
        description = ""
        if isinstance(body, Mapping):
            error = str(body.get("error") or "")
            description = str(body.get("error_description") or "")
        description = self._scrub(_first_sentence(description))
        codes = description.split(":", 1)[0] if description.startswith("AADSTS") else ""
        if status == 404:
            text = _(
                "Microsoft sign-in has no token endpoint at PARTNER_CENTER_LOGIN_URL "
                "for PARTNER_CENTER_TENANT_ID: check both."
            )
        elif codes == "AADSTS90002" or (
            "tenant" in description.lower() and "not found" in description.lower()
        ):
            text = _("Microsoft sign-in does not know tenant PARTNER_CENTER_TENANT_ID: check it.")
        elif error == "invalid_client" or status == 401:
            text = _(
                "Microsoft sign-in refused the app's credentials: check PARTNER_CENTER_CLIENT_ID "
                "and PARTNER_CENTER_CLIENT_SECRET (the secret may have expired)."
            )
        elif error == "invalid_grant" and kind == "user":
            text = _(
                "Microsoft sign-in refused PARTNER_CENTER_REFRESH_TOKEN (expired or revoked): "
                "get a new refresh token for the app with a Partner Center admin agent account."
            )
        elif error in ("unauthorized_client", "invalid_scope"):
            text = _(
                "Microsoft sign-in says the app may not call Partner Center: check the app's "
                "API permissions and consent for PARTNER_CENTER_CLIENT_ID."
            )
        else:
            why = error or f"HTTP {status}"
            text = (
                _("Microsoft sign-in failed ({why}): {description}").format(
                    why=why, description=description
                )
                if description
                else _("Microsoft sign-in failed ({why}).").format(why=why)
            )
        if description and description not in text:
            text += " " + _("Microsoft said: {description}").format(description=description)
        return PartnerCenterAuthError(
            text, status=status, code=error or None, description=description
        )

    def _scrub(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


_KIND_NAME: dict[TokenKind, str] = {"user": "App+User", "app": "App-only"}


def _first_sentence(description: str) -> str:
    """AAD descriptions end with trace ids and timestamps; keep the human part."""
    text = description.replace("\r", " ").split("\n", 1)[0]
    for marker in (" Trace ID:", " Correlation ID:", " Timestamp:"):
        text = text.split(marker, 1)[0]
    return text.strip()[:300]
