"""End to end in headless Chromium: a real ``billing-bot serve`` on 127.0.0.1, driven by Playwright.

Debian's ``chromium`` (``/usr/bin/chromium``) runs through Playwright's Python
package with ``executable_path`` (no browser download). Without it these tests
skip and say which package to install. Screenshots go to
``test-artifacts/web/`` (gitignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import ROOT, Serve, bot_env
from tests.web.helpers import digest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "web"
# As root, without a sandbox; no background traffic (this machine's network is closed).
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TENANT = "6f0c1a52-7d1e-4a51-9c38-2b6f0d7e8a11"
CAROL_TOKEN = "carol-browser-token"
LENA_TOKEN = "lena-browser-token"
OTHER_CUSTOMERS = ("Fabrikam", "Northwind", "Tailspin", "Woodgrove", "Adventure Works")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="the browser tests need Chromium: install Debian's package `chromium` "
    "(apt-get install chromium) to run them",
)

CONFIG = f"""
[desk]
time_zone = "UTC"

[[users]]
name = "lena"
role = "lead"
display_name = "Lena Lead"
web_token_sha256 = "{digest(LENA_TOKEN)}"

[[users]]
name = "alice"
role = "agent"
display_name = "Alice Agent"

[[users]]
name = "carol"
role = "customer"
customer = "Contoso Ltd"
web_token_sha256 = "{digest(CAROL_TOKEN)}"

