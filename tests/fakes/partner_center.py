"""A fake Partner Center REST API and Entra ID token endpoint: an aiohttp app on 127.0.0.1.

It checks the wire format the real services expect and answers like them when
it is wrong: paths and methods, the form-encoded token request (client id and
secret, grant type, scope, refresh token), ``Authorization: Bearer`` with a
token it issued (App+User for service requests), ``MS-RequestId`` and
``MS-CorrelationId`` as GUIDs, ``MS-Contract-Version: v1``, ``Accept``,
``Content-Type``, the body fields, and ``If-Match`` against the subscription's
etag. Service requests and subscriptions live in memory; a repeated
``MS-RequestId`` on a POST/PATCH replays the first answer (Partner Center's
idempotency), so a retried create files one request, not two.

Every request is recorded (``fake.requests``) with secrets already redacted:
``Authorization`` becomes ``Bearer ***`` and the token form's
``client_secret`` / ``refresh_token`` become ``***``; ``auth_grant`` says which
grant the bearer token came from.

Use it::

    async with FakePartnerCenter() as fake:
        client = PartnerCenterClient(fake.settings(), sleep=no_sleep)
        fake.fail_next(503)                 # the next API answer is a 503
        fake.fail_next(429, retry_after=7)  # then a 429 with Retry-After: 7
        fake.delay_next(1.0)                # an answer later than the client timeout

or the ``fake`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from bot.config import Settings

TENANT_ID = "0a1b2c3d-0000-4000-8000-00000000a11e"  # the partner's own tenant
CLIENT_ID = "5e7c0000-0000-4000-8000-0000000c1e17"
CLIENT_SECRET = "fake-client-secret-0123456789abcdef"
REFRESH_TOKEN = "fake-refresh-token-0123456789abcdef"
CUSTOMER_TENANT_ID = "c0570000-0000-4000-8000-00000000c057"

RESOURCE = "https://api.partnercenter.microsoft.com"
USER_IMPERSONATION = f"{RESOURCE}/user_impersonation"
DEFAULT_SCOPE = f"{RESOURCE}/.default"

# Shaped like GET /v1/servicerequests/supporttopics items.
SUPPORT_TOPICS: list[dict[str, Any]] = [
    {
        "name": "Billing",
        "description": "Invoices, charges, refunds and credits for CSP customers",
        "id": 32444671,
        "attributes": {"objectType": "SupportTopic"},
    },
    {
        "name": "Partner Center Issues",
        "description": "Questions from CSP partners using Partner Center",
        "id": 32444667,
        "attributes": {"objectType": "SupportTopic"},
    },
    {
        "name": "Subscription management",
        "description": "Suspending, reactivating and changing subscriptions",
        "id": 32569836,
        "attributes": {"objectType": "SupportTopic"},
    },
]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LOCALE = re.compile(r"^[a-z]{2,3}-[A-Za-z]{2,4}$")
SR_STATUSES = ("none", "open", "closed", "attention_needed")
SEVERITIES = ("unknown", "critical", "moderate", "minimal")

Target = Literal["api", "token"]


@dataclass
class RecordedRequest:
    """One request the fake received; secrets are redacted before it is stored."""

    target: Target
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON (API), the form as a dict (token), raw text, or None
    auth_grant: str | None = None  # grant of the bearer token: refresh_token | client_credentials
    fault: str | None = None  # the injected fault that answered it, if any
    status: int | None = None  # what the fake answered

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def request_id(self) -> str | None:
        return self.header("MS-RequestId")

    @property
    def correlation_id(self) -> str | None:
        return self.header("MS-CorrelationId")


@dataclass
class Fault:
    """An injected answer for the next ``times`` matching requests."""

    times: int
    target: Target = "api"
    status: int | None = None  # answer with this status instead of the real one
    retry_after: float | None = None
    description: str | None = None
    delay: float = 0.0  # wait this long before answering
    process: bool = True  # (delay) do the work anyway: only the answer is late
    method: str | None = None
    path: str | None = None  # substring of the request path

    def matches(self, target: Target, method: str, path: str) -> bool:
        return (
            self.times > 0
            and self.target == target
            and (self.method is None or self.method == method)
            and (self.path is None or self.path in path)
        )

    def label(self) -> str:
        if self.status is not None:
            return f"status {self.status}" + (
                f" retry-after {self.retry_after:g}" if self.retry_after is not None else ""
            )
        return f"delay {self.delay:g}s" + ("" if self.process else " (not processed)")


def _error(status: int, code: str | int, description: str, **headers: str) -> web.Response:
    """A Partner Center error body: ``{"code": …, "description": …}``."""
    return web.json_response(
        {"code": code, "description": description, "data": [], "source": "FakePartnerCenter"},
        status=status,
        headers=headers or None,
    )


def _aad_error(status: int, error: str, description: str) -> web.Response:
    """An Entra ID token endpoint error body."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return web.json_response(
        {
            "error": error,
            "error_description": f"{description}\r\nTrace ID: {uuid.uuid4()}\r\n"
            f"Correlation ID: {uuid.uuid4()}\r\nTimestamp: {stamp}",
            "error_codes": [int(description[6:].split(":")[0])]
            if description.startswith("AADSTS")
            else [],
            "timestamp": stamp,
        },
        status=status,
    )


