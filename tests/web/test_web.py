"""The web page over HTTP: login and sessions, CSRF, the web chat, the dashboard, CSV, demo data."""

from __future__ import annotations

import re
from decimal import Decimal

from bot.domain import Role, State
from bot.kernel.scheduler import loop_key
from conversations.runtime import Runtime
from tests.harness import ask_many
from tests.web.conftest import AppFactory
from tests.web.helpers import TOKENS, Browser, button, form_context

Web = tuple[Browser, Runtime]


async def ask(b: Browser, customer: str, question: str, category: str = "charges") -> str:
    """Ask a question through the web chat's whole form; returns the case id."""
    page = await b.say(f"ask {question}")
    assert 'data-form-id="ask"' in page
    out = await b.submit(
        "ask", {"customer": customer, "category": category, "description": question}
    )
    found = re.search(r'data-case="(BILL-\d+)"', out)
    assert found, out
    return found.group(1)


# ---------------------------------------------------------------- access
async def test_loopback_is_open_with_a_name_and_the_cookie_is_strict(make_web: AppFactory) -> None:
    b, _runtime, client = await make_web()
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = await b.get("/login")
    assert "your name is enough" in page and 'name="csrf"' in page
    await b.login("alice")
    page = await b.get("/")
    assert "Hello Alice Agent" in page and "agent" in page
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_login_rotates_the_session(make_web: AppFactory) -> None:
    b, _runtime, client = await make_web()
    await b.get("/login")
    before = client.session.cookie_jar.filter_cookies(client.make_url("/"))["billing_bot_session"]
    await b.login("alice")
    after = client.session.cookie_jar.filter_cookies(client.make_url("/"))["billing_bot_session"]
    assert before.value != after.value


async def test_every_post_needs_the_session_csrf_token(make_web: AppFactory) -> None:
    b, _runtime, client = await make_web()
    # No session at all: even the login form is refused.
    resp = await client.post("/login", data={"name": "alice"}, allow_redirects=False)
    assert resp.status == 403
    await b.login("alice")
    for token in ("", "forged", b.csrf[:-1]):
        resp = await client.post(
            "/chat/send", data={"csrf": token, "text": "help"}, allow_redirects=False
        )
        assert resp.status == 403, token
    resp = await client.post("/chat/send", data={"text": "help"}, headers={"X-CSRF-Token": "nope"})
    assert resp.status == 403
    resp = await client.post("/logout", data={}, allow_redirects=False)
    assert resp.status == 403
    assert "Billing desk commands" in await b.say("help")  # the page's own token works
    resp = await client.post("/chat/send", data={"text": "help"}, headers={"X-CSRF-Token": b.csrf})
    assert resp.status == 200


async def test_required_login_checks_each_users_token(
    make_web: AppFactory, login_sleeps: list[float]
) -> None:
    b, _runtime, client = await make_web(raw={"web": {"require_login": True}})
    page = await b.get("/login")
    assert "your own web token" in page
    text = await b.login("alice", status=401)  # a name alone is not enough
    assert "do not match" in text
    await b.login("alice", "carol-secret", status=401)  # someone else's token
    await b.login("nobody", TOKENS["alice"], status=401)
    await b.login("bob", "", status=401)  # bob has no token at all
    await b.login("alice", TOKENS["alice"])  # upper-case digest in the config: still fine
    assert "Hello Alice Agent" in await b.get("/")
    resp = await client.post("/logout", data={"csrf": b.csrf}, allow_redirects=False)
    assert resp.status == 303
    await b.get("/", status=303)


async def test_failed_logins_slow_down_but_never_lock_out(
    make_web: AppFactory, login_sleeps: list[float]
) -> None:
    """More in ``test_login_abuse.py`` (issue 17): per name and address, a global cap."""
    b, _runtime, _client = await make_web(raw={"web": {"require_login": True}})
    for _i in range(10):
        await b.login("alice", "wrong", status=401)
    assert login_sleeps == [0.25, 0.5, 1.0, 2.0] + [4.0] * 6
    await b.login("alice", TOKENS["alice"])  # the right token, at once
    assert len(login_sleeps) == 10