[[customers]]
name = "Contoso Ltd"
tenant_id = "{TENANT}"
owner = "lena"
"""


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need the playwright package (dev extra)"
    )
    with sync_api.sync_playwright() as p:
        # Playwright gives every launch a fresh, empty profile (user data dir).
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=30_000)
        try:
            yield b
        finally:
            b.close()


def _config(tmp: Path, extra: str = "") -> Path:
    path = tmp / "billing-bot.toml"
    path.write_text(CONFIG + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def open_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """A serve on 127.0.0.1 with the default rule: open on loopback, a name is enough."""
    tmp = tmp_path_factory.mktemp("web-open")
    serve = Serve(tmp / "db.json", BOT_CONFIG=str(_config(tmp)))
    serve.start()
    try:
        yield serve
    finally:
        serve.stop()


@pytest.fixture(scope="module")
def login_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """A serve with ``[web] require_login = true``; ``billing-bot demo-data`` filled its store."""
    tmp = tmp_path_factory.mktemp("web-login")
    config = _config(tmp, "\n[web]\nrequire_login = true\n")
    db = tmp / "db.json"
    demo = subprocess.run(
        [sys.executable, "-m", "bot", "demo-data"],
        env=bot_env(db, BOT_CONFIG=str(config)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 0, demo.stderr
    serve = Serve(db, BOT_CONFIG=str(config))
    serve.start()
    try:
        yield serve
    finally:
        serve.stop()


def _page(browser: Any, viewport: dict[str, int]) -> Any:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    return page


def _login(page: Any, url: str, name: str, token: str | None = None) -> None:
    page.goto(f"{url}/")
    page.get_by_label("Name").fill(name)
    if token is not None:
        page.get_by_label("Web token").fill(token)
    page.get_by_role("button", name="Log in").click()


def _say(page: Any, text: str) -> None:
    page.locator("#chat-input").fill(text)
    page.locator("#chat-input").press("Enter")


def _card(page: Any, case: str) -> Any:
    return page.locator(f'.transcript .case-card[data-case="{case}"]:not(.superseded)').last


def _no_sideways_scroll(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths


def test_ask_take_resolve_then_customer_informed_on_the_dashboard(
    browser: Any, open_serve: Serve
) -> None:
    from playwright.sync_api import expect

    page = _page(browser, DESKTOP)
    _login(page, open_serve.url, "alice")
    expect(page.locator("#transcript")).to_contain_text("Hello Alice Agent")
    _say(page, "ask Why was Contoso charged twice?")
    form = page.locator('form.bot-form[data-form-id="ask"]').last
    expect(form.get_by_label("Question")).to_have_value("Why was Contoso charged twice?")
    form.get_by_label("Customer").fill("Contoso Ltd")
    form.get_by_label("Category").select_option("charges")
    shot(page, "1-chat-ask-form")
    form.get_by_role("button", name="Submit").click()
    card = _card(page, "BILL-1")
    expect(card).to_contain_text("Question · Contoso Ltd")
    expect(card.locator(".badge")).to_have_text("open")
    card.get_by_role("button", name="Take").click()
    card = _card(page, "BILL-1")
    expect(card.locator(".badge")).to_have_text("in progress")
    expect(page.locator('.case-card.superseded[data-case="BILL-1"]')).to_have_count(1)
    card.get_by_role("button", name="Resolve").click()
    form = page.locator('form.bot-form[data-form-id="resolve"]').last
    form.get_by_label("What was done").fill("The duplicate charge was reversed.")
    form.get_by_role("button", name="Submit").click()
    expect(_card(page, "BILL-1").locator(".badge")).to_have_text("resolved, customer not told yet")
    expect(page.locator("#transcript")).to_contain_text("BILL-1 is resolved.")
    shot(page, "2-chat-resolved")

    page.get_by_role("link", name="Dashboard").click()
    row = page.locator('#awaiting tr[data-case="BILL-1"]')
    expect(row).to_contain_text("Contoso Ltd")
    expect(row).to_contain_text("Alice Agent")
    shot(page, "3-dashboard-awaiting")
    row.get_by_label("How was the customer told?").select_option("call")
    row.get_by_role("button", name="Customer informed").click()
    expect(page.locator(".flash")).to_contain_text("Recorded: the customer was told about BILL-1")
    expect(page.locator('#awaiting tr[data-case="BILL-1"]')).to_have_count(0)
    expect(page.locator('#cases tr[data-case="BILL-1"] .badge')).to_have_text("customer informed")
    shot(page, "4-dashboard-informed")

    page.locator('#cases tr[data-case="BILL-1"] a').first.click()
    trail = page.locator("table.audit")
    expect(trail).to_contain_text("recorded that the customer was told")
    expect(trail).to_contain_text("Customer told: Call")
    shot(page, "5-case-page")
    assert page.errors == []
    page.context.close()


def test_a_bad_amount_in_the_dispute_form_shows_its_message(
    browser: Any, open_serve: Serve
) -> None:
    from playwright.sync_api import expect

    page = _page(browser, DESKTOP)
    _login(page, open_serve.url, "alice")
    _say(page, "dispute G012345678")
    form = page.locator('form.bot-form[data-form-id="dispute"]').last
    expect(form.get_by_label("Invoice number")).to_have_value("G012345678")
    form.get_by_label("Customer").fill("Contoso Ltd")
    form.get_by_label("Disputed amount").fill("12,50")
    form.get_by_label("Currency").fill("EUR")
    form.get_by_label("Reason").fill("Seats billed twice")
    form.get_by_role("button", name="Submit").click()
    field = page.locator('form.bot-form[data-errors] [data-field="amount"]').last
    expect(field.locator(".field-error")).to_contain_text("Use a dot for decimals: 12.50")
    expect(field.locator("input")).to_have_attribute("aria-invalid", "true")
    expect(page.locator('form.bot-form[data-errors] [data-field="reason"] textarea')).to_have_value(
        "Seats billed twice"
    )
    shot(page, "6-dispute-bad-amount")
    field.locator("input").fill("12.50")
    page.locator("form.bot-form[data-errors]").get_by_role("button", name="Submit").click()
    expect(page.locator("#transcript")).to_contain_text("Dispute BILL-")
    expect(page.locator(".transcript .case-card").last).to_contain_text("12.50 EUR")
    assert page.errors == []
    page.context.close()


def test_phone_sized_chat_and_dashboard(browser: Any, open_serve: Serve) -> None:
    from playwright.sync_api import expect

    page = _page(browser, PHONE)
    _login(page, open_serve.url, "lena")
    _say(page, "list all")
    expect(page.locator("#transcript")).to_contain_text("All cases")
    _no_sideways_scroll(page)
    shot(page, "7-phone-chat")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#cases h2")).to_contain_text("Live cases")
    _no_sideways_scroll(page)
    shot(page, "8-phone-dashboard")
    page.context.close()


def test_a_customer_login_sees_only_its_tenant(browser: Any, login_serve: Serve) -> None:
    from playwright.sync_api import expect

    page = _page(browser, DESKTOP)
    _login(page, login_serve.url, "carol")  # a name alone is not enough here
    expect(page.locator("#login-error")).to_contain_text("do not match")
    _login(page, login_serve.url, "carol", "wrong token")
    expect(page.locator("#login-error")).to_contain_text("do not match")
    _login(page, login_serve.url, "carol", CAROL_TOKEN)
    expect(page.locator(".who")).to_contain_text("customer")
    cookie = next(c for c in page.context.cookies() if c["name"] == "billing_bot_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"

    page.get_by_role("link", name="Dashboard").click()
    rows = page.locator("#cases tbody tr[data-case]")
    expect(rows.first).to_be_visible()
    customers = set(page.locator("#cases tbody tr[data-case] td:nth-child(2)").all_inner_texts())
    assert customers == {"Contoso Ltd"}
    body = page.locator("body").inner_text()
    for other in OTHER_CUSTOMERS:
        assert other not in body, other
    expect(page.locator("#awaiting")).to_have_count(0)
    expect(page.locator("#requests")).to_have_count(0)
    expect(page.locator("#overdue")).to_have_count(0)
    shot(page, "9-customer-dashboard")

    contoso = set(
        page.locator("#cases tbody tr[data-case]").evaluate_all(
            "rows => rows.map(r => r.dataset.case)"
        )
    )
    other = next(f"BILL-{n}" for n in range(1, 30) if f"BILL-{n}" not in contoso)
    response = page.goto(f"{login_serve.url}/cases/{other}")
    assert response is not None and response.status == 404
    page.goto(f"{login_serve.url}/")
    _say(page, f"status {other}")
    expect(page.locator("#transcript")).to_contain_text(f"I can't find {other}")
    shot(page, "10-customer-chat")
    assert page.errors == []
    page.context.close()

    staff = _page(browser, DESKTOP)
    _login(staff, login_serve.url, "lena", LENA_TOKEN)
    staff.goto(f"{login_serve.url}/dashboard")
    expect(staff.locator("#overdue")).to_contain_text("Suspension (day 30+)")
    names = set(staff.locator("#cases tbody tr[data-case] td:nth-child(2)").all_inner_texts())
    assert {"Contoso Ltd", "Fabrikam Inc"} <= names
    shot(staff, "11-lead-dashboard-demo-data")
    staff.context.close()


def test_the_chat_remembers_across_a_reload_and_the_dashboard(
    browser: Any, open_serve: Serve
) -> None:
    from playwright.sync_api import expect

    page = _page(browser, DESKTOP)
    _login(page, open_serve.url, "lena")
    _say(page, "reminders")
    expect(page.locator("#transcript .msg.me").last).to_contain_text("reminders")
    _say(page, "ask")
    form = page.locator('form.bot-form[data-form-id="ask"]').last
    expect(form.locator('datalist option[value="Contoso Ltd"]')).to_have_count(1)
    page.reload()
    expect(page.locator("#transcript .msg.me").filter(has_text="reminders").last).to_be_visible()
    expect(page.locator('form.bot-form[data-form-id="ask"]').last).to_be_visible()
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#sort-note")).to_contain_text("Sorted by last activity, newest first")
    page.locator("#cases th a.sort").click()
    expect(page.locator("#sort-note")).to_contain_text("Sorted by age, oldest first")
    shot(page, "12-dashboard-sorted-by-age")
    page.get_by_role("link", name="Chat", exact=True).click()
    expect(page.locator("#transcript .msg.me").last).to_contain_text("ask")
    shot(page, "13-chat-after-the-dashboard")
    assert page.errors == []
    page.context.close()
