"""Bot Framework authentication that never blocks the event loop, with bounded waits.

botbuilder's token code is synchronous under async names: ``JwtTokenExtractor``
fetches the OpenID metadata and signing keys with ``requests.get`` (no
timeout) on the event loop, and msrest signs each outbound call by asking MSAL
for a token (HTTP, no timeout) on the event loop too. One Microsoft endpoint
that hangs would stall every request of the server, Slack's included.

* :class:`SigningKeys` stands in for the SDK's cached keys of one metadata URL
  (``JwtTokenExtractor.metadataCache``, which every token check reads): the
  SDK's refresh rules (daily; for an unknown key id at most hourly), but one
  fetch at a time, in a worker thread, with connect and read timeouts. A
  request waits for a fetch under way at most ``KEYS_WAIT`` seconds after it
  began; while the keys cannot be had it gets :class:`KeysUnavailable` (the
  route answers 503 and the Bot Connector retries). The SDK's checks (issuer,
  endorsements, algorithm, signature, expiry, audience, service URL) run
  unchanged on these keys.
* :class:`OffLoopCredentials` gets the outbound token in a worker thread when a
  connector client is handed out; msrest's synchronous ``signed_session`` then
  only reads it.
* :class:`BotConfiguration` spells out the public cloud's endpoints (the SDK's
  "full configuration", the one sovereign clouds use), so the channel's
  OpenID metadata URL can be overridden (``BOT_OPENID_METADATA``, for tests and
  private clouds) while everything else stays what the SDK uses by default.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from botbuilder.integration.aiohttp import ConfigurationServiceClientCredentialFactory
from botbuilder.schema import CallerIdConstants
from botframework.connector.auth import (
    AuthenticationConstants,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from jwt.algorithms import RSAAlgorithm
from msal import ConfidentialClientApplication
from msrest.authentication import Authentication

from adapters.teams.settings import OPENID_METADATA_ENV
from bot.config import Settings

log = logging.getLogger(__name__)

# Every outbound call of the channel (Bot Connector, token, signing keys): a healthy
# Microsoft endpoint connects in well under a second and answers in one or two.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
TIMEOUTS = (CONNECT_TIMEOUT, READ_TIMEOUT)  # what requests (under msrest and MSAL) takes

KEYS_MAX_AGE = 24 * 3600.0  # the SDK's rule: signing keys are read again daily
KEYS_UNKNOWN_KID_EVERY = 3600.0  # the SDK's rule: an unknown key id re-reads them at most hourly
KEYS_WAIT = 3.0  # a request waits this long after a key fetch began, then gets 503
KEYS_RETRY = 30.0  # after a failed fetch, 503 at once for this long (no fetch per request)
KEYS_ABANDON = 2 * (CONNECT_TIMEOUT + READ_TIMEOUT)  # two calls; a fetch still running is stuck
TOKEN_WAIT = 2 * (CONNECT_TIMEOUT + READ_TIMEOUT)  # MSAL: authority discovery, then the token

# Its own threads: a stuck key or token fetch never takes one of the default executor's,
# which msrest uses for every Bot Connector call.
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="teams-auth")


class KeysUnavailable(Exception):
    """The channel's signing keys cannot be had now: answer 503, the Bot Connector retries."""


class TokenUnavailable(Exception):
    """No outbound token within ``TOKEN_WAIT``: the send fails and is retried later."""


# ---------------------------------------------------------------------------- settings
def openid_metadata_url(env: Mapping[str, str] | None = None) -> str:
    """Where the channel's signing keys are listed: ``BOT_OPENID_METADATA``, else Microsoft."""
    value = (os.environ if env is None else env).get(OPENID_METADATA_ENV, "").strip()
    return value or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL


class BotConfiguration:
    """The configuration object ``ConfigurationBotFrameworkAuthentication`` reads, from Settings.

    The SDK tests attributes with ``hasattr``: only the set ones are defined.
    The endpoints are the SDK's public-cloud constants, spelled out because
    the SDK takes the metadata URL only together with all of them (with none
    set it uses a built-in public-cloud path that reads the same constants).
    """

    def __init__(self, settings: Settings, metadata_url: str | None = None) -> None:
        self.APP_ID = settings.teams_app_id or ""
        self.APP_PASSWORD = settings.teams_app_password or ""
        self.APP_TYPE = settings.teams_app_type or "MultiTenant"
        if settings.teams_app_tenant_id:
            self.APP_TENANTID = settings.teams_app_tenant_id
        constants = AuthenticationConstants
        self.VALIDATE_AUTHORITY = True
        self.TO_CHANNEL_FROM_BOT_LOGIN_URL = constants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
        self.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = constants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = constants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
        self.OAUTH_URL = constants.OAUTH_URL
        self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = (
            metadata_url or constants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
        )
        self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = (
            constants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        )
        self.CALLER_ID = CallerIdConstants.public_azure_channel.value


