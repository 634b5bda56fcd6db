"""A customer's view of a case's history, through the chat (issue 19, item 6).

The decision per audit event kind is bot.domain.AUDIT_KINDS (tests/test_audit_visibility.py
checks every kind in every place); this is the afternoon's finding, end to end.
"""

from __future__ import annotations

from tests.harness import DeskEnv, strip_pseudo


async def test_carol_sees_what_was_done_for_her_not_the_desks_workings() -> None:
    """Issue 19, item 6: carol's `status BILL-1` showed "snoozed the reminders" three times
    and "service request status changed"."""
    env = DeskEnv()
    await env.store.open()
    case_id = await env.new_question("alice")
    alice = env.chat("alice")
    await alice.send(f"take {case_id}")
    await alice.send(f"escalate {case_id} 2411240010001234")
    alice.expect("escalated to Microsoft")
    await alice.send(f"srstatus {case_id} closed Microsoft credited the seats")
    await alice.send(f"resolve {case_id} Credit note issued")
    for _i in range(3):
        env.advance(hours=1)
        await alice.send(f"snooze {case_id} 1h")
        alice.expect("Snoozed")
    await alice.send(f"note {case_id} grumpy customer")
    lena = env.chat("lena")
    await lena.send(f"assign {case_id} bob")
    lena.expect("now belongs to Bob Agent")
    await alice.send(f"status {case_id}")
    alice.expect("snoozed the reminders", "service request status changed", "assigned")

    carol = env.chat("carol")
    await carol.send(f"status {case_id}")
    carol.expect_not(
        "snoozed",
        "reminder",
        "service request",
        "assigned",
        "added a note",
        "grumpy",
        "2411240010001234",
    )
    carol.expect(
        "opened the case",
        "started working on it",
        "raised it with Microsoft for you",
        "resolved it — Credit note issued",
    )
    # Her list: the last change she can see was the resolution, 3 hours before the snoozes.
    env.advance(minutes=30)
    await carol.send("list all")
    carol.expect(f"{case_id} · Contoso")
    carol.expect("3 hours ago")
    await carol.send(f"status {case_id}")
    assert carol.card is not None
    assert not any("snooze" in strip_pseudo(h) for h in carol.card.history)
