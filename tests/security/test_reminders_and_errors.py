"""Reminders reach only staff, and errors tell a customer nothing about other tenants.

* A customer can never own a case (take and assign refuse), so no reminder
  is ever addressed to one; a reminder rendered for a customer's eyes would
  still hold no internal note or service request.
* "I can't find BILL-n" is the same for a case that does not exist and for
  another tenant's case, on every channel that has an HTTP edge.
"""

from __future__ import annotations

from bot.domain import State
from tests.harness import DeskEnv
from tests.security.drivers import web_driver
from tests.security.matrix import NOTE_SECRET, PEOPLE, SR_SECRET, local, seed_case, seed_world

CUSTOMERS = ("carol", "dave")


async def test_reminders_reach_only_staff_and_render_nothing_internal_for_customers() -> None:
    env = DeskEnv()
    await env.store.open()
    runtime = env.runtime
    await seed_world(runtime)
    resolved = await seed_case(runtime, State.RESOLVED)
    escalated = await seed_case(runtime, State.ESCALATED)
    unowned = await seed_case(runtime, State.OPEN)
    for who in CUSTOMERS:  # a customer can never become the one reminded
        chat = env.chat("lena")
        await chat.send(f"assign {unowned.id} {who}")
        chat.expect("is not on the billing team")
        await env.chat(who).send(f"take {unowned.id}")
    for _ in range(4 * 24 * 4):  # four days of 15-minute ticks: reminders, escalations
        env.advance(minutes=15)
        await runtime.scheduler.tick()
    recipients = {s["user"] for s in runtime.scheduler.sent}
    assert recipients and recipients <= {"lena", "alice", "bob"}, recipients
    for who in CUSTOMERS:
        assert await runtime.take_mailbox(who) == []
        user = await runtime.store.get_user(who)
        assert user is not None
        for case in (resolved, escalated):
            for kind in ("loop", "notify", "watch"):
                replies = await runtime.render_job(user, "reminder", case.number, kind)
                shown = repr(replies)
                assert NOTE_SECRET not in shown and SR_SECRET not in shown, shown
                # Only the loop DM's fixed Snooze (refused for customers, see the matrix).
                names = {b.action.name for r in replies if r.card for b in r.card.buttons}
                assert names <= {"snooze"}, names
    staff = await runtime.store.get_user("lena")
    assert staff is not None
    replies = await runtime.render_job(staff, "reminder", escalated.number, "loop")
    assert NOTE_SECRET in repr(replies)  # the same card for staff: internal details are theirs


async def test_another_tenants_case_and_a_missing_case_get_the_same_words() -> None:
    customer_b = next(p for p in PEOPLE if p.key == "customer_b")
    async with web_driver() as web:
        case = await seed_case(web.runtime, State.ESCALATED)
        await local(web.runtime, f"note {case.id} more")
        answers = []
        for target in (case.id, "BILL-99999"):
            shown = await web.send(customer_b, f"status {target}")
            answers.append(shown.text.replace(target, "BILL-n"))
        assert answers[0] == answers[1], answers
        assert "can't find" in answers[0] or "can&#x27;t find" in answers[0]
        page = await web.clients["customer_b"].get(f"/cases/{case.id}")
        missing = await web.clients["customer_b"].get("/cases/BILL-99999")
        assert page.status == missing.status == 404
        texts = [
            (await r.text()).replace(case.id, "X").replace("BILL-99999", "X")
            for r in (page, missing)
        ]
        assert texts[0] == texts[1]