# ---------------------------------------------------------------------------- inbound
@dataclass(frozen=True, slots=True)
class SigningKey:
    """One signing key as ``JwtTokenExtractor`` reads it (``public_key``, ``endorsements``)."""

    public_key: Any
    endorsements: list[str] = field(default_factory=list)


class SigningKeys:
    """The signing keys of one OpenID metadata URL, fetched off the event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: dict[str, SigningKey] = {}
        self.fetched_at: float | None = None  # monotonic time of the last good fetch
        self.fetches = 0  # fetches started (logs, tests)
        self._started_at = -math.inf  # monotonic time the last fetch started
        self._failed: str | None = None  # why the last fetch failed
        self._pending: asyncio.Future[dict[str, SigningKey]] | None = None

    async def get(self, key_id: str | None) -> SigningKey:
        """The key ``key_id``; what ``JwtTokenExtractor`` awaits for every token it checks."""
        now = time.monotonic()
        if self.fetched_at is None or now - self.fetched_at > KEYS_MAX_AGE:
            await self._refresh()
        elif key_id not in self.keys and now - self._started_at > KEYS_UNKNOWN_KID_EVERY:
            await self._refresh()  # a key may have been rotated in since
        key = self.keys.get(key_id) if key_id else None
        if key is None:
            raise PermissionError(f"no signing key of {self.url} has the key id {key_id!r}")
        return key

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        pending = self._pending
        if pending is not None and (
            now - self._started_at > KEYS_ABANDON or pending.get_loop() is not loop
        ):
            pending = self._pending = None  # the stuck thread ends on its own; answer dropped
        if pending is None:
            if self._failed is not None and now - self._started_at < KEYS_RETRY:
                raise KeysUnavailable(f"the signing keys could not be fetched: {self._failed}")
            self._started_at = now
            self.fetches += 1
            pending = self._pending = loop.run_in_executor(_EXECUTOR, self._fetch)
            pending.add_done_callback(self._done)
        remaining = self._started_at + KEYS_WAIT - now
        if remaining <= 0:
            raise KeysUnavailable(f"{self.url} has not answered for {now - self._started_at:.1f} s")
        try:
            # shield: a request that stops waiting leaves the fetch running for the next one
            await asyncio.wait_for(asyncio.shield(pending), remaining)
        except TimeoutError:
            raise KeysUnavailable(f"{self.url} did not answer within {KEYS_WAIT:g} s") from None
        except Exception as exc:  # noqa: BLE001 - whatever the fetch raised, the keys are missing
            raise KeysUnavailable(f"the signing keys could not be fetched: {exc}") from exc

    def _done(self, future: asyncio.Future[dict[str, SigningKey]]) -> None:
        if future is not self._pending:
            return  # abandoned
        self._pending = None
        exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if exc is None:
            self.keys = future.result()
            self.fetched_at = time.monotonic()
            self._failed = None
            return
        self._failed = f"{type(exc).__name__}: {exc}"
        log.warning("the Bot Framework signing keys of %s: %s", self.url, self._failed)

    def _fetch(self) -> dict[str, SigningKey]:
        """In a worker thread: the metadata, its ``jwks_uri``, the keys (as the SDK reads them)."""
        with requests.Session() as http:
            metadata = http.get(self.url, timeout=TIMEOUTS)
            metadata.raise_for_status()
            jwks = http.get(metadata.json()["jwks_uri"], timeout=TIMEOUTS)
            jwks.raise_for_status()
            listed = jwks.json()["keys"]
        keys: dict[str, SigningKey] = {}
        for jwk in listed if isinstance(listed, list) else []:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            try:
                public_key = RSAAlgorithm.from_jwk(json.dumps(jwk))
            except Exception:  # noqa: BLE001 - PyJWT raises several kinds; such a key signs nothing
                log.warning("signing key %s of %s is not an RSA key; ignored", jwk["kid"], self.url)
                continue
            endorsements = jwk.get("endorsements")
            keys[jwk["kid"]] = SigningKey(
                public_key, [str(e) for e in endorsements] if isinstance(endorsements, list) else []
            )
        return keys


def install_signing_keys(*urls: str) -> dict[str, SigningKeys]:
    """Make the SDK's token checks read these URLs' keys through :class:`SigningKeys`.

    ``JwtTokenExtractor`` is made per request and takes its keys from the
    class-wide ``metadataCache`` by URL; what is placed there is what it uses.
    """
    installed = {url: SigningKeys(url) for url in urls}
    JwtTokenExtractor.metadataCache.update(installed)
    return installed


# ---------------------------------------------------------------------------- outbound
class OffLoopCredentials(Authentication):
    """The SDK's outbound credentials, with the token fetched in a worker thread.

    :meth:`prepare` (awaited when a connector client is handed out) gets the
    token from MSAL, whose cache answers until five minutes before expiry;
    msrest's synchronous :meth:`signed_session` then only sets the header.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner  # AppCredentials (password, certificate, managed identity)
        self._token: str | None = None
        self._pending: asyncio.Future[str] | None = None

    def __getattr__(self, name: str) -> Any:
        # The SDK reads the inner credentials' fields (microsoft_app_id, oauth_scope, …).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def needs_token(self) -> bool:
        app_id = getattr(self.inner, "microsoft_app_id", None)
        return bool(app_id) and app_id != AuthenticationConstants.ANONYMOUS_SKILL_APP_ID

    async def prepare(self) -> None:
        """Have a current token, fetched off the loop; :class:`TokenUnavailable` if none came."""
        if not self.needs_token:
            return
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = self._pending = loop.run_in_executor(_EXECUTOR, self._fetch)
        try:
            self._token = await asyncio.wait_for(asyncio.shield(pending), TOKEN_WAIT)
        except TimeoutError:
            raise TokenUnavailable(f"no token from Entra ID within {TOKEN_WAIT:g} s") from None
        except Exception as exc:  # noqa: BLE001 - MSAL and requests raise many kinds
            raise TokenUnavailable(f"no token from Entra ID: {type(exc).__name__}: {exc}") from exc

    def _fetch(self) -> str:
        inner = self.inner
        if isinstance(inner, MicrosoftAppCredentials) and inner.app is None:
            # The app the SDK would make (ConfidentialClientApplication with its id, secret and
            # authority), plus timeouts: it fetches the authority's metadata and the token.
            inner.app = ConfidentialClientApplication(
                client_id=inner.microsoft_app_id,
                client_credential=inner.microsoft_app_password,
                authority=inner.oauth_endpoint,
                timeout=TIMEOUTS,
            )
        return str(inner.get_access_token())

    def signed_session(self, session: requests.Session | None = None) -> requests.Session:
        if not self.needs_token or self._token is None:
            # No token needed (local mode), or a caller that did not prepare: the SDK's way.
            return self.inner.signed_session(session)
        session = session or requests.Session()
        session.headers["Authorization"] = f"Bearer {self._token}"
        return session


class OffLoopCredentialFactory(ServiceClientCredentialsFactory):
    """The SDK's credential factory for these settings, its credentials wrapped off the loop."""

    def __init__(self, configuration: BotConfiguration) -> None:
        self.inner = ConfigurationServiceClientCredentialFactory(configuration)

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(await self.inner.is_valid_app_id(app_id))

    async def is_authentication_disabled(self) -> bool:
        return bool(await self.inner.is_authentication_disabled())

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> Authentication:
        inner = await self.inner.create_credentials(
            app_id, oauth_scope, login_endpoint, validate_authority
        )
        return OffLoopCredentials(inner)


__all__ = [
    "CONNECT_TIMEOUT",
    "KEYS_RETRY",
    "READ_TIMEOUT",
    "TIMEOUTS",
    "BotConfiguration",
    "KeysUnavailable",
    "OffLoopCredentialFactory",
    "OffLoopCredentials",
    "SigningKeys",
    "TokenUnavailable",
    "install_signing_keys",
    "openid_metadata_url",
]
