"""Partner Center client against the local fake Partner Center + token server.

Covers tokens (grant per API, caching, rotation), the wire format of every
call, retries with the same MS-RequestId (503, 429 + Retry-After, timeouts),
error messages for agents (401, 404, 400, token errors, outage), the
subscription read-then-PATCH with If-Match (412 retry, already-suspended,
reactivate), and that no secret reaches a log. Backoff sleeps are recorded,
never slept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.partner_center import (
    PartnerCenterAuthError,
    PartnerCenterClient,
    PartnerCenterConflict,
    PartnerCenterError,
    PartnerCenterInputError,
    PartnerCenterNotConfigured,
    PartnerCenterNotFound,
    PartnerCenterRejected,
    PartnerCenterUnavailable,
    ServiceRequestContact,
    new_request_id,
)
from tests.fakes.partner_center import (
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER_TENANT_ID,
    REFRESH_TOKEN,
    FakePartnerCenter,
    is_guid,
    running_fake_partner_center,
)

GUID = "xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx"
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class Sleeps(list[float]):
    """An injected sleep that records the delays instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def client(
    fake: FakePartnerCenter, sleeps: Sleeps, clock: FakeClock
) -> AsyncIterator[PartnerCenterClient]:
    async with PartnerCenterClient(
        fake.settings(), clock=clock, sleep=sleeps, rng=random.Random(7), timeout=5
    ) as c:
        yield c


async def file_one(client: PartnerCenterClient, request_id: str | None = None) -> str:
    info = await client.create_service_request(
        "en-US",
        "Invoice G012 charged twice",
        "Customer Contoso was billed twice.",
        "moderate",
        "32444671",
        request_id=request_id,
    )
    return info.id


# -- mode and input ------------------------------------------------------------


async def test_without_credentials_the_client_is_not_configured_and_sends_nothing(
    fake: FakePartnerCenter,
) -> None:
    async with PartnerCenterClient(Settings(partner_center_url=fake.url)) as c:
        assert not c.configured
        assert not c.can_change_subscriptions
        assert c.missing_settings() == [
            "PARTNER_CENTER_TENANT_ID",
            "PARTNER_CENTER_CLIENT_ID",
            "PARTNER_CENTER_CLIENT_SECRET",
            "PARTNER_CENTER_REFRESH_TOKEN",
        ]
        with pytest.raises(PartnerCenterNotConfigured, match="manual mode"):
            await file_one(c)
    # App-only is enough for subscriptions, not for service requests.
    async with PartnerCenterClient(fake.settings(partner_center_refresh_token=None)) as c:
        assert not c.configured and c.can_change_subscriptions
        with pytest.raises(PartnerCenterNotConfigured, match="PARTNER_CENTER_REFRESH_TOKEN"):
            await c.support_topics()
    assert fake.requests == []


