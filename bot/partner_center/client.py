"""The Partner Center REST client: service requests, support topics, subscription status.

Every call carries the documented headers (``Authorization: Bearer``,
``Accept``, ``MS-RequestId``, ``MS-CorrelationId``, ``MS-Contract-Version: v1``).
``MS-RequestId`` is a new GUID per logical call and the same on each retry of
it: Partner Center treats a repeated id as the same call, which makes retries
of a create safe. Timeouts, 5xx and 429 are retried with exponential backoff
and jitter (``Retry-After`` honoured), at most ``max_attempts`` tries; other
4xx are not retried. Every failure reaches the caller as a
``PartnerCenterError`` whose ``user_message`` a billing agent understands.

All URLs come from ``Settings`` (``PARTNER_CENTER_URL``,
``PARTNER_CENTER_LOGIN_URL``) so tests point the client at a local fake.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import is_guid
from bot.i18n import N_, _, ngettext, plural_count
from bot.outbound import TOTAL_SECONDS, client_timeout
from bot.partner_center.auth import Credentials, TokenKind, TokenProvider
from bot.partner_center.errors import (
    PartnerCenterAuthError,
    PartnerCenterConflict,
    PartnerCenterError,
    PartnerCenterInputError,
    PartnerCenterNotConfigured,
    PartnerCenterNotFound,
    PartnerCenterProtocolError,
    PartnerCenterRejected,
    PartnerCenterUnavailable,
)
from bot.partner_center.models import (
    SEVERITIES,
    ServiceRequestContact,
    ServiceRequestInfo,
    SubscriptionStatus,
    SubscriptionStatusChange,
    SupportTopic,
    field_ci,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]

CONTRACT_VERSION = "v1"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_SETTING_ENV = {
    "partner_center_tenant_id": "PARTNER_CENTER_TENANT_ID",
    "partner_center_client_id": "PARTNER_CENTER_CLIENT_ID",
    "partner_center_client_secret": "PARTNER_CENTER_CLIENT_SECRET",
    "partner_center_refresh_token": "PARTNER_CENTER_REFRESH_TOKEN",
}
_CREDENTIALS_HINT = N_(
    "check PARTNER_CENTER_TENANT_ID, PARTNER_CENTER_CLIENT_ID, PARTNER_CENTER_CLIENT_SECRET "
    "and PARTNER_CENTER_REFRESH_TOKEN, and the app's Partner Center API permissions"
)
# A subscription's status as Partner Center names it, for the messages above.
_STATUS_LABELS = {"active": N_("active"), "suspended": N_("suspended")}


def _status(value: str) -> str:
    """``active``/``suspended`` in the current locale; other statuses as Partner Center says."""
    return _(_STATUS_LABELS[value]) if value in _STATUS_LABELS else value


def new_request_id() -> str:
    """A fresh GUID for ``MS-RequestId``; store it to retry a create idempotently."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class _Raw:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _GaveUp(Exception):
    """Retries exhausted (or Retry-After too long); mapped to PartnerCenterUnavailable."""

    def __init__(
        self, reason: str, *, maybe_sent: bool, status: int | None, retry_after: float | None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_sent = maybe_sent
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Call:
    """What one API call is about, for error messages."""

    subject: str  # "service request 123", for 404 texts
    not_done: str  # "nothing was filed": said when the call surely had no effect
    maybe_done: str | None = None  # said when a write may have happened (None: a read)


class PartnerCenterClient:
    """Async Partner Center REST client on aiohttp.

    ``configured`` tells callers whether API mode is possible; without
    credentials they use manual mode. Pass ``session`` to share an aiohttp
    session (the client then does not close it), ``clock`` for token and cache
    expiry, ``sleep`` and ``rng`` to make backoff instant and deterministic in tests.
    """

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession | None = None,
        *,
        clock: Clock | None = None,
        timeout: float = TOTAL_SECONDS,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        max_retry_after: float = 60.0,
        topics_ttl: timedelta = timedelta(hours=1),
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        application_name: str = "billing-bot",
    ) -> None:
        self._settings = settings
        self._session = session
        self._owns_session = session is None
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.max_retry_after = max_retry_after
        self.topics_ttl = topics_ttl
        self._sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        self._rng = rng if rng is not None else random.Random()
        self.application_name = application_name
        self._base_url = settings.partner_center_url.rstrip("/")
        self._topics: tuple[list[SupportTopic], datetime] | None = None
        self._topics_lock = asyncio.Lock()
        self._tokens: TokenProvider | None = None
        if settings.partner_center_tenant_id and settings.partner_center_client_id:
            if settings.partner_center_client_secret:
                self._tokens = TokenProvider(
                    Credentials(
                        login_url=settings.partner_center_login_url,
                        tenant_id=settings.partner_center_tenant_id,
                        client_id=settings.partner_center_client_id,
                        client_secret=settings.partner_center_client_secret,
                        refresh_token=settings.partner_center_refresh_token,
                    ),
                    self._post_form,
                    self._clock,
                )

    # -- mode ---------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """All four credentials are set: service requests and subscriptions work by API."""
        return not self.missing_settings()

    @property
    def can_change_subscriptions(self) -> bool:
        """Tenant, client id and secret are set (App-only sign-in is enough)."""
        return self._tokens is not None

    def missing_settings(self) -> list[str]:
        """Environment variables still needed for API mode (empty when configured)."""
        return [env for attr, env in _SETTING_ENV.items() if not getattr(self._settings, attr)]

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"PartnerCenterClient(url={self._base_url!r}, "
            f"login_url={s.partner_center_login_url!r}, "
            f"tenant_id={s.partner_center_tenant_id!r}, client_id={s.partner_center_client_id!r}, "
            f"client_secret={'***' if s.partner_center_client_secret else None}, "
            f"refresh_token={'***' if s.partner_center_refresh_token else None})"
        )

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> PartnerCenterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- service requests (App+User) ----------------------------------------

    async def create_service_request(
        self,
        agent_locale: str,
        title: str,
        description: str,
        severity: str,
        support_topic_id: str | int,
        primary_contact: ServiceRequestContact | Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
    ) -> ServiceRequestInfo:
        """File a service request; ``request_id`` (a GUID) makes a repeat of this create safe.

        Store ``request_id`` (or ``new_request_id()``) before calling: calling
        again with the same id after a timeout or a double click returns the
        same request instead of filing a second one.
        """
        self._require("user")
        if not _LOCALE.match(agent_locale or ""):
            raise PartnerCenterInputError(
                _('"{locale}" is not a locale like en-US.').format(locale=agent_locale)
            )
        if not title or not title.strip():
            raise PartnerCenterInputError(_("A service request needs a title."))
        if len(title) > 255:
            raise PartnerCenterInputError(_("The title is too long for Partner Center (255 max)."))
        if not description or not description.strip():
            raise PartnerCenterInputError(_("A service request needs a description."))
        if severity not in SEVERITIES:
            raise PartnerCenterInputError(
                _('Severity "{severity}" is not one of {choices}.').format(
                    severity=severity, choices=", ".join(SEVERITIES)
                )
            )
        topic = str(support_topic_id).strip()
        if not topic:
            raise PartnerCenterInputError(_("A service request needs a support topic."))
        rid = request_id or new_request_id()
        if not is_guid(rid):
            raise PartnerCenterInputError(_('Request id "{rid}" is not a GUID.').format(rid=rid))
        body: dict[str, Any] = {
            "Title": title,
            "Description": description,
            "Severity": severity,
            "SupportTopicId": topic,
        }
        if primary_contact is not None:
            body["PrimaryContact"] = (
                primary_contact.to_api()
                if isinstance(primary_contact, ServiceRequestContact)
                else dict(primary_contact)
            )
        data = await self._call(
            "POST",
            f"/v1/servicerequests/{quote(agent_locale, safe='')}",
            kind="user",
            body=body,
            request_id=rid,
            about=_Call(
                subject=_("such service request endpoint (check PARTNER_CENTER_URL)"),
                not_done=_("nothing was filed"),
                maybe_done=_(
                    "Partner Center did not answer in time, so we can't tell whether the "
                    "service request was filed. Trying again is safe: the retry reuses request "
                    "id {rid}, so Partner Center files it at most once."
                ).format(rid=rid),
            ),
        )
        info = ServiceRequestInfo.from_api(_mapping(data), request_id=rid)
        if not info.id:
            raise PartnerCenterProtocolError(
                _(
                    "Partner Center accepted the service request but did not say its number; "
                    "look it up in the Partner Center portal (request id {rid})."
                ).format(rid=rid),
                request_id=rid,
            )
        log.info("partner center: service request %s filed (MS-RequestId=%s)", info.id, rid)
        return info

    async def get_service_request(self, service_request_id: str) -> ServiceRequestInfo:
        """Read a service request (``status``: none, open, closed or attention_needed)."""
        self._require("user")
        sr = _sr_id(service_request_id)
        data = await self._call(
            "GET",
            f"/v1/servicerequests/{quote(sr, safe='')}",
            kind="user",
            about=_Call(subject=f"service request {sr}", not_done="nothing was changed"),
        )
        return ServiceRequestInfo.from_api(_mapping(data))

    async def add_note(self, service_request_id: str, text: str) -> ServiceRequestInfo | None:
        """Add a note (``PATCH {"NewNote": {"Text": …}}``); the updated request if returned."""
        self._require("user")
        sr = _sr_id(service_request_id)
        if not text or not text.strip():
            raise PartnerCenterInputError(_("A note needs some text."))
        data = await self._call(
            "PATCH",
            f"/v1/servicerequests/{quote(sr, safe='')}",
            kind="user",
            body={"NewNote": {"Text": text}},
            about=_Call(
                subject=_("service request {sr}").format(sr=sr),
                not_done=_("the note was not added"),
                maybe_done=_(
                    "Partner Center did not answer in time, so we can't tell whether the note "
                    "reached service request {sr}; check it in the Partner Center portal "
                    "before adding it again."
                ).format(sr=sr),
            ),
        )
        if isinstance(data, Mapping) and data:
            return ServiceRequestInfo.from_api(data)
        return None

    async def support_topics(self, *, refresh: bool = False) -> list[SupportTopic]:
        """The support topics a service request can name, cached for ``topics_ttl``."""
        self._require("user")
        async with self._topics_lock:
            if self._topics and not refresh and self._clock.now() < self._topics[1]:
                return list(self._topics[0])
            data = await self._call(
                "GET",
                "/v1/servicerequests/supporttopics",
                kind="user",
                about=_Call(subject=_("list of support topics"), not_done=_("nothing was changed")),
            )
            items = field_ci(_mapping(data), "Items")
            if not isinstance(items, list):
                raise PartnerCenterProtocolError(
                    _(
                        "Partner Center sent a support topic list we could not read; "
                        "try again later."
                    )
                )
            topics = [SupportTopic.from_api(i) for i in items if isinstance(i, Mapping)]
            self._topics = (topics, self._clock.now() + self.topics_ttl)
            return list(topics)

    # -- subscriptions (App-only) ---------------------------------------------

    async def get_subscription(
        self, customer_tenant_id: str, subscription_id: str
    ) -> tuple[dict[str, Any], str]:
        """The full subscription resource and its etag (for ``If-Match``)."""
        self._require("app")
        tenant, sub = (
            _guid(customer_tenant_id, _("customer tenant id")),
            _guid(subscription_id, _("subscription id")),
        )
        raw, data = await self._call_raw(
            "GET",
            f"/v1/customers/{tenant}/subscriptions/{sub}",
            kind="app",
            about=_Call(
                subject=_("subscription {sub} for customer {tenant}").format(
                    sub=sub, tenant=tenant
                ),
                not_done=_("nothing was changed"),
            ),
        )
        resource = dict(_mapping(data))
        attributes = field_ci(resource, "Attributes")
        etag = field_ci(attributes, "Etag") if isinstance(attributes, Mapping) else None
        etag = etag or raw.headers.get("ETag")
        if not etag:
            raise PartnerCenterProtocolError(
                _(
                    "Partner Center sent subscription {sub} without an etag, so we can't change "
                    "it safely; try again later."
                ).format(sub=sub)
            )
        return resource, str(etag)

    async def set_subscription_status(
        self, customer_tenant_id: str, subscription_id: str, status: SubscriptionStatus
    ) -> SubscriptionStatusChange:
        """Suspend (``"suspended"``) or reactivate (``"active"``) a customer's subscription.

        Reads the subscription, then PATCHes the full resource with ``Status``
        changed and ``If-Match: <etag>``; on 412 it reads again and retries once.
        If the subscription already has ``status`` nothing is sent
        (``changed`` is false). Safe to call again after any failure.
        """
        if status not in ("suspended", "active"):
            raise PartnerCenterInputError(
                _('Status "{status}" is not "suspended" or "active".').format(status=status)
            )
        self._require("app")
        tenant = _guid(customer_tenant_id, _("customer tenant id"))
        sub = _guid(subscription_id, _("subscription id"))
        verb = "suspend" if status == "suspended" else "reactivate"
        for round_ in (1, 2):
            resource, etag = await self.get_subscription(tenant, sub)
            current = str(field_ci(resource, "Status") or "unknown")
            name = field_ci(resource, "FriendlyName") or field_ci(resource, "OfferName")
            label = (
                _("subscription {sub} ({name})").format(sub=sub, name=name)
                if name
                else _("subscription {sub}").format(sub=sub)
            )
            if current == status:
                extra = _(" (changed meanwhile by someone else)") if round_ == 2 else ""
                log.info("partner center: %s of %s already %s%s", label, tenant, status, extra)
                return SubscriptionStatusChange(
                    customer_tenant_id=tenant,
                    subscription_id=sub,
                    previous_status=current,
                    status=current,
                    changed=False,
                    message=_(
                        "The {label} is already {status}{extra}; nothing was changed."
                    ).format(label=label, status=_status(status), extra=extra),
                    resource=resource,
                    etag=etag,
                )
            if current not in ("active", "suspended"):
                raise PartnerCenterRejected(
                    (
                        _(
                            "Can't suspend the {label}: Partner Center shows it as {current}; only "
                            "an active subscription can be suspended and only a suspended one "
                            "reactivated."
                        )
                        if verb == "suspend"
                        else _(
                            "Can't reactivate the {label}: Partner Center shows it as {current}; "
                            "only an active subscription can be suspended and only a suspended "
                            "one reactivated."
                        )
                    ).format(label=label, current=_status(current))
                )
            body = {k: v for k, v in resource.items() if k.casefold() != "status"}
            body["Status"] = status
            try:
                raw, data = await self._call_raw(
                    "PATCH",
                    f"/v1/customers/{tenant}/subscriptions/{sub}",
                    kind="app",
                    body=body,
                    if_match=etag,
                    about=_Call(
                        subject=_("subscription {sub} for customer {tenant}").format(
                            sub=sub, tenant=tenant
                        ),
                        not_done=_("nothing was changed"),
                        maybe_done=(
                            _(
                                "Partner Center did not answer in time, so we can't tell whether "
                                "the {label} was suspended. Trying again is safe: we read it "
                                "first and change it only if needed."
                            )
                            if status == "suspended"
                            else _(
                                "Partner Center did not answer in time, so we can't tell whether "
                                "the {label} was reactivated. Trying again is safe: we read it "
                                "first and change it only if needed."
                            )
                        ).format(label=label),
                    ),
                )
            except PartnerCenterConflict:
                if round_ == 1:
                    log.info("partner center: %s changed under us (412); reading it again", label)
                    continue
                raise
            updated = dict(data) if isinstance(data, Mapping) and data else body
            new_status = str(field_ci(updated, "Status") or status)
            log.info("partner center: %s of %s: %s -> %s", label, tenant, current, new_status)
            attributes = field_ci(updated, "Attributes")
            new_etag = field_ci(attributes, "Etag") if isinstance(attributes, Mapping) else None
            return SubscriptionStatusChange(
                customer_tenant_id=tenant,
                subscription_id=sub,
                previous_status=current,
                status=new_status,
                changed=True,
                message=_("The {label} is now {status} (was {previous}).").format(
                    label=label, status=_status(new_status), previous=_status(current)
                ),
                resource=updated,
                etag=str(new_etag or raw.headers.get("ETag") or "") or None,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    # -- plumbing -------------------------------------------------------------

    def _require(self, kind: TokenKind) -> None:
        missing = self.missing_settings()
        if kind == "app":
            missing = [m for m in missing if m != "PARTNER_CENTER_REFRESH_TOKEN"]
        if missing:
            raise PartnerCenterNotConfigured(
                _(
                    "Partner Center API mode is off ({missing} not set); "
                    "use the Partner Center portal instead (manual mode)."
                ).format(missing=", ".join(missing))
            )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        kind: TokenKind,
        about: _Call,
        body: Mapping[str, Any] | None = None,
        if_match: str | None = None,
        request_id: str | None = None,
    ) -> Any:
        _raw, data = await self._call_raw(
            method,
            path,
            kind=kind,
            about=about,
            body=body,
            if_match=if_match,
            request_id=request_id,
        )
        return data

    async def _call_raw(
        self,
        method: str,
        path: str,
        *,
        kind: TokenKind,
        about: _Call,
        body: Mapping[str, Any] | None = None,
        if_match: str | None = None,
        request_id: str | None = None,
    ) -> tuple[_Raw, Any]:
        """One logical API call: same MS-RequestId on every retry; errors mapped for agents."""
        assert self._tokens is not None
        tokens = self._tokens
        rid = request_id or new_request_id()
        cid = str(uuid.uuid4())
        payload = json.dumps(body).encode() if body is not None else None

        async def headers() -> dict[str, str]:
            out = {
                "Authorization": f"Bearer {await tokens.token(kind)}",
                "Accept": "application/json",
                "MS-RequestId": rid,
                "MS-CorrelationId": cid,
                "MS-Contract-Version": CONTRACT_VERSION,
                "MS-PartnerCenter-Application": self.application_name,
            }
            if payload is not None:
                out["Content-Type"] = "application/json"
            if if_match is not None:
                out["If-Match"] = if_match
            return out

        ids = {"request_id": rid, "correlation_id": cid}
        try:
            raw = await self._exchange(
                method, self._base_url + path, headers, payload, label=f"{method} {path}", ids=ids
            )
        except _GaveUp as gave_up:
            raise self._unavailable(gave_up, about, method, rid, cid) from None
        if 200 <= raw.status < 300:
            if not raw.body.strip():
                return raw, None
            try:
                return raw, json.loads(raw.body)
            except ValueError:
                raise PartnerCenterProtocolError(
                    _("Partner Center sent an answer we could not read; try again later."),
                    status=raw.status,
                    request_id=rid,
                    correlation_id=cid,
                ) from None
        code, description = _error_details(raw.body)
        description = self._scrub(description)
        common: dict[str, Any] = {
            "status": raw.status,
            "code": code,
            "description": description or None,
            "request_id": rid,
            "correlation_id": cid,
        }
        if raw.status in (401, 403):
            if raw.status == 401:
                tokens.invalidate(kind)  # the next call signs in afresh
            why = f" ({description})" if description else ""
            err: PartnerCenterError = PartnerCenterAuthError(
                _("Partner Center refused our credentials (HTTP {status}){why}: {hint}.").format(
                    status=raw.status, why=why, hint=_(_CREDENTIALS_HINT)
                ),
                **common,
            )
        elif raw.status == 404:
            err = PartnerCenterNotFound(
                _("Partner Center has no {subject}.").format(subject=about.subject), **common
            )
        elif raw.status == 412:
            err = PartnerCenterConflict(
                _(
                    "The {subject} was changed by someone else while we were updating it; "
                    "{not_done}. Check it in Partner Center and try again."
                ).format(subject=about.subject, not_done=about.not_done),
                **common,
            )
        else:
            reason = description or f"HTTP {raw.status}"
            err = PartnerCenterRejected(
                _("Partner Center rejected the request: {reason}. ({not_done}.)").format(
                    reason=reason, not_done=about.not_done.capitalize()
                ),
                **common,
            )
        log.warning("partner center: %s %s failed: %s", method, path, err.detail)
        raise err

    def _unavailable(
        self, gave_up: _GaveUp, about: _Call, method: str, rid: str, cid: str
    ) -> PartnerCenterUnavailable:
        unknown = gave_up.maybe_sent and about.maybe_done is not None and method != "GET"
        if unknown:
            assert about.maybe_done is not None
            text = about.maybe_done
        elif gave_up.retry_after is not None and gave_up.retry_after > self.max_retry_after:
            seconds = f"{gave_up.retry_after:.0f}"
            text = ngettext(
                "Partner Center is busy and asked us to wait {n} second; "
                "{not_done}, try again later.",
                "Partner Center is busy and asked us to wait {n} seconds; "
                "{not_done}, try again later.",
                plural_count(seconds),
            ).format(n=seconds, not_done=about.not_done)
        elif about.maybe_done is None:  # a read: nothing to undo
            text = _("Partner Center is not answering right now; try again later.")
        else:
            text = _(
                "Partner Center is not answering right now; {not_done}, try again later."
            ).format(not_done=about.not_done)
        err = PartnerCenterUnavailable(
            text,
            outcome_unknown=unknown,
            status=gave_up.status,
            request_id=rid,
            correlation_id=cid,
        )
        log.warning("partner center: gave up (%s): %s", gave_up.reason, err.detail)
        return err

    async def _post_form(self, url: str, form: dict[str, str]) -> tuple[int, Any]:
        """The token endpoint call for ``TokenProvider``: form-encoded POST, with retries."""
        data = urlencode(form).encode()

        async def headers() -> dict[str, str]:
            return {
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            }

        try:
            raw = await self._exchange("POST", url, headers, data, label="token endpoint", ids={})
        except _GaveUp as gave_up:
            text = _(
                "Microsoft sign-in is not answering right now; nothing was sent to "
                "Partner Center, try again later."
            )
            log.warning("partner center: token endpoint gave up (%s)", gave_up.reason)
            raise PartnerCenterUnavailable(text, status=gave_up.status) from None
        try:
            parsed = json.loads(raw.body) if raw.body.strip() else None
        except ValueError:
            parsed = None
        return raw.status, parsed

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: Callable[[], Awaitable[dict[str, str]]],
        data: bytes | None,
        *,
        label: str,
        ids: Mapping[str, str],
    ) -> _Raw:
        """Send with retries on timeouts, connection errors, 5xx, 408 and 429."""
        session = self._get_session()
        timeout = client_timeout(self.timeout)  # connect and read bounded too
        maybe_sent = False
        status: int | None = None
        retry_after: float | None = None
        reason = ""
        tag = " ".join(f"{k}={v}" for k, v in ids.items())
        for attempt in range(1, self.max_attempts + 1):
            hdrs = await headers()
            started = time.monotonic()
            retry_after = None
            try:
                async with session.request(
                    method, url, headers=hdrs, data=data, timeout=timeout, allow_redirects=False
                ) as resp:
                    raw = _Raw(resp.status, resp.headers, await resp.read())
            except TimeoutError as exc:
                # A connect timeout never reached the server; any other one may have.
                maybe_sent |= not isinstance(exc, aiohttp.ConnectionTimeoutError)
                reason = f"no answer within {self.timeout:g} s"
            except aiohttp.ClientConnectorError:
                reason = "cannot connect"
            except aiohttp.ClientError as exc:
                maybe_sent = True
                reason = f"connection broke ({type(exc).__name__})"
            else:
                ms = (time.monotonic() - started) * 1000
                log.info("partner center: %s -> %d in %.0f ms (try %d) %s",
                         label, raw.status, ms, attempt, tag)  # fmt: skip
                if raw.status not in RETRY_STATUSES:
                    return raw
                status = raw.status
                reason = f"HTTP {raw.status}"
                retry_after = _retry_after(raw.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self.max_retry_after:
                    raise _GaveUp(
                        reason, maybe_sent=maybe_sent, status=status, retry_after=retry_after
                    )
            if attempt == self.max_attempts:
                break
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.warning("partner center: %s: %s (try %d of %d), retrying in %.2f s %s",
                        label, reason, attempt, self.max_attempts, delay, tag)  # fmt: skip
            await self._sleep(delay)
        raise _GaveUp(reason, maybe_sent=maybe_sent, status=status, retry_after=retry_after)

    def _backoff(self, attempt: int) -> float:
        base = self.backoff_base * (2 ** (attempt - 1))
        return base + self._rng.uniform(0, self.backoff_base)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=client_timeout(self.timeout))
            self._owns_session = True
        return self._session

    def _scrub(self, text: str) -> str:
        if self._tokens is not None:
            for secret in self._tokens.secrets():
                text = text.replace(secret, "***")
        return text


def _mapping(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise PartnerCenterProtocolError(
            _("Partner Center sent an answer we could not read; try again later.")
        )
    return data


def _sr_id(value: str) -> str:
    text = str(value).strip()
    if not text or "/" in text:
        raise PartnerCenterInputError(
            _('"{value}" is not a service request number.').format(value=value)
        )
    return text


def _guid(value: str, what: str) -> str:
    text = str(value).strip()
    if not is_guid(text):
        raise PartnerCenterInputError(
            _('The {what} "{value}" is not a GUID.').format(what=what, value=value)
        )
    return text.lower()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_details(body: bytes) -> tuple[str | None, str]:
    """``code`` and ``description`` of a Partner Center error body (or ProblemDetails)."""
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return None, text[:300] if text and not text.startswith("<") else ""
    if not isinstance(data, Mapping):
        return None, ""
    inner = field_ci(data, "error")
    if isinstance(inner, Mapping):
        data = inner
    code = field_ci(data, "code")
    description = (
        field_ci(data, "description")
        or field_ci(data, "message")
        or field_ci(data, "detail")
        or field_ci(data, "title")
        or ""
    )
    return (None if code is None else str(code)), str(description)[:500]
