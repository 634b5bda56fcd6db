"""Escalation to Microsoft through the chat, against the local fake Partner Center + token server.

The flows run on a DeskEnv (recording chat, fake clock); the Partner Center
client is the real one pointed at ``tests/fakes/partner_center.py`` (real
aiohttp on 127.0.0.1, nothing patched), with instant backoff and a short
timeout so faults stay fast. Covered: the wire format of a filing made in chat,
a 503 then success, a timeout (outcome unknown, then a safe retry with the same
MS-RequestId), a 401, double clicks and a second process, a topics error,
status polling to ``closed`` into resolve and the close-the-loop DM,
``note --microsoft``, and manual mode end to end.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bot.domain import State
from bot.kernel.model import ActionRef, Form
from bot.partner_center import PartnerCenterClient
from bot.storage import Store
from conversations.escalation import agent_locale, flow_of, parse_contact, pending_key, poll_key
from tests.fakes.partner_center import FakePartnerCenter, is_guid
from tests.harness import START, TENANT_A, Chat, DeskEnv, make_settings

BILLING_TOPIC = "32444671"


class NoSleep:
    """Backoff sleeps are recorded, never slept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def api_env(fake: FakePartnerCenter, store: Store | None = None) -> DeskEnv:
    """A desk in API mode: settings with the fake's URLs and credentials, a fast client."""
    env = DeskEnv(fake.settings(base=make_settings()), store=store)
    flow_of(env.runtime).client = PartnerCenterClient(
        env.settings, clock=env.clock, sleep=NoSleep(), rng=random.Random(7), timeout=0.3
    )
    return env


@pytest.fixture
async def env(fake: FakePartnerCenter) -> AsyncIterator[DeskEnv]:
    desk = api_env(fake)
    yield desk
    await desk.runtime.close()


@pytest.fixture
async def manual() -> AsyncIterator[DeskEnv]:
    desk = DeskEnv()
    yield desk
    await desk.runtime.close()


def the_form(chat: Chat) -> Form:
    forms = [r.form for r in chat.replies if r.form is not None]
    assert forms, chat.text
    return forms[-1]


def form_values(form: Form, **changes: str) -> dict[str, str]:
    """What a modal would send: every pre-filled value, plus ``changes``."""
    values = {f.name: f.value or "" for f in form.fields}
    values.update(changes)
    return values


async def open_form(env: DeskEnv, case_id: str, who: str = "alice") -> tuple[Chat, Form]:
    chat = env.chat(who)
    await chat.send(f"escalate {case_id}")
    return chat, the_form(chat)


async def escalate_by_modal(env: DeskEnv, case_id: str, **changes: str) -> Chat:
    chat, form = await open_form(env, case_id)
    await chat.submit("escalate", form_values(form, **changes), form.context)
    return chat


async def inbox_texts(env: DeskEnv, user: str) -> list[dict[str, Any]]:
    return await env.runtime.take_mailbox(user)


# -- API mode: filing -----------------------------------------------------------------