async def test_bad_input_is_refused_before_any_call(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    with pytest.raises(PartnerCenterInputError, match="Severity"):
        await client.create_service_request("en-US", "t", "d", "urgent", "32444671")
    with pytest.raises(PartnerCenterInputError, match="locale"):
        await client.create_service_request("english", "t", "d", "minimal", "32444671")
    with pytest.raises(PartnerCenterInputError, match="not a GUID"):
        await client.set_subscription_status("contoso", str(uuid.uuid4()), "suspended")
    with pytest.raises(PartnerCenterInputError):
        await client.set_subscription_status(CUSTOMER_TENANT_ID, str(uuid.uuid4()), "deleted")  # type: ignore[arg-type]
    assert fake.requests == []


# -- tokens ----------------------------------------------------------------------


async def test_refresh_token_grant_for_service_requests_client_credentials_for_subscriptions(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription()
    await file_one(client)
    await client.get_subscription(CUSTOMER_TENANT_ID, sub["id"])

    user, app = fake.token_requests
    for token_request in (user, app):
        assert token_request.method == "POST"
        assert (
            token_request.path
            == f"/login/{fake.settings().partner_center_tenant_id}/oauth2/v2.0/token"
        )
        assert token_request.header("Content-Type") == "application/x-www-form-urlencoded"
        assert token_request.body["client_id"] == CLIENT_ID
        assert token_request.body["client_secret"] == "***"  # recorded redacted, but was sent
        assert token_request.status == 200
    assert user.body["grant_type"] == "refresh_token"
    assert user.body["refresh_token"] == "***"
    assert user.body["scope"].split() == [
        "https://api.partnercenter.microsoft.com/user_impersonation",
        "offline_access",
    ]
    assert app.body["grant_type"] == "client_credentials"
    assert app.body["scope"] == "https://api.partnercenter.microsoft.com/.default"
    assert "refresh_token" not in app.body

    create, read = fake.api_requests()
    assert create.auth_grant == "refresh_token"
    assert read.auth_grant == "client_credentials"
    assert create.header("Authorization") == "Bearer ***"


async def test_tokens_are_cached_until_five_minutes_before_expiry(
    client: PartnerCenterClient, fake: FakePartnerCenter, clock: FakeClock
) -> None:
    await client.get_service_request(await file_one(client))
    await client.support_topics()
    assert len(fake.token_requests) == 1  # one App+User token for three calls

    clock.advance(timedelta(minutes=54))  # lifetime 60 min: still well inside
    await client.support_topics(refresh=True)
    assert len(fake.token_requests) == 1

    clock.advance(timedelta(minutes=2))  # 56 min: inside the 5-minute margin
    await client.support_topics(refresh=True)
    assert len(fake.token_requests) == 2
    assert [r.auth_grant for r in fake.api_requests()] == ["refresh_token"] * 5


async def test_concurrent_calls_share_one_token_fetch(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription()
    reads = [client.get_subscription(CUSTOMER_TENANT_ID, sub["id"]) for _ in range(5)]
    await asyncio.gather(*reads, client.support_topics(), client.support_topics())
    grants = sorted(r.body["grant_type"] for r in fake.token_requests)
    assert grants == ["client_credentials", "refresh_token"]
    assert len(fake.api_requests("GET", "/supporttopics")) == 1


async def test_a_rotated_refresh_token_is_used_for_the_next_grant(
    sleeps: Sleeps, clock: FakeClock
) -> None:
    async with running_fake_partner_center(rotate_refresh_token=True) as fake:
        async with PartnerCenterClient(fake.settings(), clock=clock, sleep=sleeps) as c:
            await c.support_topics()
            assert REFRESH_TOKEN not in fake.valid_refresh_tokens  # the fake retired it
            clock.advance(timedelta(hours=2))
            await c.support_topics(refresh=True)  # works only with the rotated token
            assert [r.status for r in fake.token_requests] == [200, 200]
            assert REFRESH_TOKEN not in repr(c) and "***" in repr(c)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"partner_center_client_secret": "wrong-secret-zz9"}, "PARTNER_CENTER_CLIENT_SECRET"),
        ({"partner_center_refresh_token": "revoked-token-zz9"}, "PARTNER_CENTER_REFRESH_TOKEN"),
        ({"partner_center_tenant_id": str(uuid.UUID(int=5))}, "PARTNER_CENTER_TENANT_ID"),
        ({"partner_center_client_id": str(uuid.UUID(int=6))}, "PARTNER_CENTER_CLIENT_ID"),
    ],
)
async def test_token_endpoint_errors_become_clear_messages(
    fake: FakePartnerCenter, sleeps: Sleeps, overrides: dict[str, Any], expected: str
) -> None:
    async with PartnerCenterClient(fake.settings(**overrides), sleep=sleeps) as c:
        with pytest.raises(PartnerCenterAuthError) as caught:
            await file_one(c)
    message = caught.value.user_message
    assert expected in message
    assert "Trace ID" not in message and "Traceback" not in message
    assert "zz9" not in message
    assert len(fake.token_requests) == 1  # a refused sign-in is not retried
    assert fake.api_requests() == []


