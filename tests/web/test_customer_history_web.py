"""A customer's case page and case list on the web show no internal events (issue 19, item 6)."""

from __future__ import annotations

from tests.web.conftest import AppFactory
from tests.web.test_web import ask


async def test_carols_case_page_shows_what_was_done_for_her(make_web: AppFactory) -> None:
    b, runtime, client = await make_web()
    await b.login("alice")
    case = await ask(b, "Contoso", "Why two charges?")
    for line in (
        f"take {case}",
        f"escalate {case} 2411240010001234",
        f"srstatus {case} closed",
        f"resolve {case} Credit note issued",
        f"snooze {case} 1h",
        f"snooze {case} 4h",
        f"note {case} grumpy customer",
    ):
        await b.say(line)
    staff = await b.get(f"/cases/{case}")
    assert "snoozed the reminders" in staff and "service request status changed" in staff
    client.session.cookie_jar.clear()
    await b.login("carol")
    page = await b.get(f"/cases/{case}")
    for internal in (
        "snoozed",
        "Snoozed until",
        "service request",
        "assigned",
        "added a note",
        "grumpy",
        "2411240010001234",
    ):
        assert internal not in page, internal
    assert "resolved it" in page and "raised it with Microsoft for you" in page
    chat = await b.say(f"status {case}")  # the web chat's card and history too
    assert "resolved it" in chat and "snoozed" not in chat and "assigned" not in chat