async def test_escalate_in_text_files_one_request_with_the_documented_wire_format(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_dispute()
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id}")
    alice.expect(
        "files a service request in Partner Center on behalf of Contoso",
        "step 1 of 5",
        "Suggested: Billing dispute for BILL-1: Contoso, invoice G012345678, 120.00 EUR",
    )
    await alice.say("ok", "ok", "critical")
    alice.expect("Support topic", "Suggested: Billing")
    assert "Partner Center Issues" in alice.button_labels
    await alice.say("ok", "Jane Doe <jane@contoso.com>")
    (post,) = fake.api_requests("POST")
    sr_id = next(iter(fake.service_requests))
    alice.expect(
        f"{case_id} is escalated to Microsoft: Partner Center filed service request {sr_id} "
        "(Billing, critical)",
        "State: escalated",
        f"Microsoft request: {sr_id} (api, open)",
    )
    # The wire format, as the fake received it (secrets already redacted).
    assert post.path == "/v1/servicerequests/en-US"
    assert post.header("Authorization") == "Bearer ***" and post.auth_grant == "refresh_token"
    assert is_guid(post.request_id) and is_guid(post.correlation_id)
    assert post.header("MS-Contract-Version") == "v1"
    assert post.header("Content-Type") == "application/json"
    body = post.body
    assert body["Title"] == "Billing dispute for BILL-1: Contoso, invoice G012345678, 120.00 EUR"
    assert body["Severity"] == "critical" and body["SupportTopicId"] == BILLING_TOPIC
    assert body["PrimaryContact"] == {
        "Email": "jane@contoso.com",
        "FirstName": "Jane",
        "LastName": "Doe",
    }
    for line in (
        f"Customer: Contoso (tenant {TENANT_A})",
        "Invoice: G012345678",
        "Disputed: 120.00 EUR on invoice G012345678",
        "Reason: Seats billed twice",
    ):
        assert line in body["Description"]
    assert [r.path for r in fake.api_requests("GET")] == ["/v1/servicerequests/supporttopics"]
    # The case: the request, the state, the audit; the poll job in the same commit.
    case = await env.store.get_case(1)
    assert case is not None and case.state == State.ESCALATED and case.owner == "alice"
    assert case.service_request is not None and case.service_request.id == sr_id
    assert case.service_request.mode == "api"
    entry = case.audit[-1]
    assert entry.action == "escalated" and entry.actor == "alice"
    assert entry.details["service_request"] == sr_id
    assert entry.details["ms_request_id"] == post.request_id
    assert entry.details["severity"] == "critical" and entry.details["support_topic"] == "Billing"
    job = await env.store.get_job(poll_key(1))
    assert job is not None and job["mode"] == "api"
    assert job["due"] == (START + timedelta(minutes=60)).isoformat()
    assert await env.store.get_job(pending_key(1)) is None
    # The customer never sees the service request.
    carol = env.chat("carol")
    await carol.send(f"status {case_id}")
    carol.expect_not(sr_id, "Microsoft request")