def _ci(data: dict[str, Any], name: str) -> Any:
    for key, value in data.items():
        if key.casefold() == name.casefold():
            return value
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakePartnerCenter:
    """The fake server; ``await start()`` / ``close()`` or ``async with``."""

    def __init__(
        self,
        *,
        token_lifetime: int = 3600,
        rotate_refresh_token: bool = False,
        topics: list[dict[str, Any]] | None = None,
    ) -> None:
        self.token_lifetime = token_lifetime
        # True: each refresh-token grant returns a new refresh token and retires the old one.
        self.rotate_refresh_token = rotate_refresh_token
        self.topics = copy.deepcopy(SUPPORT_TOPICS if topics is None else topics)
        self.requests: list[RecordedRequest] = []
        self.service_requests: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[tuple[str, str], dict[str, Any]] = {}
        self.valid_refresh_tokens: set[str] = {REFRESH_TOKEN}
        self.issued_tokens: dict[str, str] = {}  # live access token -> grant type
        self.revoked_tokens: set[str] = set()
        self.faults: list[Fault] = []
        self._replays: dict[tuple[str, str, str], tuple[str, web.Response]] = {}
        self._sr_seq = 616122292874576
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.login_url = ""

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> FakePartnerCenter:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/login/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/v1/servicerequests/supporttopics", self._support_topics)
        app.router.add_post("/v1/servicerequests/{locale}", self._create_sr)
        app.router.add_get("/v1/servicerequests/{id}", self._get_sr)
        app.router.add_patch("/v1/servicerequests/{id}", self._patch_sr)
        app.router.add_get("/v1/customers/{tenant}/subscriptions/{id}", self._get_subscription)
        app.router.add_patch("/v1/customers/{tenant}/subscriptions/{id}", self._patch_subscription)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self.login_url = f"{self.url}/login"
        return self

    async def close(self) -> None:
        self._closing.set()  # wakes delayed answers
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakePartnerCenter:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def settings(self, base: Settings | None = None, **overrides: Any) -> Settings:
        """Settings pointing every Partner Center URL and credential at this fake."""
        values: dict[str, Any] = dict(
            partner_center_url=self.url,
            partner_center_login_url=self.login_url,
            partner_center_tenant_id=TENANT_ID,
            partner_center_client_id=CLIENT_ID,
            partner_center_client_secret=CLIENT_SECRET,
            partner_center_refresh_token=REFRESH_TOKEN,
        )
        values.update(overrides)
        return replace(base or Settings(), **values)

    # -- test controls ---------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: float | None = None,
        description: str | None = None,
        method: str | None = None,
        path: str | None = None,
        target: Target = "api",
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (503, 429, 401, 412…)."""
        fault = Fault(
            times=times,
            target=target,
            status=status,
            retry_after=retry_after,
            description=description,
            method=method,
            path=path,
        )
        self.faults.append(fault)
        return fault

    def delay_next(
        self,
        seconds: float,
        times: int = 1,
        *,
        process: bool = True,
        method: str | None = None,
        path: str | None = None,
        target: Target = "api",
    ) -> Fault:
        """Answer the next ``times`` matching requests ``seconds`` late.

        ``process=True`` does the work at once and only delays the answer (the
        nasty case: a create that timed out on the client but happened);
        ``process=False`` does nothing and answers 503 after the delay.
        """
        fault = Fault(
            times=times,
            target=target,
            delay=seconds,
            process=process,
            method=method,
            path=path,
        )
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def revoke_tokens(self) -> None:
        """Every access token issued so far stops working (the API answers 401)."""
        self.revoked_tokens |= set(self.issued_tokens)
        self.issued_tokens.clear()

    def add_subscription(
        self,
        tenant_id: str = CUSTOMER_TENANT_ID,
        subscription_id: str | None = None,
        *,
        status: str = "active",
        **fields: Any,
    ) -> dict[str, Any]:
        """Store a subscription shaped like ``GET /v1/customers/{t}/subscriptions/{id}``."""
        sub_id = (subscription_id or str(uuid.uuid4())).lower()
        resource: dict[str, Any] = {
            "id": sub_id,
            "offerId": "CFQ7TTC0LH18:0001",
            "offerName": "Microsoft 365 Business Basic",
            "friendlyName": "Microsoft 365 Business Basic",
            "quantity": 10,
            "unitType": "Licenses",
            "hasPurchasableAddons": False,
            "creationDate": "2026-01-05T00:00:00Z",
            "effectiveStartDate": "2026-01-05T00:00:00Z",
            "commitmentEndDate": "2027-01-04T00:00:00Z",
            "status": status,
            "autoRenewEnabled": True,
            "isTrial": False,
            "billingType": "license",
            "billingCycle": "monthly",
            "termDuration": "P1Y",
            "contractType": "subscription",
            "orderId": "a8b1c2d3e4f5",
            "links": {
                "self": {
                    "uri": f"/customers/{tenant_id}/subscriptions/{sub_id}",
                    "method": "GET",
                    "headers": [],
                }
            },
            "attributes": {"etag": self._etag(), "objectType": "Subscription"},
        }
        resource.update(fields)
        self.subscriptions[(tenant_id.lower(), sub_id)] = resource
        return copy.deepcopy(resource)

    def subscription(self, tenant_id: str, subscription_id: str) -> dict[str, Any]:
        return self.subscriptions[(tenant_id.lower(), subscription_id.lower())]

    def touch_subscription(self, tenant_id: str, subscription_id: str) -> str:
        """Someone else changed the subscription: a new etag (so an old If-Match gets 412)."""
        etag = self._etag()
        self.subscription(tenant_id, subscription_id)["attributes"]["etag"] = etag
        return etag

    def set_service_request_status(self, sr_id: str, status: str) -> None:
        """Microsoft moved the request on (open → attention_needed → closed)."""
        assert status in SR_STATUSES, status
        sr = self.service_requests[sr_id]
        sr["status"] = status
        sr["lastModifiedDate"] = _now()
        if status == "closed":
            sr["lastClosedDate"] = sr["lastModifiedDate"]

    def api_requests(
        self, method: str | None = None, path: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded API requests (not token requests), optionally by method / path substring."""
        return [
            r
            for r in self.requests
            if r.target == "api"
            and (method is None or r.method == method)
            and (path is None or path in r.path)
        ]

    @property
    def token_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.target == "token"]

    # -- plumbing --------------------------------------------------------------

    @staticmethod
    def _etag() -> str:
        return secrets.token_urlsafe(24)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        except TimeoutError:
            pass

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        target: Target = "token" if request.path.startswith("/login/") else "api"
        record = await self._record(request, target)
        fault = next(
            (f for f in self.faults if f.matches(target, request.method, request.path)), None
        )
        if fault is not None:
            fault.times -= 1
            record.fault = fault.label()
            if fault.status is not None:
                response: web.StreamResponse = self._fault_response(fault, target)
            elif fault.process:
                response = await self._handle(request, handler, target)
                await self._pause(fault.delay)
            else:
                await self._pause(fault.delay)
                response = _error(503, "ServiceUnavailable", "Injected slow failure.")
        else:
            response = await self._handle(request, handler, target)
        record.status = response.status
        return response

    async def _handle(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        target: Target,
    ) -> web.StreamResponse:
        if target == "api":
            problem = self._check_api_headers(request)
            if problem is not None:
                return problem
            replay_key = None
            if request.method in ("POST", "PATCH"):
                rid = request.headers["MS-RequestId"].lower()
                replay_key = (request.method, request.path, rid)
                body = await request.text()
                seen = self._replays.get(replay_key)
                if seen is not None:
                    if seen[0] != body:
                        return _error(
                            400,
                            "DuplicateRequestId",
                            "MS-RequestId was already used for a different request.",
                        )
                    first = seen[1]
                    assert isinstance(first, web.Response) and first.body is not None
                    return web.Response(
                        status=first.status,
                        body=first.body,
                        content_type="application/json",
                    )
            response = await handler(request)
            if replay_key is not None and 200 <= response.status < 300:
                assert isinstance(response, web.Response)
                self._replays[replay_key] = (await request.text(), response)
            return response
        return await handler(request)

    async def _record(self, request: web.Request, target: Target) -> RecordedRequest:
        headers = dict(request.headers)
        grant = None
        for key in list(headers):
            if key.lower() == "authorization":
                value = headers[key]
                token = value[7:] if value.startswith("Bearer ") else None
                grant = self.issued_tokens.get(token) if token else None
                headers[key] = "Bearer ***" if token else "***"
        raw = await request.read()
        body: Any = None
        if raw:
            text = raw.decode("utf-8", "replace")
            if target == "token":
                form = dict(await request.post())
                body = {
                    k: ("***" if k in ("client_secret", "refresh_token") else str(v))
                    for k, v in form.items()
                }
            else:
                try:
                    body = json.loads(text)
                except ValueError:
                    body = text
        record = RecordedRequest(target, request.method, request.path, headers, body, grant)
        self.requests.append(record)
        return record

    def _fault_response(self, fault: Fault, target: Target) -> web.Response:
        status = fault.status or 503
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        if target == "token":
            error = (
                "temporarily_unavailable" if status >= 500 or status == 429 else "invalid_client"
            )
            response = _aad_error(
                status, error, fault.description or "AADSTS50000: Injected sign-in failure."
            )
            response.headers.update(headers)
            return response
        texts = {
            401: ("Unauthorized", "Authentication failed: the access token is not valid."),
            403: ("Forbidden", "The caller is not allowed to perform this operation."),
            412: ("PreconditionFailed", "The resource was changed by another request (etag)."),
            429: ("TooManyRequests", "Rate limit exceeded. Try again later."),
        }
        code, text = texts.get(status, ("ServiceUnavailable", "The service is unavailable."))
        return _error(status, code, fault.description or text, **headers)

    def _check_api_headers(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.issued_tokens:
            return _error(401, "Unauthorized", "Authentication failed: missing or unknown token.")
        if request.path.startswith("/v1/servicerequests"):
            if self.issued_tokens[auth[7:]] != "refresh_token":
                return _error(
                    403, "Forbidden", "Service requests need App+User credentials, not App-only."
                )
        for name in ("MS-RequestId", "MS-CorrelationId"):
            value = request.headers.get(name)
            if not value or not _GUID.match(value):
                return _error(400, "InvalidHeader", f"{name} must be a GUID (got {value!r}).")
        if request.headers.get("MS-Contract-Version") != "v1":
            return _error(400, "InvalidHeader", "MS-Contract-Version must be v1.")
        accept = request.headers.get("Accept", "")
        if "application/json" not in accept and "*/*" not in accept:
            return _error(406, "NotAcceptable", "Accept must allow application/json.")
        if request.method in ("POST", "PATCH", "PUT"):
            if request.content_type != "application/json":
                return _error(415, "UnsupportedMediaType", "Content-Type must be application/json.")
        return None

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            data = json.loads(await request.text())
        except ValueError:
            return _error(400, "InvalidJson", "The request body is not valid JSON.")
        if not isinstance(data, dict):
            return _error(400, "InvalidJson", "The request body must be a JSON object.")
        return data

    # -- token endpoint ----------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return _aad_error(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: "
                "'grant_type'.",
            )
        tenant = request.match_info["tenant"]
        if tenant != TENANT_ID:
            return _aad_error(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("client_id") != CLIENT_ID:
            return _aad_error(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                "found in the directory.",
            )
        if form.get("client_secret") != CLIENT_SECRET:
            return _aad_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                "the request is the client secret value, not the client secret ID.",
            )
        grant = form.get("grant_type")
        scopes = set(form.get("scope", "").split())
        body: dict[str, Any] = {"token_type": "Bearer"}
        if grant == "refresh_token":
            if form.get("refresh_token") not in self.valid_refresh_tokens:
                return _aad_error(
                    400,
                    "invalid_grant",
                    "AADSTS70000: The provided value for the 'refresh_token' is not valid.",
                )
            if USER_IMPERSONATION not in scopes:
                return _aad_error(
                    400,
                    "invalid_scope",
                    f"AADSTS70011: The scope must include {USER_IMPERSONATION}.",
                )
            body["scope"] = USER_IMPERSONATION
            new_refresh = f"fake-refresh-{secrets.token_urlsafe(24)}"
            if self.rotate_refresh_token:
                self.valid_refresh_tokens.discard(form["refresh_token"])
            self.valid_refresh_tokens.add(new_refresh)
            body["refresh_token"] = new_refresh
        elif grant == "client_credentials":
            if scopes != {DEFAULT_SCOPE}:
                return _aad_error(
                    400,
                    "invalid_scope",
                    f"AADSTS1002012: The provided value for scope {form.get('scope')} is not "
                    f"valid. Client credential flows must have a scope value with /.default.",
                )
            body["scope"] = DEFAULT_SCOPE
        else:
            return _aad_error(
                400,
                "unsupported_grant_type",
                f"AADSTS70003: The app requested an unsupported grant type '{grant}'.",
            )
        token = f"fake-access-{secrets.token_urlsafe(32)}"
        self.issued_tokens[token] = grant
        body |= {
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": token,
        }
        return web.json_response(body)

    # -- service requests ----------------------------------------------------------

    async def _support_topics(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "totalCount": len(self.topics),
                "items": self.topics,
                "attributes": {"objectType": "Collection"},
            }
        )

    async def _create_sr(self, request: web.Request) -> web.Response:
        locale = request.match_info["locale"]
        if not _LOCALE.match(locale):
            return _error(400, "InvalidLocale", f"'{locale}' is not a valid agent locale.")
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        problems = []
        title, description = _ci(data, "Title"), _ci(data, "Description")
        severity, topic_id = _ci(data, "Severity"), _ci(data, "SupportTopicId")
        contact = _ci(data, "PrimaryContact")
        if not isinstance(title, str) or not title.strip() or len(title) > 255:
            problems.append("Title is required (255 characters at most)")
        if not isinstance(description, str) or not description.strip():
            problems.append("Description is required")
        if not isinstance(severity, str) or severity.lower() not in SEVERITIES:
            problems.append(f"Severity must be one of {', '.join(SEVERITIES)}")
        topic = next((t for t in self.topics if str(t["id"]) == str(topic_id)), None)
        if topic is None:
            problems.append(f"SupportTopicId '{topic_id}' is not a valid support topic")
        if contact is not None and (not isinstance(contact, dict) or not _ci(contact, "Email")):
            problems.append("PrimaryContact must be an object with an Email")
        if problems:
            return _error(400, "InvalidServiceRequest", "; ".join(problems) + ".")
        assert topic is not None and isinstance(severity, str)
        self._sr_seq += 1
        sr_id = str(self._sr_seq)
        now = _now()
        sr: dict[str, Any] = {
            "title": title,
            "description": description,
            "severity": severity.lower(),
            "supportTopicId": str(topic["id"]),
            "supportTopicName": topic["name"],
            "id": sr_id,
            "status": "open",
            "organization": {"id": TENANT_ID, "name": "Fabrikam CSP Partner"},
            "primaryContact": contact,
            "productName": None,
            "createdDate": now,
            "lastModifiedDate": now,
            "lastClosedDate": None,
            "fileLinks": [],
            "newNote": None,
            "notes": [],
            "countryCode": "US",
            "attributes": {"objectType": "ServiceRequest"},
        }
        self.service_requests[sr_id] = sr
        return web.json_response(sr, status=201)

    async def _get_sr(self, request: web.Request) -> web.Response:
        sr = self.service_requests.get(request.match_info["id"])
        if sr is None:
            return _error(404, "NotFound", "The service request was not found.")
        return web.json_response(sr)

    async def _patch_sr(self, request: web.Request) -> web.Response:
        sr = self.service_requests.get(request.match_info["id"])
        if sr is None:
            return _error(404, "NotFound", "The service request was not found.")
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        note = _ci(data, "NewNote")
        text = _ci(note, "Text") if isinstance(note, dict) else None
        if not isinstance(text, str) or not text.strip():
            return _error(400, "InvalidServiceRequest", "NewNote.Text is required.")
        now = _now()
        sr["notes"].append({"createdByName": "Billing Bot", "createdDate": now, "text": text})
        sr["lastModifiedDate"] = now
        return web.json_response(sr)

    # -- subscriptions ----------------------------------------------------------------

    def _find_subscription(self, request: web.Request) -> dict[str, Any] | web.Response:
        tenant, sub = request.match_info["tenant"], request.match_info["id"]
        if not _GUID.match(tenant):
            return _error(400, "InvalidCustomerId", f"'{tenant}' is not a valid customer id.")
        if not _GUID.match(sub):
            return _error(400, "InvalidSubscriptionId", f"'{sub}' is not a valid subscription id.")
        resource = self.subscriptions.get((tenant.lower(), sub.lower()))
        if resource is None:
            return _error(404, "NotFound", "The subscription was not found.")
        return resource

    async def _get_subscription(self, request: web.Request) -> web.Response:
        found = self._find_subscription(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(found)

    async def _patch_subscription(self, request: web.Request) -> web.Response:
        found = self._find_subscription(request)
        if isinstance(found, web.Response):
            return found
        if_match = request.headers.get("If-Match")
        if not if_match:
            return _error(
                400, "MissingIfMatch", "If-Match with the subscription's etag is required."
            )
        if if_match != found["attributes"]["etag"]:
            return _error(
                412, "PreconditionFailed", "The subscription was changed (etag mismatch)."
            )
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        keys = {k.casefold() for k in data}
        missing = [k for k in found if k.casefold() not in keys]
        if missing:
            return _error(
                400,
                "IncompleteResource",
                "The request body must be the full subscription resource; missing: "
                + ", ".join(missing)
                + ".",
            )
        changed = [
            k
            for k, v in found.items()
            if k.casefold() not in ("status", "attributes") and _ci(data, k) != v
        ]
        if changed:
            return _error(
                400,
                "UnsupportedChange",
                f"Only Status may change in this request; also changed: {', '.join(changed)}.",
            )
        status = _ci(data, "Status")
        if status not in ("active", "suspended"):
            return _error(400, "InvalidStatus", f"Status '{status}' is not active or suspended.")
        found["status"] = status
        found["attributes"]["etag"] = self._etag()
        return web.json_response(found)


def is_guid(value: str | None) -> bool:
    """A canonical GUID (what the tests expect the client to send as request ids)."""
    try:
        return value is not None and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@asynccontextmanager
async def running_fake_partner_center(**options: Any) -> AsyncIterator[FakePartnerCenter]:
    """``async with running_fake_partner_center() as fake:`` — started on 127.0.0.1:0."""
    fake = FakePartnerCenter(**options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