async def test_token_endpoint_outage_is_retried_then_reported(
    client: PartnerCenterClient, fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    fake.fail_next(503, times=3, target="token")
    with pytest.raises(PartnerCenterUnavailable, match="sign-in is not answering") as caught:
        await file_one(client)
    assert "nothing was sent to Partner Center" in caught.value.user_message
    assert len(fake.token_requests) == 3 and len(sleeps) == 2
    assert fake.api_requests() == []


# -- service requests: wire format -------------------------------------------------


async def test_create_service_request_wire_format(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    info = await client.create_service_request(
        "en-US",
        "BILL-7: invoice G012 charged twice",
        "Customer Contoso (tenant c057…), invoice G012, 120.00 EUR disputed.",
        "critical",
        32444671,
        ServiceRequestContact("Ana", "Lopez", "ana@partner.example", "+1 555 0100"),
    )
    (sent,) = fake.api_requests()
    assert (sent.method, sent.path) == ("POST", "/v1/servicerequests/en-US")
    assert sent.header("Accept") == "application/json"
    assert sent.header("MS-Contract-Version") == "v1"
    assert sent.header("Content-Type") == "application/json"
    assert is_guid(sent.request_id) and is_guid(sent.correlation_id)
    assert sent.body == {
        "Title": "BILL-7: invoice G012 charged twice",
        "Description": "Customer Contoso (tenant c057…), invoice G012, 120.00 EUR disputed.",
        "Severity": "critical",
        "SupportTopicId": "32444671",
        "PrimaryContact": {
            "FirstName": "Ana",
            "LastName": "Lopez",
            "Email": "ana@partner.example",
            "PhoneNumber": "+1 555 0100",
        },
    }
    assert sent.status == 201
    assert info.id in fake.service_requests
    assert info.status == "open"
    assert info.support_topic_name == "Billing"
    assert info.request_id == sent.request_id


async def test_each_logical_call_gets_a_new_request_id(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    await file_one(client)
    await file_one(client)
    first, second = fake.api_requests()
    assert first.request_id != second.request_id
    assert first.correlation_id != second.correlation_id
    assert len(fake.service_requests) == 2


async def test_same_request_id_twice_files_one_request(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    """A double click on Escalate with the id stored on the case: one request, not two."""
    rid = new_request_id()
    first = await file_one(client, request_id=rid)
    second = await file_one(client, request_id=rid)
    assert first == second
    assert len(fake.service_requests) == 1
    assert [r.request_id for r in fake.api_requests()] == [rid, rid]


async def test_get_service_request_reads_status(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sr_id = await file_one(client)
    assert (await client.get_service_request(sr_id)).status == "open"
    fake.set_service_request_status(sr_id, "attention_needed")
    assert (await client.get_service_request(sr_id)).status == "attention_needed"
    fake.set_service_request_status(sr_id, "closed")
    info = await client.get_service_request(sr_id)
    assert info.status == "closed" and info.title == "Invoice G012 charged twice"
    get = fake.api_requests("GET")[-1]
    assert get.path == f"/v1/servicerequests/{sr_id}" and get.body is None
    assert is_guid(get.request_id) and get.header("MS-Contract-Version") == "v1"


async def test_unknown_service_request_is_a_clear_not_found(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    with pytest.raises(PartnerCenterNotFound) as caught:
        await client.get_service_request("999")
    assert caught.value.user_message == "Partner Center has no service request 999."
    assert len(fake.api_requests()) == 1  # a 404 is not retried


async def test_add_note_patches_new_note(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sr_id = await file_one(client)
    updated = await client.add_note(sr_id, "Customer sent the bank statement.")
    patch = fake.api_requests("PATCH")[0]
    assert patch.path == f"/v1/servicerequests/{sr_id}"
    assert patch.body == {"NewNote": {"Text": "Customer sent the bank statement."}}
    assert patch.header("Content-Type") == "application/json"
    assert updated is not None
    assert [n.text for n in updated.notes] == ["Customer sent the bank statement."]


async def test_support_topics_are_cached_for_the_ttl(
    client: PartnerCenterClient, fake: FakePartnerCenter, clock: FakeClock
) -> None:
    topics = await client.support_topics()
    again = await client.support_topics()
    assert topics == again
    assert [(t.id, t.name) for t in topics][0] == ("32444671", "Billing")
    gets = fake.api_requests("GET", "/supporttopics")
    assert len(gets) == 1 and gets[0].path == "/v1/servicerequests/supporttopics"
    clock.advance(client.topics_ttl + timedelta(seconds=1))
    await client.support_topics()
    assert len(fake.api_requests("GET", "/supporttopics")) == 2


async def test_a_400_says_what_partner_center_said(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    with pytest.raises(PartnerCenterRejected) as caught:
        await client.create_service_request("en-US", "t", "d", "minimal", "123")
    assert "SupportTopicId '123' is not a valid support topic" in caught.value.user_message
    assert "Nothing was filed" in caught.value.user_message
    assert caught.value.status == 400
    assert len(fake.api_requests()) == 1 and fake.service_requests == {}


# -- retries ------------------------------------------------------------------------


async def test_503_then_success_files_one_request_with_the_same_request_id(
    client: PartnerCenterClient, fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    fake.fail_next(503)
    sr_id = await file_one(client)
    first, second = fake.api_requests("POST")
    assert (first.status, second.status) == (503, 201)
    assert first.request_id == second.request_id
    assert first.correlation_id == second.correlation_id
    assert first.body == second.body
    assert list(fake.service_requests) == [sr_id]
    assert len(sleeps) == 1 and 0.5 <= sleeps[0] <= 1.0  # backoff base 0.5 s + jitter


async def test_backoff_grows_exponentially_and_gives_up_after_three_attempts(
    client: PartnerCenterClient, fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    fake.fail_next(503, times=3)
    with pytest.raises(PartnerCenterUnavailable) as caught:
        await file_one(client)
    assert caught.value.user_message == (
        "Partner Center is not answering right now; nothing was filed, try again later."
    )
    assert not caught.value.outcome_unknown
    assert len(fake.api_requests()) == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 1.5
    assert fake.service_requests == {}


async def test_429_waits_as_long_as_retry_after_says(
    client: PartnerCenterClient, fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    fake.fail_next(429, retry_after=7)
    topics = await client.support_topics()
    assert topics and sleeps == [7.0]
    first, second = fake.api_requests()
    assert first.status == 429 and second.status == 200
    assert first.request_id == second.request_id


async def test_a_retry_after_longer_than_we_wait_is_reported_not_slept(
    client: PartnerCenterClient, fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    fake.fail_next(429, retry_after=3600)
    with pytest.raises(PartnerCenterUnavailable, match="asked us to wait 3600 seconds"):
        await file_one(client)
    assert sleeps == [] and len(fake.api_requests()) == 1


async def test_a_4xx_is_not_retried(
    client: PartnerCenterClient, fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    fake.fail_next(403)
    with pytest.raises(PartnerCenterAuthError):
        await client.support_topics()
    assert sleeps == [] and len(fake.api_requests()) == 1


async def test_a_401_gives_a_clear_message_and_the_next_call_signs_in_again(
    client: PartnerCenterClient, fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    await client.support_topics()
    fake.revoke_tokens()  # e.g. the token was revoked: Partner Center answers 401
    with pytest.raises(PartnerCenterAuthError) as caught:
        await file_one(client)
    error = caught.value
    assert error.status == 401
    assert error.user_message.startswith("Partner Center refused our credentials")
    assert "PARTNER_CENTER_CLIENT_SECRET" in error.user_message
    assert "permissions" in error.user_message
    assert isinstance(error, PartnerCenterError) and str(error) == error.user_message
    assert sleeps == [] and fake.service_requests == {}
    # The cached token was dropped: the next call fetches a new one and works.
    await file_one(client)
    assert len(fake.token_requests) == 2 and len(fake.service_requests) == 1


async def test_an_injected_401_is_reported_without_crashing(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    fake.fail_next(401)
    with pytest.raises(PartnerCenterAuthError, match="refused our credentials"):
        await client.get_service_request("616122292874577")


async def test_a_slow_answer_is_retried_with_the_same_request_id_and_files_once(
    fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    """The first create happened but its answer came after our timeout: the retry
    carries the same MS-RequestId, so Partner Center returns the same request."""
    fake.delay_next(2.0, method="POST")
    async with PartnerCenterClient(fake.settings(), sleep=sleeps, timeout=0.2) as c:
        sr_id = await file_one(c)
    first, second = fake.api_requests("POST")
    assert first.request_id == second.request_id
    assert list(fake.service_requests) == [sr_id]
    assert len(sleeps) == 1


async def test_a_create_that_keeps_timing_out_says_the_outcome_is_unknown(
    fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    fake.delay_next(2.0, times=3, method="POST")
    rid = new_request_id()
    async with PartnerCenterClient(fake.settings(), sleep=sleeps, timeout=0.2) as c:
        with pytest.raises(PartnerCenterUnavailable) as caught:
            await file_one(c, request_id=rid)
        error = caught.value
        assert error.outcome_unknown and error.request_id == rid
        assert "can't tell whether the service request was filed" in error.user_message
        assert rid in error.user_message and "safe" in error.user_message
        # Retrying with the same request id later does not file a second request.
        sr_id = await file_one(c, request_id=rid)
    assert list(fake.service_requests) == [sr_id]
    assert {r.request_id for r in fake.api_requests("POST")} == {rid}


async def test_a_read_that_times_out_says_partner_center_is_not_answering(
    fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    fake.delay_next(2.0, times=3, process=False)
    async with PartnerCenterClient(fake.settings(), sleep=sleeps, timeout=0.2) as c:
        with pytest.raises(PartnerCenterUnavailable) as caught:
            await c.support_topics()
    assert caught.value.user_message == (
        "Partner Center is not answering right now; try again later."
    )
    assert not caught.value.outcome_unknown
    assert len(fake.api_requests()) == 3 and len(sleeps) == 2


async def test_an_unreachable_server_means_nothing_was_filed(sleeps: Sleeps) -> None:
    async with running_fake_partner_center() as fake:
        settings = fake.settings()
    # Token endpoint and API are both gone now: connection refused, never sent.
    async with PartnerCenterClient(settings, sleep=sleeps) as c:
        with pytest.raises(PartnerCenterUnavailable, match="not answering") as caught:
            await file_one(c)
    assert not caught.value.outcome_unknown


# -- subscriptions ---------------------------------------------------------------------


async def test_suspend_reads_then_patches_the_full_resource_with_if_match(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription()
    change = await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")

    get, patch = fake.api_requests()
    path = f"/v1/customers/{CUSTOMER_TENANT_ID}/subscriptions/{sub['id']}"
    assert (get.method, get.path) == ("GET", path)
    assert (patch.method, patch.path) == ("PATCH", path)
    assert get.request_id != patch.request_id
    assert patch.header("If-Match") == sub["attributes"]["etag"]
    assert patch.header("Content-Type") == "application/json"
    assert patch.auth_grant == "client_credentials"
    expected = {k: v for k, v in sub.items() if k != "status"} | {"Status": "suspended"}
    assert patch.body == expected  # the full resource, only Status changed
    assert patch.status == 200

    assert fake.subscription(CUSTOMER_TENANT_ID, sub["id"])["status"] == "suspended"
    assert change.changed and (change.previous_status, change.status) == ("active", "suspended")
    assert "now suspended" in change.message
    assert change.etag == fake.subscription(CUSTOMER_TENANT_ID, sub["id"])["attributes"]["etag"]


async def test_get_subscription_returns_the_resource_and_its_etag(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription(friendlyName="Contoso E3")
    resource, etag = await client.get_subscription(CUSTOMER_TENANT_ID.upper(), sub["id"])
    assert resource == sub and etag == sub["attributes"]["etag"]


async def test_412_reads_again_and_retries_once(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription()
    fake.fail_next(412, method="PATCH")
    fake.touch_subscription(CUSTOMER_TENANT_ID, sub["id"])  # someone else changed it
    change = await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")
    assert [(r.method, r.status) for r in fake.api_requests()] == [
        ("GET", 200),
        ("PATCH", 412),
        ("GET", 200),
        ("PATCH", 200),
    ]
    first_patch, second_patch = fake.api_requests("PATCH")
    assert first_patch.request_id != second_patch.request_id
    current = fake.subscription(CUSTOMER_TENANT_ID, sub["id"])
    assert change.changed and current["status"] == "suspended"


async def test_a_stale_etag_gets_a_real_412_and_a_fresh_read(
    client: PartnerCenterClient, fake: FakePartnerCenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = fake.add_subscription()
    original = client.get_subscription

    async def read_then_someone_else_writes(tenant: str, sub_id: str) -> tuple[dict[str, Any], str]:
        resource, etag = await original(tenant, sub_id)
        if len(fake.api_requests("GET")) == 1:
            fake.touch_subscription(tenant, sub_id)
        return resource, etag

    monkeypatch.setattr(client, "get_subscription", read_then_someone_else_writes)
    change = await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")
    assert [r.status for r in fake.api_requests("PATCH")] == [412, 200]
    assert change.changed


async def test_412_twice_is_a_clear_conflict(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription()
    fake.fail_next(412, times=2, method="PATCH")
    with pytest.raises(PartnerCenterConflict) as caught:
        await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")
    assert "changed by someone else" in caught.value.user_message
    assert "nothing was changed" in caught.value.user_message
    assert len(fake.api_requests()) == 4
    assert fake.subscription(CUSTOMER_TENANT_ID, sub["id"])["status"] == "active"


async def test_already_suspended_sends_no_patch_and_says_so(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription(status="suspended")
    change = await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")
    assert not change.changed
    assert "already suspended" in change.message and "nothing was changed" in change.message
    assert [r.method for r in fake.api_requests()] == ["GET"]


async def test_reactivate_sets_status_active(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription(status="suspended")
    change = await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "active")
    patch = fake.api_requests("PATCH")[0]
    assert patch.body["Status"] == "active" and "status" not in patch.body
    assert change.changed and change.status == "active"
    assert fake.subscription(CUSTOMER_TENANT_ID, sub["id"])["status"] == "active"


async def test_suspend_then_suspend_again_patches_once(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription()
    first = await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")
    second = await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")
    assert first.changed and not second.changed
    assert len(fake.api_requests("PATCH")) == 1


async def test_a_subscription_that_is_neither_active_nor_suspended_is_left_alone(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    sub = fake.add_subscription(status="deleted")
    with pytest.raises(PartnerCenterRejected, match="shows it as deleted"):
        await client.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "active")
    assert fake.api_requests("PATCH") == []


async def test_unknown_subscription_is_a_clear_not_found(
    client: PartnerCenterClient, fake: FakePartnerCenter
) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(PartnerCenterNotFound) as caught:
        await client.set_subscription_status(CUSTOMER_TENANT_ID, missing, "suspended")
    assert caught.value.user_message == (
        f"Partner Center has no subscription {missing} for customer {CUSTOMER_TENANT_ID}."
    )


async def test_a_suspend_that_timed_out_but_happened_is_not_patched_twice(
    fake: FakePartnerCenter, sleeps: Sleeps
) -> None:
    sub = fake.add_subscription()
    fake.delay_next(2.0, method="PATCH")  # the PATCH is applied, its answer comes late
    async with PartnerCenterClient(fake.settings(), sleep=sleeps, timeout=0.2) as c:
        change = await c.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")
    first, second = fake.api_requests("PATCH")
    assert first.request_id == second.request_id  # the retry replays, nothing changes twice
    assert change.status == "suspended"
    assert fake.subscription(CUSTOMER_TENANT_ID, sub["id"])["status"] == "suspended"


# -- secrets -------------------------------------------------------------------------------


async def test_no_secret_reaches_the_logs_errors_or_records(
    fake: FakePartnerCenter, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[PartnerCenterError] = []
    async with PartnerCenterClient(fake.settings(), sleep=sleeps) as c:
        sub = fake.add_subscription()
        fake.fail_next(503)
        sr_id = await file_one(c)
        await c.add_note(sr_id, "note")
        await c.set_subscription_status(CUSTOMER_TENANT_ID, sub["id"], "suspended")
        fake.revoke_tokens()
        try:
            await c.support_topics(refresh=True)
        except PartnerCenterError as exc:
            errors.append(exc)
        client_repr = repr(c)
    async with PartnerCenterClient(
        fake.settings(partner_center_client_secret="not-the-secret-xyz"), sleep=sleeps
    ) as c:
        try:
            await c.support_topics()
        except PartnerCenterError as exc:
            errors.append(exc)
    assert len(errors) == 2

    secrets = {CLIENT_SECRET, REFRESH_TOKEN, "not-the-secret-xyz"}
    secrets |= set(fake.issued_tokens) | fake.revoked_tokens | fake.valid_refresh_tokens
    secrets.discard("")
    assert len(secrets) >= 5
    records = json.dumps([asdict(r) for r in fake.requests])
    texts = {
        "log": caplog.text,
        "repr": client_repr,
        "errors": " ".join(f"{e} {e.detail} {e!r}" for e in errors),
        "records": records,
    }
    assert "partner center" in caplog.text  # the client did log
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
        assert "Bearer fake-access" not in text
