"""The web page's read-only pages for every person: dashboard, exports, case pages, inbox.

The matrix drives the web chat; these are the pages around it. Each is read
by each person of the matrix and checked with the same leak rules: another
tenant's name, id or cases, internal notes and service requests never show.
"""

from __future__ import annotations

import pytest

from bot.domain import State
from tests.security.drivers import web_driver
from tests.security.matrix import NOTE_SECRET, PEOPLE, Answer, Person, leaks, seed_case

PAGES = [
    "/",
    "/chat/inbox",
    "/dashboard",
    "/dashboard?state=escalated",
    "/dashboard/cases.csv",
    "/dashboard/awaiting.csv",
    "/dashboard/requests.csv",
    "/dashboard/overdue.csv",
    "/cases/{escalated}",
    "/cases/{resolved}",
    "/cases/BILL-1",  # tenant B's case (seeded first)
]


@pytest.mark.parametrize("who", PEOPLE, ids=str)
async def test_every_page_shows_each_person_only_what_they_may_see(who: Person) -> None:
    async with web_driver() as web:
        escalated = await seed_case(web.runtime, State.ESCALATED)
        resolved = await seed_case(web.runtime, State.RESOLVED)
        client = web.clients[who.key]
        for page in PAGES:
            path = page.format(escalated=escalated.id, resolved=resolved.id)
            resp = await client.get(path, allow_redirects=False)
            text = await resp.text()
            shown = Answer()
            shown.add(text, text)
            assert not leaks(who, shown), (path, leaks(who, shown))
            if path == f"/cases/{escalated.id}":
                staff = who.key in ("agent", "lead")
                assert resp.status == (200 if staff or who.key == "customer_a" else 404), path
                assert (NOTE_SECRET in text) is staff, path
            if path == "/cases/BILL-1":
                assert resp.status == (404 if who.key in ("customer_a", "none") else 200), path