async def test_a_server_bound_beyond_loopback_needs_a_login(make_web: AppFactory) -> None:
    b, _runtime, _client = await make_web(host="0.0.0.0")
    await b.login("alice", status=401)
    await b.login("lena", TOKENS["lena"])
    assert "Lena Lead" in await b.get("/")


async def test_a_foreign_host_header_needs_a_login(make_web: AppFactory) -> None:
    """A site that rebinds its DNS name to 127.0.0.1 has its own Host: not open for it."""
    b, _runtime, client = await make_web()
    headers = {"Host": "evil.example:3978"}
    resp = await client.get("/login", headers=headers)
    assert "your own web token" in await resp.text()
    resp = await client.get("/login", headers={"X-Forwarded-For": "203.0.113.9"})
    assert "your own web token" in await resp.text()


async def test_name_only_sessions_end_when_login_becomes_required(make_web: AppFactory) -> None:
    b, _runtime, client = await make_web()
    await b.login("alice")
    resp = await client.get("/", headers={"Host": "evil.example"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_bad_web_config_fails_fast() -> None:
    import pytest

    from adapters.web.auth import WebConfig
    from bot.config import ConfigError, UserConfig
    from tests.web.helpers import web_settings

    with pytest.raises(ConfigError, match="require_login must be true or false"):
        WebConfig.from_settings(web_settings(raw={"web": {"require_login": "yes"}}))
    with pytest.raises(ConfigError, match="unknown keys: requre_login"):
        WebConfig.from_settings(web_settings(raw={"web": {"requre_login": True}}))
    bad = web_settings(users=(UserConfig(name="x", web_token_sha256="plain-token"),))
    with pytest.raises(ConfigError, match="64-character SHA-256 hex digest"):
        WebConfig.from_settings(bad)


async def test_healthz_lists_the_web_channel(web: Web) -> None:
    b, _runtime = web
    body = await (await b.client.get("/healthz")).json()
    assert body["channels"]["web"]["on"] is True
    assert "open on loopback" in body["channels"]["web"]["why"]


# ---------------------------------------------------------------- the web chat
async def test_ask_take_resolve_inform_in_the_chat_and_dashboard(web: Web) -> None:
    b, runtime = web
    await b.login("alice")
    page = await b.say("ask Why was Contoso charged twice?")
    assert 'name="f_customer"' in page and 'name="f_category"' in page
    assert "Why was Contoso charged twice?</textarea>" in page  # pre-filled
    assert "step 1 of" not in page  # the text prompt is for text channels
    case = await ask(b, "Contoso", "Why was Contoso charged twice?")
    assert case == "BILL-1"
    out = await b.click(button(await b.say("status BILL-1"), "take", case))
    assert "BILL-1 is yours now." in out and "state-in_progress" in out
    out = await b.click(button(out, "resolve", case))
    assert 'data-form-id="resolve"' in out
    out = await b.submit(
        "resolve", {"resolution": "Duplicate reversed"}, form_context(out, "resolve")
    )
    assert "BILL-1 is resolved." in out and 'data-case="BILL-1"' in out
    dash = await b.get("/dashboard")
    awaiting = dash[dash.index('id="awaiting"') : dash.index('id="requests"')]
    assert 'data-case="BILL-1"' in awaiting and "Duplicate reversed" in awaiting
    stage = re.search(r'name="ctx_stage" value="(\d+)"', awaiting)
    assert stage
    resp = await b.client.post(
        "/chat/send",
        data={
            "csrf": b.csrf,
            "next": "/dashboard#awaiting",
            "form_id": "informed",
            "ctx_case": "BILL-1",
            "ctx_stage": stage.group(1),
            "f_via": "email",
        },
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard#awaiting"
    dash = await b.get("/dashboard")
    assert "Recorded: the customer was told about BILL-1" in dash  # the flash
    awaiting = dash[dash.index('id="awaiting"') : dash.index('id="requests"')]
    assert 'data-case="BILL-1"' not in awaiting
    stored = await runtime.store.get_case(1)
    assert stored is not None and stored.state == State.CUSTOMER_INFORMED
    assert [a.channel for a in stored.audit][-1] == "web"


async def test_bad_amount_shows_the_message_under_its_field(web: Web) -> None:
    b, _runtime = web
    await b.login("alice")
    out = await b.submit(
        "dispute",
        {
            "customer": "Contoso",
            "invoice": "G0999",
            "amount": "12,50",
            "currency": "EUR",
            "reason": "Seats billed twice",
        },
    )
    assert 'data-errors="1"' in out and 'class="field has-error" data-field="amount"' in out
    assert "Use a dot for decimals: 12.50" in out
    assert 'value="12,50"' in out and 'value="Seats billed twice"' not in out  # textarea
    assert "Seats billed twice</textarea>" in out  # what was typed is kept
    assert 'aria-invalid="true"' in out
    out = await b.submit(
        "dispute",
        {
            "customer": "Contoso",
            "invoice": "G0999",
            "amount": "12.50",
            "currency": "EUR",
            "reason": "Seats billed twice",
        },
    )
    assert "Dispute BILL-1 for Contoso is open" in out and "12.50 EUR" in out


async def test_a_typed_command_after_a_shown_form_is_a_command(web: Web) -> None:
    """The page shows whole forms, so the desk's step-by-step state must not eat the next line."""
    b, _runtime = web
    await b.login("alice")
    await b.say("ask")
    out = await b.say("help")
    assert "Billing desk commands" in out


async def test_a_second_click_is_already_done(web: Web) -> None:
    b, _runtime = web
    await b.login("alice")
    case = await ask(b, "Contoso", "Invoice missing")
    take = button(await b.say(f"status {case}"), "take", case)
    await b.click(take)
    out = await b.click(take)
    assert "Already done" in out


async def test_inbox_shows_notifications_until_cleared(make_web: AppFactory) -> None:
    b, runtime, client = await make_web()
    await b.login("lena")
    case = await ask(b, "Contoso", "Assign me")
    await b.say(f"assign {case} bob")
    await runtime.scheduler.tick()
    client.session.cookie_jar.clear()
    await b.login("bob")
    page = await b.get("/")
    assert "Lena Lead assigned BILL-1 to you." in page
    inbox = await b.get("/chat/inbox")
    assert 'data-count="1"' in inbox and 'data-case="BILL-1"' in inbox
    await b.post("/chat/inbox/clear", {})
    assert 'data-count="0"' in await b.get("/chat/inbox")


async def test_typed_text_is_escaped_everywhere(web: Web) -> None:
    b, _runtime = web
    await b.login("alice")
    evil = "<script>alert(1)</script> <img src=x onerror=alert(2)> `x` https://evil.example/a"
    out = await b.say(f"ask {evil}")
    assert "<script>alert(1)" not in out and "&lt;script&gt;alert(1)" in out
    out = await b.submit(
        "ask", {"customer": "<b>Evil</b> Ltd", "category": "other", "description": evil}
    )
    for page in (out, await b.get("/dashboard"), await b.get("/cases/BILL-1")):
        assert "<script>alert" not in page and "<img src=x" not in page and "<b>Evil" not in page
        assert "&lt;b&gt;Evil&lt;/b&gt; Ltd" in page
        assert 'href="https://evil.example' not in page  # typed links are not linkified
    out = await b.say("resources")
    assert '<a href="https://learn.microsoft.com/partner-center/"' in out  # the bot's own are


async def test_role_none_chats_but_has_no_dashboard(web: Web) -> None:
    b, _runtime = web
    await b.login("nora")
    assert "billing team lead to add you" in await b.say("help")
    assert "no role on the billing desk" in await b.get("/dashboard", status=403)
    await b.get("/dashboard/cases.csv", status=403)


# ---------------------------------------------------------------- the dashboard
async def _two_tenants(b: Browser, runtime: Runtime) -> None:
    await b.login("alice")
    await ask(b, "Contoso", "Contoso question about invoice", "invoice")
    await ask(b, "Fabrikam", "Fabrikam secret question")
    await b.say("note BILL-1 internal only: customer is grumpy")
    await b.say("take BILL-2")
    await b.say("escalate BILL-2 2411240010001234")
    await b.say("take BILL-1")
    await b.say("escalate BILL-1 2411240010009999")


async def test_a_customer_sees_only_its_tenant(make_web: AppFactory) -> None:
    b, runtime, client = await make_web()
    await _two_tenants(b, runtime)
    staff = await b.get("/dashboard")
    assert "Fabrikam" in staff and "2411240010001234" in staff
    client.session.cookie_jar.clear()
    await b.login("carol")
    dash = await b.get("/dashboard")
    assert "BILL-1" in dash and "Contoso question" in dash
    for secret in ("BILL-2", "Fabrikam", "grumpy", "2411240010009999", "2411240010001234"):
        assert secret not in dash, secret
    assert 'id="awaiting"' not in dash and 'id="requests"' not in dash
    assert 'name="customer"' not in dash  # no customer filter listing other names
    page = await b.get("/cases/BILL-1")
    assert "Contoso question" in page
    for secret in ("grumpy", "2411240010009999", "Internal notes", "added a note"):
        assert secret not in page, secret
    missing = await b.get("/cases/BILL-2", status=404)
    assert missing.count("find BILL-2") == 1 and "Fabrikam" not in missing
    assert (await b.get("/cases/BILL-999", status=404)).count("find BILL-999") == 1
    csv_text = await b.get("/dashboard/cases.csv")
    assert "BILL-1" in csv_text and "BILL-2" not in csv_text and "Fabrikam" not in csv_text
    await b.get("/dashboard/awaiting.csv", status=403)
    await b.get("/dashboard/requests.csv", status=403)
    chat = await b.say("status BILL-2")
    assert "I can&#x27;t find BILL-2" in chat


async def test_filters_search_and_counts(web: Web) -> None:
    b, runtime = web
    await _two_tenants(b, runtime)
    await ask(b, "Contoso", "Unowned one", "tax")
    dash = await b.get("/dashboard?q=bill-2")
    rows = re.findall(r'<tr data-case="(BILL-\d+)"', dash)
    assert rows == ["BILL-2"]
    dash = await b.get("/dashboard?q=fabri")
    assert re.findall(r'<tr data-case="(BILL-\d+)"', dash) == ["BILL-2"]
    dash = await b.get("/dashboard?owner=none")
    assert re.findall(r'<tr data-case="(BILL-\d+)">\s*<td><a', dash) == ["BILL-3"]
    dash = await b.get("/dashboard?state=escalated&customer=contoso")
    cases = dash[dash.index('id="cases"') : dash.index('id="chart"')]
    assert re.findall(r'<tr data-case="(BILL-\d+)"', cases) == ["BILL-1"]
    requests = dash[dash.index('id="requests"') : dash.index('id="kpis"')]
    assert "2411240010009999" in requests and "2411240010001234" not in requests
    assert 'escalated to Microsoft</a> <span class="n">' in dash
    assert 'class="chart"' in dash and "<rect" in dash


async def test_csv_export_follows_the_filter_and_defuses_formulas(web: Web) -> None:
    b, runtime = web
    await b.login("alice")
    await ask(b, "=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0")
    await ask(b, "Contoso", "-2+3 harmless looking")
    await ask(b, "Fabrikam", '+HYPERLINK("http://evil")')
    resp = await b.client.get("/dashboard/cases.csv?q=contoso")
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="cases-')
    body = (await resp.read()).decode("utf-8-sig")
    lines = body.strip().split("\r\n")
    assert lines[0].startswith("case,kind,customer,state")
    assert len(lines) == 2 and "'-2+3 harmless looking" in lines[1]
    body = (await (await b.client.get("/dashboard/cases.csv")).read()).decode("utf-8-sig")
    assert ",'=cmd|' /C calc'!A0," in body or "\"'=cmd|' /C calc'!A0\"" in body
    assert "'@SUM(1+1)" in body and "'+HYPERLINK" in body
    for line in body.strip().split("\r\n")[1:]:
        for cell in line.split(","):
            assert not cell.lstrip('"').startswith(("=", "+", "-", "@")), line


async def test_awaiting_export_has_hours_and_reminders(web: Web) -> None:
    b, runtime = web
    await b.login("alice")
    case = await ask(b, "Contoso", "Resolve me")
    await b.say(f"take {case}")
    await b.say(f"resolve {case} done")
    job = await runtime.store.get_job(loop_key(1))
    assert job is not None
    # Three reminders went out; the next is not due during the test.
    await runtime.store.save_job(
        loop_key(1), {**job, "count": 3, "due": "2099-01-01T00:00:00+00:00"}
    )
    body = (await (await b.client.get("/dashboard/awaiting.csv")).read()).decode("utf-8-sig")
    header, row = body.strip().split("\r\n")
    assert header == (
        "case,customer,owner,resolved,hours since resolution,reminders sent,resolution"
    )
    assert row.startswith("BILL-1,Contoso,Alice Agent,") and ",3,done" in row
    dash = await b.get("/dashboard")
    assert '<td class="num">3</td>' in dash


async def test_unknown_lists_and_cases(web: Web) -> None:
    b, _runtime = web
    await b.login("alice")
    await b.get("/dashboard/nothing.csv", status=404)
    await b.get("/cases/not-a-case", status=404)


async def test_case_page_shows_the_full_trail_for_staff(web: Web) -> None:
    b, runtime = web
    await _two_tenants(b, runtime)
    page = await b.get("/cases/BILL-1")
    assert "Audit trail" in page and "customer is grumpy" in page
    assert "2411240010009999" in page and "escalated to Microsoft" in page
    assert page.count('<tr><td class="nowrap">') == len((await runtime.store.get_case(1)).audit)  # type: ignore[union-attr]
    assert 'href="/?case=BILL-1"' in page


async def test_kpis_over_a_period(web: Web) -> None:
    b, runtime = web
    await b.login("alice")
    case = await ask(b, "Contoso", "KPI one")
    await b.say(f"take {case}")
    await b.say(f"resolve {case} done")
    await b.say(f"informed {case} email")
    dash = await b.get("/dashboard?from=2026-11-01&to=2026-11-30")
    kpis = dash[dash.index('id="kpis"') :]
    assert "Cases created in the period: 1." in kpis
    assert kpis.count("n = 1") == 3
    dash = await b.get("/dashboard?from=2026-10-01&to=2026-10-31")
    assert "Cases created in the period: 0." in dash and "No cases in this period." in dash


# ---------------------------------------------------------------- demo data
async def test_demo_data_fills_an_empty_store_with_every_state(web: Web) -> None:
    import pytest

    from adapters.web.demo import DemoRefused, fill_demo

    b, runtime = web
    made = await fill_demo(runtime.store, runtime.settings, runtime.clock.now())
    assert made["cases"] >= 20 and made["customers"] >= 6 and made["receivables"] >= 5
    cases = [await runtime.store.get_case(n) for n in range(1, made["cases"] + 1)]
    states = {c.state for c in cases if c}
    assert states == set(State)
    disputes = [c for c in cases if c and c.dispute]
    assert len(disputes) >= 3 and all(
        isinstance(c.dispute.amount.amount, Decimal) for c in disputes
    )  # type: ignore[union-attr]
    assert any(
        c and c.service_request and c.service_request.status == "attention_needed" for c in cases
    )
    assert all(c and c.audit and c.audit[0].action == "created" for c in cases)
    assert any(c and c.notes for c in cases)
    loops = [j for k, j in await runtime.store.jobs() if k.startswith("loop:")]
    assert sorted(int(j["count"]) for j in loops) == [0, 1, 2, 4]
    owners = {u.id: u.role for u in await runtime.store.users()}
    assert Role.LEAD in owners.values()
    with pytest.raises(DemoRefused, match="already holds data"):
        await fill_demo(runtime.store, runtime.settings, runtime.clock.now())
    await b.login("lena")
    dash = await b.get("/dashboard")
    assert 'id="overdue"' in dash and "Suspension (day 30+)" in dash
    assert "Warning (day 15+)" in dash and "4,200.00 EUR" in dash
    overdue = (await (await b.client.get("/dashboard/overdue.csv")).read()).decode("utf-8-sig")
    assert overdue.startswith("customer,stage,days overdue") and "INV-2026-0912" in overdue
    assert "Contoso" in overdue


async def test_demo_data_refuses_a_store_with_a_customer(web: Web) -> None:
    import pytest

    from adapters.web.demo import DemoRefused, fill_demo

    b, runtime = web
    await b.login("alice")
    await ask(b, "Contoso", "real data")
    with pytest.raises(DemoRefused, match="1 case, 1 customer"):
        await fill_demo(runtime.store, runtime.settings, runtime.clock.now())


async def test_demo_data_route_is_loopback_json_only(web: Web) -> None:
    b, _runtime = web
    resp = await b.client.post("/local/demo-data", data={"x": "1"})
    assert resp.status == 415
    resp = await b.client.post("/local/demo-data", json={})
    assert resp.status == 200 and (await resp.json())["summary"]["cases"] >= 20
    resp = await b.client.post("/local/demo-data", json={})
    assert resp.status == 409 and "already holds data" in (await resp.json())["error"]


async def test_buttons_work_without_javascript(web: Web) -> None:
    """The case page's buttons post plainly: a change comes back as a flash, a form as a page."""
    b, _runtime = web
    await b.login("alice")
    case = await ask(b, "Contoso", "No script here")
    page = await b.get(f"/cases/{case}")
    take = button(page, "take", case)
    resp = await b.client.post(
        "/chat/send",
        data={"csrf": b.csrf, "action": take, "next": f"/cases/{case}"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/cases/{case}"
    page = await b.get(f"/cases/{case}")
    assert "BILL-1 is yours now." in page and "badge state-in_progress" in page
    text = await b.post(
        "/chat/send",
        {"action": button(page, "resolve", case), "next": f"/cases/{case}"},
        fetch=False,
    )
    assert "<!doctype html>" in text and 'data-form-id="resolve"' in text
    resp = await b.client.post(
        "/chat/send", data={"csrf": b.csrf, "text": "", "next": "/"}, allow_redirects=False
    )
    assert resp.status == 400


async def test_a_long_list_has_a_more_button_that_shows_the_next_page(web: Web) -> None:
    b, runtime = web
    await b.login("alice")
    await ask_many(runtime, "alice", 23)
    page = await b.say("list")
    assert "Open cases, page 1 of 2 · 23 cases:" in page
    more = re.findall(r'<button[^>]*name="action" value="([^"]*)"[^>]*>\s*More\s*</button>', page)
    assert more == ["list|||open page 2"], page[-3000:]
    out = await b.click(more[0])
    assert "Open cases, page 2 of 2 · 23 cases:" in out
    assert "BILL-3 ·" in out and "BILL-23 ·" not in out
    assert ">More<" not in out.replace(" ", "").replace("\n", "")  # the last page
