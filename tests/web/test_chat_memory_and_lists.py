"""What agents expected of the web page (issue 19): the chat remembers, lists say their order.

- the web chat's history survives a reload and a visit to the dashboard, per person;
- a collections DM shows its explanation above the drafted notice;
- the dashboard's case list says how it is sorted and can be sorted by age;
- a form's customer field offers the customers the person may see.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.config import CustomerConfig
from conversations.collections import flow_of
from tests.harness import START, TENANT_A, TENANT_B
from tests.web.conftest import AppFactory
from tests.web.helpers import Browser, button


def cases_in_list(dash: str) -> list[str]:
    """The case ids of the dashboard's live-case list, top to bottom."""
    table = dash[dash.index('id="cases"') : dash.index('id="chart"')]
    return re.findall(r'<tr data-case="(BILL-\d+)"', table)


def transcript(page: str) -> str:
    """The chat page's transcript (not the notifications beside it)."""
    return page[page.index('id="transcript"') : page.index('class="quick"')]


async def new_case(b: Browser, customer: str, question: str) -> str:
    await b.say(f"ask {question}")
    out = await b.submit(
        "ask", {"customer": customer, "category": "charges", "description": question}
    )
    found = re.search(r'data-case="(BILL-\d+)"', out)
    assert found, out
    return found.group(1)


# ---------------------------------------------------------------- the chat's history
async def test_the_chat_history_survives_a_reload_and_the_dashboard(make_web: AppFactory) -> None:
    b, _runtime, client = await make_web()
    await b.login("alice")
    await b.say("help")
    case = await new_case(b, "Contoso", "Why <b>two</b> charges?")
    await b.click(button(await b.say(f"status {case}"), "take", case))
    page = transcript(await b.get("/"))  # a reload: a new GET
    assert "Billing desk commands" in page and ">help</div>" in page
    assert f'data-case="{case}"' in page and "Why &lt;b&gt;two&lt;/b&gt; charges?" in page
    assert "<b>two</b>" not in page  # typed text stays escaped
    await b.get("/dashboard")
    again = transcript(await b.get("/"))
    assert again.index("Billing desk commands") < again.index(
        f"Question {case} for Contoso is open"
    )
    # Only the newest card of the case keeps its buttons; the older ones are shown dimmed.
    cards = re.findall(rf'<article class="case-card[^"]*" data-case="{case}"', again)
    assert len(cards) >= 3
    assert all("superseded" in c for c in cards[:-1]) and "superseded" not in cards[-1]
    assert f'value="take|{case}|' not in again and f'value="resolve|{case}|' in again
    # The sent ask form is shown as sent, not as a form to fill again.
    sent = re.search(
        r'<form class="([^"]*)"[^>]*data-form-id="ask"[^>]*>\s*<fieldset([^>]*)>', again
    )
    assert sent and sent.group(1) == "bot-form sent" and "disabled" in sent.group(2)
    # Someone else's chat is their own.
    client.session.cookie_jar.clear()
    await b.login("bob")
    bobs = transcript(await b.get("/"))
    assert "Billing desk commands" not in bobs and case not in bobs


async def test_the_chat_history_is_kept_without_javascript_too(make_web: AppFactory) -> None:
    b, _runtime, _client = await make_web()
    await b.login("lena")
    page = await b.post("/chat/send", {"text": "list all"}, fetch=False)
    assert "list all</div>" in transcript(page)
    page = await b.post("/chat/send", {"text": "reminders"}, fetch=False)
    assert transcript(page).index("list all</div>") < transcript(page).index("reminders</div>")
    assert "list all</div>" in transcript(await b.get("/"))


async def test_a_customer_sees_only_their_own_chat(make_web: AppFactory) -> None:
    b, _runtime, client = await make_web()
    await b.login("alice")
    await new_case(b, "Fabrikam", "Fabrikam internal question")
    client.session.cookie_jar.clear()
    await b.login("carol")
    await b.say("ask Where is my invoice?")
    page = transcript(await b.get("/"))
    assert "Where is my invoice?" in page
    assert "Fabrikam" not in page and "internal question" not in page
    client.session.cookie_jar.clear()
    await b.login("alice")
    assert "Where is my invoice?" not in transcript(await b.get("/"))


