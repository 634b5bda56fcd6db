"""Collections end to end: import, `paid`, the daily policy run, suspend / reactivate.

Partner Center is the local fake server (no patching of the client); time is
the harness's fake clock (2026-11-24 09:00 UTC, a Tuesday).
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, UserConfig
from bot.domain import Role
from conversations.collections import DM_TYPE, audit_log, flow_of
from conversations.text import plain
from tests.fakes.partner_center import FakePartnerCenter
from tests.harness import START, TENANT_A, TENANT_B, DeskEnv, make_settings
from tests.processes import ROOT, Serve, bot_env

S1 = "11111111-0000-4000-8000-000000000001"
S2 = "22222222-0000-4000-8000-000000000002"
S3 = "33333333-0000-4000-8000-000000000003"
HEADER = (
    "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
    "subscription_ids,amount_paid"
)
TODAY = START.date()
REFUSAL = "Only a lead can suspend or reactivate subscriptions."


def days_ago(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


def csv_text(*rows: str) -> str:
    return "\n".join((HEADER, *rows)) + "\n"


# Contoso: 1,200.00 EUR 35 days overdue on two subscriptions; Fabrikam: 80 USD, 3 days.
OVERDUE_CSV = csv_text(
    f"{TENANT_A},Contoso,INV-1,1200.00,EUR,{days_ago(35)},,{S1};{S2},",
    f"{TENANT_B},Fabrikam,INV-2,80.00,USD,{days_ago(3)},,{S3},",
)


async def make_env(fake: FakePartnerCenter | None = None, **overrides: Any) -> DeskEnv:
    settings: Settings = make_settings(**overrides)
    if fake is not None:
        settings = fake.settings(base=settings)
        for sub in (S1, S2):
            fake.add_subscription(tenant_id=TENANT_A, subscription_id=sub)
        fake.add_subscription(tenant_id=TENANT_B, subscription_id=S3)
    env = DeskEnv(settings)
    await env.store.open()
    return env


@pytest.fixture
async def env(fake: FakePartnerCenter) -> AsyncIterator[DeskEnv]:
    desk = await make_env(fake)
    yield desk
    await desk.runtime.close()


async def import_csv(env: DeskEnv, text: str = OVERDUE_CSV, file: str = "ar.csv") -> Any:
    return await flow_of(env.runtime).import_csv(text, actor="lena", channel="cli", file=file)


def tables(env: DeskEnv, *names: str) -> dict[str, Any]:
    return {n: copy.deepcopy(env.store.engine.view(n)) for n in names}


def actions(env: DeskEnv, subject: str | None = None) -> list[str]:
    return [e["action"] for e in audit_log(env.store, subject)]


def dms(env: DeskEnv) -> list[dict[str, Any]]:
    return [s for s in env.runtime.scheduler.sent if s["type"] == DM_TYPE]


async def propose_suspend(env: DeskEnv) -> Any:
    lena = env.chat("lena")
    await lena.send("suspend Contoso")
    return lena


# ---- import ----------------------------------------------------------------------------
async def test_import_keeps_good_rows_reports_bad_lines_and_creates_customers(
    env: DeskEnv,
) -> None:
    text = "\n".join(
        [
            HEADER,
            f"{TENANT_A},Contoso,INV-1,1200.00,EUR,{days_ago(35)},,{S1};{S2},",
            f",Northwind,INV-2,99.5,EUR,{days_ago(2)},,,",
            f"{TENANT_A},Contoso,INV-3,12,50,EUR,{days_ago(1)},,,",
            f"{TENANT_B},Contoso,INV-4,10.00,EUR,{days_ago(1)},,,",
            f"{TENANT_B},Fabrikam,INV-5,10.00,EUR,{days_ago(1)},,,",
            "",
            f"{TENANT_A},Tailspin,INV-6,10.00,EUR,{days_ago(1)},,,",
            ",Fabrikam,INV-7,10.00,EUR,2026-02-30,,,",
        ]
    )
    report = await import_csv(env, text)
    assert report.new == ["INV-1", "INV-2", "INV-5"]
    errors = {e.line: e.message for e in report.errors}
    assert sorted(errors) == [4, 5, 8, 9]
    assert errors[4].startswith("has 10 fields but the header has 9")
    assert errors[5] == f"Contoso has tenant {TENANT_A} on line 2, not {TENANT_B}"
    assert errors[8] == f"tenant {TENANT_A} belongs to another customer on line 2"
    assert errors[9].startswith('due_date "2026-02-30" is not a date')
    assert "line 4: has 10 fields" in report.text()
    northwind = await env.store.find_customer("northwind")
    assert northwind is not None and northwind.owner == "lena" and northwind.tenant_id is None
    contoso = await env.store.find_customer("Contoso")
    assert contoso is not None and contoso.tenant_id == TENANT_A
    assert report.customers_created == ["Contoso", "Northwind", "Fabrikam"]
    stored = env.store.engine.view("receivables")["inv-1"]
    assert stored["amount"] == {"amount": "1200.00", "currency": "EUR"}
    assert stored["subscription_ids"] == [S1, S2]
    assert actions(env, "ar.csv") == ["receivables_imported"]
    assert audit_log(env.store, "ar.csv")[0]["details"]["bad_lines"] == [4, 5, 8, 9]


async def test_rows_contradicting_the_stored_customers_are_bad_rows(env: DeskEnv) -> None:
    await import_csv(env)
    report = await import_csv(
        env,
        csv_text(
            f"{TENANT_B},Contoso,INV-8,10.00,EUR,{TODAY},,,",
            f"{TENANT_A},Tailspin,INV-9,10.00,EUR,{TODAY},,,",
            f",Fabrikam,INV-1,10.00,EUR,{TODAY},,,",
        ),
    )
    assert [str(e) for e in report.errors] == [
        f"line 2: Contoso has tenant {TENANT_A} in the billing desk, not {TENANT_B}",
        f"line 3: tenant {TENANT_A} belongs to the customer contoso",
        "line 4: invoice INV-1 belongs to Contoso, not Fabrikam",
    ]
    assert report.new == [] and await env.store.find_customer("Tailspin") is None


async def test_a_customer_known_without_tenant_gets_it_from_the_import(env: DeskEnv) -> None:
    await env.runtime.desk.directory.ensure_customer("Tailspin")
    report = await import_csv(
        env, csv_text(f"cccccccc-0000-4000-8000-00000000000c,TAILSPIN,T-1,5.00,EUR,{TODAY},,,")
    )
    assert report.customers_updated == ["Tailspin"] and report.customers_created == []
    tailspin = await env.store.find_customer("tailspin")
    assert tailspin is not None and tailspin.tenant_id == "cccccccc-0000-4000-8000-00000000000c"


async def test_reimporting_the_same_file_changes_nothing(env: DeskEnv) -> None:
    first = await import_csv(env)
    assert len(first.new) == 2
    await env.runtime.scheduler.tick()
    await env.chat("alice").send("paid INV-2 30")  # a payment recorded in chat meanwhile
    before = tables(env, "receivables", "customers", "collections", "jobs")
    again = await import_csv(env)
    assert (again.new, again.updated, again.unchanged, again.errors) == ([], [], 2, [])
    assert tables(env, "receivables", "customers", "collections", "jobs") == before
    assert env.store.engine.view("receivables")["inv-2"]["amount_paid"] == "30"


async def test_a_changed_row_updates_the_invoice(env: DeskEnv) -> None:
    await import_csv(env)
    report = await import_csv(
        env,
        csv_text(
            f"{TENANT_A},Contoso,INV-1,1200.00,EUR,{days_ago(35)},,{S1};{S2},200.00",
            f"{TENANT_B},Fabrikam,INV-2,80.00,USD,{days_ago(3)},,{S3},",
        ),
    )
    assert report.updated == ["INV-1"] and report.unchanged == 1
    assert env.store.engine.view("receivables")["inv-1"]["amount_paid"] == "200.00"


# ---- paid, overdue -------------------------------------------------------------------
async def test_partial_then_full_payment_from_chat(env: DeskEnv) -> None:
    await import_csv(env)
    alice = env.chat("alice")
    await alice.send("paid INV-1 200.50")
    alice.expect("Recorded 200.50 EUR paid on invoice INV-1 (Contoso); 999.50 EUR is still open.")
    await alice.send("paid inv-1 1,000.00 EUR")
    alice.expect("more than the 999.50 EUR still open")
    await alice.send("paid INV-1 10 USD")
    alice.expect("Invoice INV-1 is in EUR, not USD.")
    await alice.send("paid INV-1 12,5")
    alice.expect("Use a dot for decimals: 12.5")
    await alice.send("paid INV-404")
    alice.expect("I don't know invoice INV-404")
    await alice.send("paid INV-1")
    alice.expect("Recorded 999.50 EUR paid on invoice INV-1 (Contoso): paid in full.")
    stored = env.store.engine.view("receivables")["inv-1"]
    assert stored["amount_paid"] == "1200.00" and len(stored["payments"]) == 2
    assert [p["amount"] for p in stored["payments"]] == ["200.50", "999.50"]
    assert actions(env, "contoso").count("payment_recorded") == 2
    await env.chat("carol").send("paid INV-1")  # a customer contact
    assert env.store.engine.view("receivables")["inv-1"]["payments"][-1]["amount"] == "999.50"


async def test_overdue_lists_customers_by_stage_days_and_amount(env: DeskEnv) -> None:
    await import_csv(
        env,
        OVERDUE_CSV + f"{TENANT_B},Fabrikam,INV-3,20.00,EUR,{days_ago(16)},,,5.00\n",
    )
    lena = env.chat("lena")
    await lena.send("overdue")
    text = lena.text
    order = [
        "Suspension (day 30+):",
        "Contoso",
        "Warning: access will be",
        "Fabrikam",
        "paid INVOICE",
    ]
    assert [text.index(part) for part in order] == sorted(text.index(part) for part in order)
    lena.expect(
        "• Contoso · 35 days · 1,200.00 EUR · INV-1 · owner Lena Lead",
        "Warning: access will be impacted (day 15+):",
        "• Fabrikam · 16 days · 15.00 EUR + 80.00 USD · INV-3, INV-2 · owner Lena Lead",
    )
    assert [plain(b) for b in lena.button_labels] == ["Suspend Contoso…"]
    alice = env.chat("alice")
    await alice.send("overdue")
    assert alice.button_labels == []  # no suspend buttons for an agent
    carol = env.chat("carol")  # a customer contact
    await carol.send("overdue")
    carol.expect("That is for the billing team.")


# ---- the daily run -----------------------------------------------------------------------
async def test_each_policy_stage_fires_once_on_the_fake_clock(env: DeskEnv) -> None:
    # Due yesterday: day 1 today, day 15 on 2026-12-08, day 30 on 2026-12-23.
    await import_csv(env, csv_text(f"{TENANT_A},Contoso,INV-1,300.00,EUR,{days_ago(1)},,{S1},"))
    for _ in range(32 * 4):
        await env.runtime.scheduler.tick()
        env.advance(hours=6)
    fired = [(s["at"].date(), s["stage"], s["user"]) for s in dms(env)]
    assert fired == [
        (date(2026, 11, 24), "remind@1", "lena"),
        (date(2026, 12, 8), "warn@15", "lena"),
        (date(2026, 12, 23), "suspend@30", "lena"),
    ]
    inbox = [plain(i["text"]) for i in await env.runtime.take_mailbox("lena")]
    warning = next(t for t in inbox if "will be impacted on" in t)
    assert "impacted on 2026-12-23" in warning and S1 in warning  # the suspension date
    assert any("Friendly reminder: invoice INV-1 is overdue" in t for t in inbox)
    assert any("suspended for non-payment" in t for t in inbox)
    runs = [e for e in audit_log(env.store) if e["action"] == "collections_run"]
    assert len(runs) == 32  # one run a day (the first right after the import)
    due = [
        e["details"]["stage"]
        for e in audit_log(env.store)
        if e["action"] == "collections_stage_due"
    ]
    assert due == ["remind@1", "warn@15", "suspend@30"]


async def test_a_late_import_fires_only_the_latest_stage_and_dms_have_buttons(
    env: DeskEnv,
) -> None:
    await import_csv(env)
    await env.runtime.scheduler.tick()
    assert sorted((s["customer"], s["stage"]) for s in dms(env)) == [
        ("contoso", "suspend@30"),
        ("fabrikam", "remind@1"),
    ]
    items = await env.runtime.take_mailbox("lena")
    labels = [[b["label"] for b in i.get("buttons", [])] for i in items]
    assert ["Suspend \ue000Contoso\ue001…", "I sent the notice", "Overdue list"] in labels
    assert ["I sent it", "Overdue list"] in labels
    # "I sent it" records that the owner told the customer, once.
    lena = env.chat("lena")
    sent = next(
        i for i in items if [b["label"] for b in i["buttons"]] == ["I sent it", "Overdue list"]
    )
    from bot.kernel.model import ActionRef

    ref = sent["buttons"][0]["action"]
    action = ActionRef(ref["name"], ref.get("case_id"), ref.get("stage"), ref.get("value"))
    await lena.press(action)
    lena.expect("Recorded: the customer was sent the friendly reminder.")
    await lena.press(action)
    lena.expect("Already recorded")
    assert actions(env, "fabrikam").count("customer_notified") == 1
    # The next days fire nothing new.
    for _ in range(4 * 5):
        env.advance(hours=6)
        await env.runtime.scheduler.tick()
    assert len(dms(env)) == 2


async def test_every_channel_shows_a_dms_explanation_above_its_draft(env: DeskEnv) -> None:
    """The collections DM: what is due and what to do first, then the notice to send."""
    from adapters.local.render import render_replies as local_text
    from adapters.slack.translate import message_payload
    from adapters.teams.render import render_replies as teams_activities
    from bot.kernel.serialize import reply_from_dict

    await import_csv(env)
    await env.runtime.scheduler.tick()
    replies = [reply_from_dict(i) for i in await env.runtime.take_mailbox("lena")]
    shown = {
        "terminal": local_text(replies)[0],
        "slack": json.dumps(message_payload(replies)["blocks"], ensure_ascii=False),
        "teams": json.dumps(
            [o.activity for o in teams_activities(replies, from_card=False)], ensure_ascii=False
        ),
    }
    for channel, text in shown.items():
        for head, draft in (
            ("Fabrikam is 3 days overdue", "Subject: Friendly reminder: invoice INV-2"),
            ("Contoso is 35 days overdue", "Subject: Your Microsoft subscriptions are"),
        ):
            assert head in text and draft in text, (channel, text)
            assert text.index(head) < text.index(draft), channel


async def test_dms_wait_for_the_owners_working_hours() -> None:
    users = (
        UserConfig(
            name="lena", role=Role.LEAD, display_name="Lena Lead", time_zone="America/Los_Angeles"
        ),
        UserConfig(name="alice", role=Role.AGENT),
    )
    env = await make_env(users=users)
    try:
        await import_csv(env)
        await env.runtime.scheduler.tick()  # 09:00 UTC = 01:00 in Los Angeles
        assert dms(env) == []
        for _ in range(4 * 9):
            env.advance(minutes=15)
            await env.runtime.scheduler.tick()
        assert {s["at"].isoformat() for s in dms(env)} == {"2026-11-24T17:00:00+00:00"}
    finally:
        await env.runtime.close()


async def test_a_dm_drops_itself_when_the_customer_paid_before_it_went_out() -> None:
    users = (
        UserConfig(
            name="lena", role=Role.LEAD, display_name="Lena Lead", time_zone="America/Los_Angeles"
        ),
    )
    env = await make_env(users=users)
    try:
        await import_csv(env)
        await env.runtime.scheduler.tick()
        await env.chat("lena").send("paid INV-2")
        env.advance(hours=9)
        await env.runtime.scheduler.tick()
        assert [s["customer"] for s in dms(env)] == ["contoso"]
    finally:
        await env.runtime.close()


# ---- suspend -----------------------------------------------------------------------------
async def test_an_agent_trying_to_suspend_is_refused(env: DeskEnv, fake: FakePartnerCenter) -> None:
    await import_csv(env)
    alice = env.chat("alice")
    await alice.send("suspend Contoso")
    assert alice.text == REFUSAL
    await alice.send("reactivate Contoso")
    assert alice.text == REFUSAL
    # Nor can an agent press the lead's confirm button.
    lena = await propose_suspend(env)
    await alice.press(lena.buttons[0].action)
    assert alice.text == REFUSAL
    assert fake.api_requests(method="PATCH") == []
    assert "suspend_refused" in actions(env, "policy")


async def test_the_confirmation_names_customer_subscriptions_and_amount(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    lena.expect(
        "Please confirm: suspend Contoso's subscriptions for non-payment.",
        f"Customer: Contoso (tenant {TENANT_A})",
        "Overdue: 1,200.00 EUR, 35 days (invoices INV-1)",
        "Subscriptions (2):",
        S1,
        S2,
    )
    assert [plain(b.label) for b in lena.buttons] == ["Suspend Contoso (2 subscriptions)", "Cancel"]
    assert fake.api_requests() == []  # nothing is called before the confirmation
    await lena.click("Cancel")
    lena.expect("Cancelled: nothing was changed.")
    assert fake.api_requests() == []
    await lena.send("suspend Fabrikam")  # 3 days overdue: allowed, the lead decides
    lena.expect("Overdue: 80.00 USD, 3 days (invoices INV-2)")
    await lena.send("suspend Northwind")
    lena.expect("I don't know a customer called Northwind")


async def test_a_lead_confirming_patches_each_subscription_once_with_the_full_body(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    etags = {s: fake.subscription(TENANT_A, s)["attributes"]["etag"] for s in (S1, S2)}
    resources = {s: copy.deepcopy(fake.subscription(TENANT_A, s)) for s in (S1, S2)}
    await lena.press(lena.buttons[0].action)
    lena.expect("Contoso is suspended:", f"{S1} (Microsoft 365 Business Basic): now suspended")
    lena.expect("Send Contoso this notice:", "suspended for non-payment")
    patches = fake.api_requests(method="PATCH")
    assert [p.path.rsplit("/", 1)[1] for p in patches] == [S1, S2]
    for patch in patches:
        sub = patch.path.rsplit("/", 1)[1]
        assert patch.path == f"/v1/customers/{TENANT_A}/subscriptions/{sub}"
        assert patch.header("If-Match") == etags[sub]
        body = patch.body
        assert body["Status"] == "suspended" and "status" not in body
        expected = {k: v for k, v in resources[sub].items() if k != "status"}
        assert {k: v for k, v in body.items() if k != "Status"} == expected  # the full resource
        assert fake.subscription(TENANT_A, sub)["status"] == "suspended"
    steps = [a for a in actions(env, "contoso") if a.startswith(("suspend", "subscription"))]
    assert steps == [
        "suspend_proposed",
        "suspend_confirmed",
        "subscription_suspended",
        "subscription_suspended",
        "suspend_done",
    ]
    await lena.send("suspend Contoso")
    lena.expect("already suspended")
    assert len(fake.api_requests(method="PATCH")) == 2


async def test_a_412_is_read_again_and_retried_once(env: DeskEnv, fake: FakePartnerCenter) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    fake.fail_next(412, method="PATCH")
    await lena.press(lena.buttons[0].action)
    lena.expect("Contoso is suspended:")
    patches = fake.api_requests(method="PATCH")
    assert [p.status for p in patches] == [412, 200, 200]
    assert [p.path.rsplit("/", 1)[1] for p in patches] == [S1, S1, S2]
    assert all(p.header("If-Match") for p in patches)
    gets = fake.api_requests(method="GET", path=S1)
    assert len(gets) == 2  # read, 412, read again, PATCH


async def test_someone_else_changing_the_subscription_meanwhile_means_a_fresh_etag(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    new_etag = fake.touch_subscription(TENANT_A, S1)
    await lena.press(lena.buttons[0].action)
    assert fake.api_requests(method="PATCH")[0].header("If-Match") == new_etag


async def test_a_double_click_on_suspend_sends_no_second_patch(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    confirm = lena.buttons[0].action
    await lena.press(confirm)
    await lena.press(confirm)
    lena.expect("Already done: Contoso was suspended at")
    assert len(fake.api_requests(method="PATCH")) == 2
    # Two clicks at the same moment (two channels, two people): still one PATCH each.
    await env.chat("lena").send("reactivate Contoso")
    again = env.chat("lena")
    await again.send("reactivate Contoso")
    click = again.buttons[0].action
    other = env.chat("lena", conversation="slack-dm")
    results = await asyncio.gather(again.press(click), other.press(click))
    texts = [plain(r.text) for replies in results for r in replies]
    assert sum("is reactivated" in t for t in texts) == 1
    assert sum("Already in progress" in t or "Already done" in t for t in texts) == 1
    assert len(fake.api_requests(method="PATCH")) == 4


async def test_the_operation_is_stored_before_partner_center_is_called(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    fake.delay_next(0.3, method="PATCH")  # hold the first PATCH in flight
    click = asyncio.create_task(lena.press(lena.buttons[0].action))
    while not fake.api_requests(method="PATCH"):
        await asyncio.sleep(0.01)
    ops = [d for k, d in env.store.engine.view("collections").items() if k.startswith("op:")]
    assert ops[0]["state"] == "running" and ops[0]["confirmed_by"] == "lena"
    assert ops[0]["results"] == {S1: {"state": "pending"}, S2: {"state": "pending"}}
    assert "suspend_confirmed" in actions(env, "contoso")
    await click
    ops = [d for k, d in env.store.engine.view("collections").items() if k.startswith("op:")]
    assert ops[0]["state"] == "done"
    assert {r["state"] for r in ops[0]["results"].values()} == {"done"}


async def test_a_failure_is_reported_and_retry_changes_only_what_is_left(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    fake.fail_next(404, path=S2, method="GET")
    await lena.press(lena.buttons[0].action)
    lena.expect("Not every subscription of Contoso could be changed:", f"✗ {S2}")
    assert lena.button_labels == ["Retry"]
    await lena.click("Retry")
    lena.expect("Contoso is suspended:", f"{S1} (Microsoft 365 Business Basic): now suspended")
    patched = [p.path.rsplit("/", 1)[1] for p in fake.api_requests(method="PATCH")]
    assert patched == [S1, S2]


async def test_suspending_a_customer_that_paid_after_the_confirmation_does_nothing(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    await env.chat("alice").send("paid INV-1")
    await lena.press(lena.buttons[0].action)
    lena.expect("has nothing overdue any more, so nothing was suspended")
    assert fake.api_requests(method="PATCH") == []


# ---- payment, then reactivate -----------------------------------------------------------
async def test_payment_then_reactivate(env: DeskEnv, fake: FakePartnerCenter) -> None:
    await import_csv(env)
    lena = await propose_suspend(env)
    await lena.press(lena.buttons[0].action)
    await env.runtime.take_mailbox("lena")
    alice = env.chat("alice")
    await alice.send("paid INV-1 200")
    assert await env.runtime.take_mailbox("lena") == []  # still overdue: no offer yet
    await alice.send("paid INV-1")
    alice.expect("Contoso has nothing overdue any more", "Lena Lead is offered Reactivate")
    assert alice.button_labels == []  # an agent gets no Reactivate button
    offers = [i for i in await env.runtime.take_mailbox("lena") if "paid everything" in i["text"]]
    assert len(offers) == 1
    button = offers[0]["buttons"][0]
    assert plain(button["label"]) == "Reactivate Contoso…"
    from bot.kernel.model import ActionRef

    await lena.press(ActionRef(button["action"]["name"], value=button["action"]["value"]))
    lena.expect("Please confirm: reactivate Contoso's subscriptions.", "Overdue: nothing", S1, S2)
    await lena.press(lena.buttons[0].action)
    lena.expect("Contoso is reactivated:", "Access to your Microsoft subscriptions is restored")
    patches = fake.api_requests(method="PATCH")
    assert [p.body["Status"] for p in patches] == ["suspended", "suspended", "active", "active"]
    assert all(p.header("If-Match") for p in patches)
    assert fake.subscription(TENANT_A, S1)["status"] == "active"
    # The next daily run offers nothing again.
    env.advance(days=1)
    await env.runtime.scheduler.tick()
    assert not [i for i in await env.runtime.take_mailbox("lena") if "paid everything" in i["text"]]
    assert "reactivate_done" in actions(env, "contoso")


async def test_reactivating_an_active_customer_says_so_and_changes_nothing(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    lena = env.chat("lena")
    await lena.send("overdue")  # the day's collections run is done first
    before = tables(env, "collections", "jobs"), actions(env)
    await lena.send("reactivate Contoso")  # never suspended
    lena.expect("Contoso is active", "nothing to reactivate", "nothing was changed")
    lena.expect_not("Please confirm")
    assert lena.buttons == []
    assert (tables(env, "collections", "jobs"), actions(env)) == before  # nothing proposed
    # Suspended, then reactivated: a second `reactivate` says when and by whom.
    await lena.send("suspend Contoso")
    await lena.press(lena.buttons[0].action)
    await lena.send("reactivate Contoso")
    await lena.press(lena.buttons[0].action)
    lena.expect("Contoso is reactivated:")
    patches = len(fake.api_requests(method="PATCH"))
    await lena.send("reactivate Contoso")
    lena.expect("Contoso is already active (reactivated at 2026-11-24 10:00 +0100 by Lena Lead)")
    lena.expect_not("Please confirm")
    assert len(fake.api_requests(method="PATCH")) == patches == 4


async def test_two_confirmations_of_one_change_do_it_once(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    """Proposed twice (two chats), confirmed in both: the second finds it done, sends nothing."""
    await import_csv(env)
    lena, other = env.chat("lena"), env.chat("lena", conversation="teams-dm")
    await lena.send("suspend Contoso")
    await other.send("suspend Contoso")
    await lena.press(lena.buttons[0].action)
    lena.expect("Contoso is suspended:")
    await other.press(other.buttons[0].action)
    other.expect("already suspended", "nothing was changed")
    assert len(fake.api_requests(method="PATCH")) == 2
    await lena.send("reactivate Contoso")
    await other.send("reactivate Contoso")
    await lena.press(lena.buttons[0].action)
    lena.expect("Contoso is reactivated:")
    await other.press(other.buttons[0].action)
    other.expect("Contoso is already active", "nothing was changed")
    assert len(fake.api_requests(method="PATCH")) == 4
    assert actions(env, "contoso").count("suspend_cancelled") == 1
    assert actions(env, "contoso").count("reactivate_cancelled") == 1


async def test_an_agent_owner_is_offered_reactivate_and_so_is_a_lead(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env)
    contoso = await env.store.find_customer("Contoso")
    assert contoso is not None
    contoso.owner = "alice"
    await env.store.save_customer(contoso)
    lena = await propose_suspend(env)
    await lena.press(lena.buttons[0].action)
    await env.chat("alice").send("paid INV-1")
    for user in ("alice", "lena"):
        items = await env.runtime.take_mailbox(user)
        assert [i for i in items if "paid everything" in i["text"]], user


async def test_a_new_delinquency_after_payment_fires_the_stages_again(env: DeskEnv) -> None:
    await import_csv(env, csv_text(f"{TENANT_A},Contoso,INV-1,300.00,EUR,{days_ago(1)},,{S1},"))
    await env.runtime.scheduler.tick()
    await env.chat("alice").send("paid INV-1")
    assert "collections_cleared" in actions(env, "contoso")
    await import_csv(env, csv_text(f"{TENANT_A},Contoso,INV-2,50.00,EUR,{TODAY},,{S1},"))
    for _ in range(4 * 2):
        env.advance(hours=6)
        await env.runtime.scheduler.tick()
    assert [(s["at"].date(), s["stage"]) for s in dms(env)] == [
        (date(2026, 11, 24), "remind@1"),
        (date(2026, 11, 25), "remind@1"),
    ]


# ---- manual mode ---------------------------------------------------------------------------
async def test_manual_mode_tells_the_lead_what_to_do_and_records_it() -> None:
    env = await make_env()  # no Partner Center credentials
    try:
        await import_csv(env)
        lena = await propose_suspend(env)
        lena.expect("Manual mode: Partner Center API mode is off (PARTNER_CENTER_TENANT_ID")
        await lena.press(lena.buttons[0].action)
        lena.expect(
            "Partner Center API mode is off",
            "https://partner.microsoft.com/dashboard",
            f"Open Contoso (tenant {TENANT_A})",
            'change its status to "Suspended"',
            S1,
            S2,
        )
        assert lena.button_labels == ["Done in Partner Center", "Cancel"]
        done = lena.button("Done in Partner Center").action
        await lena.press(done)
        lena.expect("Contoso is suspended:", "Send Contoso this notice:")
        await lena.press(done)
        lena.expect("Already done")
        state = env.store.engine.view("collections")["customer:contoso"]
        assert state["status"] == "suspended" and state["suspended"]["by"] == "lena"
        assert [a for a in actions(env, "contoso") if a.startswith("suspend")] == [
            "suspend_proposed",
            "suspend_confirmed",
            "suspend_done_manually",
        ]
        # Reactivation after payment, by hand too.
        await lena.send("paid INV-1")
        await lena.click("Reactivate \ue000Contoso\ue001…")
        await lena.press(lena.buttons[0].action)
        lena.expect('change its status to "Active"')
        await lena.click("Done in Partner Center")
        lena.expect("Contoso is reactivated:")
        assert env.store.engine.view("collections")["customer:contoso"]["status"] == "active"
    finally:
        await env.runtime.close()


async def test_a_customer_without_tenant_id_is_manual_even_with_credentials(
    env: DeskEnv, fake: FakePartnerCenter
) -> None:
    await import_csv(env, csv_text(f",Northwind,N-1,10.00,EUR,{days_ago(40)},,{S1},"))
    lena = env.chat("lena")
    await lena.send("suspend Northwind")
    lena.expect("Manual mode: the tenant id of Northwind is not known")
    await lena.press(lena.buttons[0].action)
    assert fake.api_requests() == []


# ---- the CLI ------------------------------------------------------------------------------
CLI_CSV = csv_text(
    f"{TENANT_A},Contoso,INV-1,1200.00,EUR,2026-10-01,,{S1},",
    f"{TENANT_A},Contoso,INV-2,oops,EUR,2026-10-01,,,",
)


def run_import(db: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "receivables", "import", str(path), "--as", "lena"],
        capture_output=True,
        text=True,
        env=bot_env(db),
        cwd=ROOT,
        timeout=60,
    )


def test_cli_import_without_a_serve_opens_the_store(tmp_path: Path) -> None:
    db, path = tmp_path / "billing.json", tmp_path / "ar.csv"
    path.write_text(CLI_CSV, encoding="utf-8")
    first = run_import(db, path)
    assert first.returncode == 1, first.stderr  # a bad row
    assert (
        "ar.csv: 1 invoice: 1 new, 0 updated, 0 unchanged; 1 customer created, 0 updated."
        in first.stdout
    )
    assert 'line 3: amount: "oops" is not an amount' in first.stdout
    again = run_import(db, path)
    assert "1 invoice: 0 new, 0 updated, 1 unchanged; 0 customers created" in again.stdout


def test_cli_import_of_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.app.cli import main

    monkeypatch.setenv("BOT_DB", str(tmp_path / "billing.json"))
    monkeypatch.delenv("BOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["receivables", "import", str(tmp_path / "nope.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "latin1.csv").write_bytes(b"customer_name\nM\xfcller\n")
    assert main(["receivables", "import", str(tmp_path / "latin1.csv")]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_cli_import_goes_through_a_running_serve(tmp_path: Path) -> None:
    db, path = tmp_path / "billing.json", tmp_path / "ar.csv"
    path.write_text(CLI_CSV.replace("INV-2,oops", "INV-2,15.00"), encoding="utf-8")
    serve = Serve(db)
    serve.start()
    try:
        result = run_import(db, path)  # the serve owns the store: the import goes over loopback
        assert result.returncode == 0, result.stderr
        assert "2 invoices: 2 new, 0 updated, 0 unchanged; 1 customer created" in result.stdout
        import urllib.request

        body = json.dumps({"text": "overdue", "user": "lena"}).encode()
        request = urllib.request.Request(
            f"{serve.url}/local/messages", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            replies = json.load(resp)["replies"]
        assert "Contoso" in plain(replies[0]["text"]) and "1,215.00 EUR" in plain(
            replies[0]["text"]
        )
    finally:
        code, err = serve.stop()
    assert code == 0, err