async def test_503_then_success_files_one_request_and_a_resubmitted_form_files_none(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    chat, form = await open_form(env, case_id)
    fake.fail_next(503, method="POST")
    await chat.submit("escalate", form_values(form, topic="Billing"), form.context)
    chat.expect(f"{case_id} is escalated to Microsoft")
    first, second = fake.api_requests("POST")
    assert (first.status, second.status) == (503, 201)
    assert first.request_id == second.request_id  # a retry of the same call
    assert len(fake.service_requests) == 1
    # The same modal submitted again (a double click on Submit): stale, nothing sent.
    await chat.submit("escalate", form_values(form, topic="Billing"), form.context)
    chat.expect("Already done")
    assert len(fake.api_requests("POST")) == 2 and len(fake.service_requests) == 1


async def test_timeout_says_a_retry_is_safe_changes_nothing_and_the_retry_reuses_the_id(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    before = await env.store.get_case(1)
    chat, form = await open_form(env, case_id)
    # Partner Center files it but every answer comes too late.
    fake.delay_next(2.0, times=3, method="POST")
    await chat.submit("escalate", form_values(form), form.context)
    chat.expect(
        f"{case_id} is unchanged",
        "can't tell whether the service request was filed",
        "Trying again is safe",
    )
    assert chat.kinds == ["error"] and "Try again" in chat.button_labels
    after = await env.store.get_case(1)
    assert before is not None and after is not None
    assert (after.version, after.state, after.service_request) == (before.version, State.OPEN, None)
    assert await env.store.get_job(poll_key(1)) is None
    pending = await env.store.get_job(pending_key(1))
    assert pending is not None and pending["outcome"] == "unknown"
    assert len(fake.service_requests) == 1  # it did happen
    fake.clear_faults()
    await chat.click("Try again")
    chat.expect(f"{case_id} is escalated to Microsoft")
    ids = {r.request_id for r in fake.api_requests("POST")}
    assert ids == {pending["request_id"]}  # every try, and the retry, with one MS-RequestId
    assert len(fake.service_requests) == 1  # Partner Center answered with the same request
    case = await env.store.get_case(1)
    assert case is not None and case.service_request is not None
    assert case.service_request.id == next(iter(fake.service_requests))


async def test_an_unfinished_filing_is_brought_up_once_if_nobody_retries(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    chat, form = await open_form(env, case_id)
    fake.delay_next(2.0, times=3, method="POST")
    await chat.submit("escalate", form_values(form), form.context)
    pending = await env.store.get_job(pending_key(1))
    assert pending is not None
    env.advance(minutes=61)
    await env.runtime.scheduler.tick()
    (dm,) = await inbox_texts(env, "alice")
    assert f"The escalation of {case_id} to Microsoft did not finish" in dm["text"]
    assert pending["request_id"] in dm["text"]
    env.advance(days=8)
    await env.runtime.scheduler.tick()
    assert await inbox_texts(env, "alice") == []
    assert await env.store.get_job(pending_key(1)) is None


async def test_401_is_explained_and_nothing_is_written(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    chat, form = await open_form(env, case_id)
    fake.fail_next(401, method="POST")
    await chat.submit("escalate", form_values(form), form.context)
    chat.expect(
        f"The service request was not filed and {case_id} is unchanged",
        "Partner Center refused our credentials (HTTP 401)",
        "PARTNER_CENTER_CLIENT_SECRET",
        f"`escalate {case_id} NUMBER`",
    )
    assert chat.kinds == ["error"]
    case = await env.store.get_case(1)
    assert case is not None and case.state == State.OPEN and case.service_request is None
    assert fake.service_requests == {}
    # Fixed: the next try is a new call (the refused one filed nothing).
    await chat.submit("escalate", form_values(form), form.context)
    chat.expect(f"{case_id} is escalated to Microsoft")
    refused, filed = fake.api_requests("POST")
    assert refused.request_id != filed.request_id and len(fake.service_requests) == 1


async def test_rejected_request_shows_the_form_again_with_the_reason(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    chat, form = await open_form(env, case_id)
    await chat.submit("escalate", form_values(form, contact="not an email"), form.context)
    chat.expect("The primary contact must be an email address")
    errors = the_form(chat).errors  # checked with the form's fields, before anything is filed
    assert set(errors) == {"contact"} and "must be an email address" in errors["contact"]
    assert fake.api_requests("POST") == []
    fake.fail_next(400, method="POST", description="Description is too vague.")
    await chat.submit("escalate", form_values(form), form.context)
    chat.expect("Partner Center rejected the request: Description is too vague.")
    assert the_form(chat).form_id == "escalate"
    case = await env.store.get_case(1)
    assert case is not None and case.service_request is None


async def test_a_bad_contact_typed_in_text_asks_again_with_the_answers_kept(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id}")
    await alice.say("Two charges for Contoso", "ok", "minimal", "ok", "jane at contoso")
    # Checked at the step that asks: only the contact is asked again.
    alice.expect("The primary contact must be an email address", "step 5 of 5")
    await alice.send("jane@contoso.com")
    alice.expect(f"{case_id} is escalated to Microsoft", "(Billing, minimal)")
    (post,) = fake.api_requests("POST")
    assert post.body["Title"] == "Two charges for Contoso"
    assert post.body["PrimaryContact"] == {"Email": "jane@contoso.com"}
    await alice.send("ok")  # the form is over: an ordinary (unknown) command now
    alice.expect("I don't know the command")


async def test_double_click_on_escalate_and_on_submit_files_one_request(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    alice = env.chat("alice")
    await alice.send(f"status {case_id}")
    escalate = alice.button("Escalate")
    await alice.press(escalate.action)
    await alice.press(escalate.action)  # the second click just shows the form again
    form = the_form(alice)
    assert fake.api_requests("POST") == []
    fake.delay_next(0.1, method="POST")  # both submits overlap the first call
    one, two = env.chat("alice"), env.chat("alice")
    values = form_values(form)
    await asyncio.gather(
        one.submit("escalate", values, form.context), two.submit("escalate", values, form.context)
    )
    answers = sorted([one.text, two.text])
    assert "Already done" in answers[0] and "is escalated to Microsoft" in answers[1]
    assert len(fake.api_requests("POST")) == 1 and len(fake.service_requests) == 1


async def test_two_processes_on_one_store_file_one_request(fake: FakePartnerCenter) -> None:
    first = api_env(fake)
    second = api_env(fake, store=first.store)
    try:
        case_id = await first.new_question()
        chat, form = await open_form(first, case_id)
        fake.delay_next(0.1, method="POST")
        other = second.chat("alice")
        await asyncio.gather(
            chat.submit("escalate", form_values(form), form.context),
            other.submit("escalate", form_values(form), form.context),
        )
        assert len(fake.service_requests) == 1
        assert len({r.request_id for r in fake.api_requests("POST")}) == 1
        case = await first.store.get_case(1)
        assert case is not None and case.state == State.ESCALATED
    finally:
        await first.runtime.close()
        await second.runtime.close()


async def test_support_topics_error_is_said_before_any_form(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    fake.fail_next(503, times=3, path="supporttopics")
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id}")
    alice.expect(
        "I could not load Microsoft's support topics",
        "Partner Center is not answering right now",
        f"`escalate {case_id} NUMBER`",
    )
    assert alice.kinds == ["error"] and not any(r.form for r in alice.replies)
    await alice.send(f"escalate {case_id}")  # Partner Center is back
    alice.expect("Title", "step 1 of 5")


async def test_a_request_filed_in_the_portal_is_recorded_and_polled_by_api(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id} 2411240010001234")
    alice.expect("as service request 2411240010001234", "I check it every 60 minutes")
    job = await env.store.get_job(poll_key(1))
    assert job is not None and job["mode"] == "api"
    assert fake.api_requests() == []


# -- API mode: status and notes ---------------------------------------------------------


async def test_polling_to_closed_tells_the_owner_then_resolve_starts_the_loop(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_dispute()
    await escalate_by_modal(env, case_id)
    sr_id = next(iter(fake.service_requests))
    scheduler = env.runtime.scheduler

    env.advance(minutes=60)
    await scheduler.tick()  # open, as before: nothing to say
    assert [r.path for r in fake.api_requests("GET", sr_id)] == [f"/v1/servicerequests/{sr_id}"]
    assert await inbox_texts(env, "alice") == []

    fake.set_service_request_status(sr_id, "attention_needed")
    env.advance(minutes=60)
    await scheduler.tick()
    (dm,) = await inbox_texts(env, "alice")
    assert f"Microsoft needs something from you on {case_id}" in dm["text"]
    assert f"note {case_id} --microsoft" in dm["text"]
    case = await env.store.get_case(1)
    assert case is not None and case.service_request is not None
    assert case.service_request.status == "attention_needed"
    assert case.audit[-1].actor == "Microsoft"

    fake.set_service_request_status(sr_id, "closed")
    env.advance(minutes=60)
    await scheduler.tick()
    (dm,) = await inbox_texts(env, "alice")
    assert f"Microsoft closed service request {sr_id} for {case_id}" in dm["text"]
    assert "press Resolve" in dm["text"]
    labels = [b["label"] for b in dm["card"]["buttons"]]
    assert "Resolve" in labels and "Note" in labels
    assert await env.store.get_job(poll_key(1)) is None  # nothing more to read
    polls = len(fake.api_requests("GET", sr_id))
    env.advance(minutes=60)
    await scheduler.tick()
    assert len(fake.api_requests("GET", sr_id)) == polls

    alice = env.chat("alice")
    await alice.press(dm_action(dm, "Resolve"))  # the Resolve button of the DM's card
    await alice.send("Credit granted")
    await alice.send("120.00 EUR")
    await alice.send("Microsoft credited the double charge")
    alice.expect(f"{case_id} is resolved", "Outcome: Credit granted: 120.00 EUR")
    (loop,) = await inbox_texts(env, "alice")  # the close-the-loop reminder, at once
    assert f"{case_id} is resolved. Please tell the customer the result" in loop["text"]
    case = await env.store.get_case(1)
    assert case is not None and case.service_request is not None
    assert case.service_request.status == "closed"


def dm_action(dm: dict[str, Any], label: str) -> ActionRef:
    action = next(b["action"] for b in dm["card"]["buttons"] if b["label"] == label)
    return ActionRef(**action)


async def test_poll_errors_are_retried_and_the_owner_is_told_after_three(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    await escalate_by_modal(env, case_id)
    fake.fail_next(404, times=3, method="GET")
    for _ in range(3):
        env.advance(minutes=60)
        await env.runtime.scheduler.tick()
    (dm,) = await inbox_texts(env, "alice")
    assert "could not read Microsoft service request" in dm["text"] and "3 times" in dm["text"]
    job = await env.store.get_job(poll_key(1))
    assert job is not None and job["errors"] == 3


async def test_note_to_microsoft_is_patched_to_the_request(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    case_id = await env.new_question()
    alice = env.chat("alice")
    await alice.send(f"note {case_id} --microsoft before escalation")
    alice.expect("Internal note added", "no Microsoft service request yet")
    await escalate_by_modal(env, case_id)
    sr_id = next(iter(fake.service_requests))
    await alice.send(f"note {case_id} called the customer")
    assert fake.api_requests("PATCH") == []
    await alice.send(f"note {case_id} --microsoft Customer sent the invoice copy")
    alice.expect("Internal note added", f"Also added to Microsoft service request {sr_id}")
    (patch,) = fake.api_requests("PATCH")
    assert patch.path == f"/v1/servicerequests/{sr_id}"
    assert patch.body == {"NewNote": {"Text": "Customer sent the invoice copy"}}
    assert is_guid(patch.request_id) and patch.header("MS-Contract-Version") == "v1"
    assert fake.service_requests[sr_id]["notes"][-1]["text"] == "Customer sent the invoice copy"
    # Partner Center down: the note is still saved here, and the agent is told.
    fake.fail_next(503, times=3, method="PATCH")
    await alice.send(f"note {case_id} --microsoft second note")
    alice.expect("The note is saved on BILL-1, but it did not reach Microsoft")
    case = await env.store.get_case(1)
    assert case is not None
    assert [(n.text, n.to_microsoft) for n in case.notes][-2:] == [
        ("Customer sent the invoice copy", True),
        ("second note", True),
    ]
    await alice.send(f"note {case_id} --microsoft")
    alice.expect("What should Microsoft read?")


# -- manual mode ---------------------------------------------------------------------------


async def test_manual_mode_end_to_end_through_the_local_chat(manual: DeskEnv) -> None:
    env = manual
    assert not flow_of(env.runtime).client.configured
    case_id = await env.new_dispute()
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id}")
    alice.expect(
        "No Partner Center credentials are set, so file it by hand",
        "Support → Customer requests → New request for Contoso",
        "Title: Billing dispute for BILL-1: Contoso, invoice G012345678, 120.00 EUR",
        f"Customer: Contoso (tenant {TENANT_A})",
        "Disputed: 120.00 EUR on invoice G012345678",
        "Severity",
    )
    await alice.say("moderate", "2411240010001234")
    alice.expect(
        f"{case_id} is escalated to Microsoft as service request 2411240010001234",
        "every 24 hours",
        "Microsoft request: 2411240010001234 (manual, open)",
    )
    await alice.send(f"note {case_id} --microsoft Customer sent the invoice copy")
    alice.expect("Internal note added", "in the Partner Center portal yourself")

    # The check reminder, after manual_check_hours, with the case card.
    env.advance(hours=23)
    await env.runtime.scheduler.tick()
    assert await inbox_texts(env, "alice") == []
    env.advance(hours=1)
    await env.runtime.scheduler.tick()
    (dm,) = await inbox_texts(env, "alice")
    assert "Please check Microsoft service request 2411240010001234 of BILL-1" in dm["text"]
    assert f"srstatus {case_id} closed" in dm["text"] and dm["card"]["case_id"] == case_id

    await alice.send(f"srstatus {case_id} attention_needed they want the invoice PDF")
    alice.expect(
        "needs your attention", "Microsoft request: 2411240010001234 (manual, attention_needed)"
    )
    job = await env.store.get_job(poll_key(1))
    assert job is not None and job["due"] == (env.clock.now() + timedelta(hours=24)).isoformat()
    await alice.send(f"srstatus {case_id} closed Microsoft credited 120.00 EUR")
    alice.expect(f"Now resolve {case_id} with Microsoft's answer", "(manual, closed)")
    assert "Resolve" in alice.button_labels
    assert await env.store.get_job(poll_key(1)) is None
    await alice.send(f"resolve {case_id} credit 120.00 EUR")
    alice.expect(f"{case_id} is resolved")
    (loop,) = await inbox_texts(env, "alice")
    assert f"{case_id} is resolved. Please tell the customer" in loop["text"]
    case = await env.store.get_case(1)
    assert case is not None
    assert [n.text for n in case.notes] == [
        "Customer sent the invoice copy",
        "Microsoft: they want the invoice PDF",
        "Microsoft: Microsoft credited 120.00 EUR",
    ]
    assert [a.details.get("to") for a in case.audit if a.action == "service_request_status"] == [
        "attention_needed",
        "closed",
    ]


async def test_srstatus_checks_its_input_and_roles(manual: DeskEnv) -> None:
    env = manual
    case_id = await env.new_question()
    alice = env.chat("alice")
    await alice.send(f"srstatus {case_id} closed")
    alice.expect("has no Microsoft service request yet")
    await alice.send(f"escalate {case_id} 2411240010001234")
    await alice.send(f"srstatus {case_id} pending")
    alice.expect("Which status?")
    await alice.send(f"srstatus {case_id} open")
    alice.expect("already open")
    carol = env.chat("carol")
    await carol.send(f"srstatus {case_id} closed")
    assert carol.kinds[0] == "error"
    await alice.send("help")
    alice.expect("srstatus BILL-n open|attention_needed|closed [text]")
    await carol.send("help")
    carol.expect_not("srstatus")


async def test_a_resolved_or_cancelled_case_stops_the_tracking(manual: DeskEnv) -> None:
    env = manual
    case_id = await env.new_question()
    alice = env.chat("alice")
    await alice.send(f"escalate {case_id} 2411240010001234")
    await alice.send(f"cancel {case_id} duplicate")
    env.advance(hours=24)
    await env.runtime.scheduler.tick()
    assert await inbox_texts(env, "alice") == []
    assert await env.store.get_job(poll_key(1)) is None


# -- small parts -----------------------------------------------------------------------------


def test_contact_and_locale_parsing() -> None:
    assert parse_contact("") is None
    assert parse_contact("jane@contoso.com") == {"Email": "jane@contoso.com"}
    assert parse_contact("Jane van Doe <jane@contoso.com>") == {
        "Email": "jane@contoso.com",
        "FirstName": "Jane",
        "LastName": "van Doe",
    }
    with pytest.raises(Exception, match="email address"):
        parse_contact("Jane Doe")
    assert agent_locale("en") == "en-US"
    assert agent_locale("zh_CN") == "zh-CN"
    assert agent_locale(None) == "en-US"