async def test_the_chat_history_is_bounded(
    make_web: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.web.pages.CHAT_KEEP", 3)
    b, runtime, _client = await make_web()
    await b.login("alice")
    for word in ("first", "second", "third", "fourth", "fifth"):
        await b.say(f"status {word}")
    page = transcript(await b.get("/"))
    assert "status first" not in page and "status second" not in page
    assert all(f"status {w}</div>" in page for w in ("third", "fourth", "fifth"))
    user = await runtime.store.find_user("alice")
    assert user is not None and len(runtime.store.web_chat(user.id)) == 3


# ---------------------------------------------------------------- collections DMs
CSV = (
    "customer_tenant_id,customer_name,invoice_number,amount,currency,due_date,paid_date,"
    "subscription_ids,amount_paid\n"
    f"{TENANT_A},Contoso,INV-1,1200.00,EUR,{(START.date() - timedelta(days=35)).isoformat()},,"
    "11111111-0000-4000-8000-000000000001,\n"
    f"{TENANT_B},Fabrikam,INV-2,80.00,USD,{(START.date() - timedelta(days=3)).isoformat()},,"
    "33333333-0000-4000-8000-000000000003,\n"
)


async def test_a_collections_dm_shows_its_explanation_above_the_draft(
    make_web: AppFactory,
) -> None:
    b, runtime, _client = await make_web()
    await flow_of(runtime).import_csv(CSV, actor="lena", channel="cli", file="ar.csv")
    await runtime.scheduler.tick()
    await b.login("lena")
    for inbox in (await b.get("/chat/inbox"), await b.get("/")):
        # Fabrikam's friendly reminder, Contoso's suspension: explanation, then the draft.
        for head, draft in (
            ("Fabrikam is 3 days overdue", "Subject: Friendly reminder: invoice INV-2"),
            ("Contoso is 35 days overdue", "Subject: Your Microsoft subscriptions are suspended"),
        ):
            assert head in inbox and draft in inbox
            assert inbox.index(head) < inbox.index(draft), (head, inbox)
        # One delivery, one notification; the newest first.
        items = inbox.split('class="inbox-item"')[1:]
        assert len(items) == 2
        assert all(("overdue" in i and "Subject:" in i) for i in items)


# ---------------------------------------------------------------- the dashboard's sort
async def test_the_case_list_says_its_sort_and_sorts_by_age(make_web: AppFactory) -> None:
    b, runtime, _client = await make_web()
    await b.login("alice")
    one = await new_case(b, "Contoso", "The oldest question")
    runtime.clock.advance(timedelta(days=2))  # type: ignore[attr-defined]
    two = await new_case(b, "Fabrikam", "The middle question")
    runtime.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    three = await new_case(b, "Contoso", "The newest question")
    runtime.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    await b.say(f"note {one} still waiting for the customer")  # the latest activity
    dash = await b.get("/dashboard")
    assert cases_in_list(dash) == [one, three, two]
    assert "Sorted by last activity, newest first." in dash
    assert 'aria-sort="none"' in dash and 'href="/dashboard?sort=oldest#cases"' in dash
    dash = await b.get("/dashboard?sort=oldest")
    assert cases_in_list(dash) == [one, two, three]
    assert "Sorted by age, oldest first." in dash and 'aria-sort="descending"' in dash
    assert 'href="/dashboard?sort=newest#cases"' in dash  # the age column's heading turns it
    assert '<input type="hidden" name="sort" value="oldest">' in dash  # kept by the filters
    dash = await b.get("/dashboard?sort=newest&customer=contoso")
    assert cases_in_list(dash) == [three, one]
    assert "Sorted by age, newest first." in dash and 'aria-sort="ascending"' in dash
    assert "customer=contoso&amp;sort=oldest" in dash  # a sort link keeps the filter
    assert cases_in_list(await b.get("/dashboard?sort=sideways")) == [one, three, two]
    csv_text = await b.get("/dashboard/cases.csv?sort=oldest")
    assert [line.split(",")[0] for line in csv_text.splitlines()[1:]] == [one, two, three]


# ---------------------------------------------------------------- the customer field
async def test_the_customer_field_offers_the_known_customers(make_web: AppFactory) -> None:
    customers = (
        CustomerConfig(name="Contoso", tenant_id=TENANT_A, owner="lena"),
        CustomerConfig(name="Fabrikam", tenant_id=TENANT_B, owner="lena"),
        CustomerConfig(name="<Tailspin & Co>", owner="lena"),
    )
    b, _runtime, client = await make_web(customers=customers)
    await b.login("alice")
    await new_case(b, "Northwind", "A customer first met in chat")
    for form in (await b.say("ask"), await b.say("dispute INV-9")):
        field = re.search(r'<input id="([^"]+)" name="f_customer"[^>]*list="([^"]+)"', form)
        assert field, form
        datalist = form[form.index(f'<datalist id="{field.group(2)}">') :]
        datalist = datalist[: datalist.index("</datalist>")]
        options = re.findall(r'<option value="([^"]*)">', datalist)
        assert options == ["&lt;Tailspin &amp; Co&gt;", "Contoso", "Fabrikam", "Northwind"]
    page = await b.get("/")  # the form shown again after a reload has its list too
    assert page.count('<datalist id="') == 3  # the sent ask form, and the two shown
    # A customer contact picks no customer, and sees no other tenant's name.
    client.session.cookie_jar.clear()
    await b.login("carol")
    for form in (await b.say("ask"), await b.say("dispute INV-9"), await b.get("/")):
        for other in ("Fabrikam", "Northwind", "Tailspin"):
            assert other not in form, other
