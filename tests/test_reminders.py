"""Close the loop: reminders on a fake clock, working hours, escalation, snooze, failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import ReminderPolicy, UserConfig
from bot.domain import Role, User
from bot.kernel.model import Reply
from bot.storage import MemoryEngine, Store
from tests.harness import DeskEnv, make_settings, strip_pseudo

# 2026-11-24 is a Tuesday; the harness clock starts at 09:00 UTC.
SHANGHAI = ZoneInfo("Asia/Shanghai")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def env_with(
    policy: ReminderPolicy | None = None, store: Store | None = None, **users: str
) -> DeskEnv:
    base = list(make_settings().users)
    extra = tuple(
        UserConfig(name=name, role=Role.AGENT, time_zone=tz) for name, tz in users.items()
    )
    settings = make_settings(users=tuple(base) + extra, reminders=policy or ReminderPolicy())
    return DeskEnv(settings, store)


async def resolved_case(env: DeskEnv, owner: str = "alice") -> str:
    case_id = await env.new_question(who=owner)
    chat = env.chat(owner)
    await chat.send(f"take {case_id}")
    await chat.send(f"resolve {case_id} reversed the charge")
    return case_id


def sends(
    env: DeskEnv, kind: str | None = None, user: str | None = None
) -> list[dict[str, object]]:
    return [
        s
        for s in env.runtime.scheduler.sent
        if (kind is None or s["type"] == kind) and (user is None or s["user"] == user)
    ]


async def run_for(env: DeskEnv, hours: float, step_minutes: int = 15) -> None:
    for _ in range(int(hours * 60 / step_minutes)):
        env.advance(minutes=step_minutes)
        await env.runtime.scheduler.tick()


async def test_resolve_sends_the_owner_a_dm_with_the_three_buttons() -> None:
    env = env_with()
    await env.store.open()
    case_id = await resolved_case(env)
    loops = sends(env, "loop", "alice")
    assert len(loops) == 1
    inbox = await env.runtime.take_mailbox("alice")
    dm = [i for i in inbox if case_id in i["text"] and "Please tell the customer" in i["text"]]
    assert dm, inbox
    labels = [strip_pseudo(b["label"]) for b in dm[-1]["card"]["buttons"]]
    assert labels == ["Customer informed", "Snooze", "Reassign"]


async def test_reminders_repeat_every_n_working_hours_then_escalate_to_lead() -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=2, escalate_after=2))
    await env.store.open()
    await resolved_case(env)
    await run_for(env, 7.5)  # Tuesday 09:00 → 16:30 UTC
    times = [s["at"] for s in sends(env, "loop", "alice")]
    assert [t.hour for t in times] == [9, 11, 13, 15]  # type: ignore[attr-defined]
    lead = sends(env, "notify", "lena")
    assert len(lead) == 1 and lead[0]["at"] == times[3]
    items = await env.runtime.take_mailbox("lena")
    assert any("after 2 reminders Alice Agent has not confirmed" in i["text"] for i in items)
    await run_for(env, 4)
    assert len(sends(env, "notify", "lena")) == 1  # the lead is pinged once, not every time


async def test_informed_stops_reminders_at_once() -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=1))
    await env.store.open()
    case_id = await resolved_case(env)
    await run_for(env, 2)
    before = len(sends(env, "loop"))
    await env.chat("alice").send(f"informed {case_id} call")
    await run_for(env, 24 * 3)
    assert len(sends(env, "loop")) == before
    assert await env.store.get_job("loop:1") is None
    case = await env.store.get_case(1)
    assert case is not None and case.audit[-1].details["reminders_sent"] == before


@pytest.mark.parametrize("command", ["reopen {case} customer wrote back", "cancel {case} dup"])
async def test_reopen_or_cancel_stops_reminders(command: str) -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=1))
    await env.store.open()
    case_id = await resolved_case(env)
    chat = env.chat("alice")
    if command.startswith("cancel"):
        await chat.send(f"reopen {case_id} wrong")
        await chat.send(f"take {case_id}")
    else:
        await chat.send(command.format(case=case_id))
    before = len(sends(env, "loop"))
    await run_for(env, 48)
    assert len(sends(env, "loop")) == before


async def test_a_reminder_drops_itself_when_the_case_moved_on_without_the_job_being_removed() -> (
    None
):
    env = env_with(ReminderPolicy(repeat_every_hours=1))
    await env.store.open()
    await resolved_case(env)
    case = await env.store.get_case(1)
    assert case is not None
    from bot.domain import Actor, InformedVia

    case.mark_informed(InformedVia.EMAIL, "", Actor("alice", Role.AGENT, "local"), env.clock.now())
    await env.store.save_case(case)  # job left in place on purpose
    before = len(sends(env, "loop"))
    await run_for(env, 3)
    assert len(sends(env, "loop")) == before
    assert await env.store.get_job("loop:1") is None


async def test_snooze_one_hour_four_hours_and_tomorrow() -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=1))
    await env.store.open()
    case_id = await resolved_case(env)
    chat = env.chat("alice")
    await chat.send(f"snooze {case_id} 4h")
    chat.expect("Snoozed: I will remind you about BILL-1 again at 2026-11-24 13:00 UTC")
    await run_for(env, 3.5)
    assert len(sends(env, "loop")) == 1
    await run_for(env, 0.75)
    assert len(sends(env, "loop")) == 2
    await chat.send(f"snooze {case_id}")
    await chat.click("Tomorrow morning")
    chat.expect("again at 2026-11-25 09:00 UTC")
    await run_for(env, 19)
    assert len(sends(env, "loop")) == 2  # nothing overnight
    await run_for(env, 1)
    assert [s["at"].hour for s in sends(env, "loop")][-1] == 9  # type: ignore[attr-defined]
    case = await env.store.get_case(1)
    assert case is not None and [a.action for a in case.audit].count("snoozed") == 2
    await chat.send(f"snooze {case_id} 3h")
    chat.expect("Snooze for 1h, 4h or until tomorrow")


async def test_a_lead_who_snoozes_an_agents_reminders_is_told_whom_they_will_reach() -> None:
    env = env_with()
    await env.store.open()
    case_id = await resolved_case(env)  # alice's
    lena = env.chat("lena")  # Berlin
    await lena.send(f"snooze {case_id} 1h")
    lena.expect(
        f"Snoozed: I will remind Alice Agent about {case_id} again at 2026-11-24 11:00 +0100."
    )
    await lena.send(f"snooze {case_id} tomorrow")  # alice's morning (UTC), not lena's
    lena.expect(f"about {case_id} again at 2026-11-25 10:00 +0100.")
    alice = env.chat("alice")
    await alice.send(f"snooze {case_id} 4h")
    alice.expect(f"Snoozed: I will remind you about {case_id} again at 2026-11-24 13:00 UTC.")


async def test_snooze_button_in_the_reminder_opens_the_choices() -> None:
    env = env_with()
    await env.store.open()
    await resolved_case(env)
    inbox = await env.runtime.take_mailbox("alice")
    from bot.kernel.serialize import reply_from_dict

    reply = reply_from_dict([i for i in inbox if i.get("card")][-1])
    assert reply.card is not None
    snooze = next(b for b in reply.card.buttons if strip_pseudo(b.label) == "Snooze")
    chat = env.chat("alice")
    await chat.press(snooze.action)
    assert chat.button_labels == ["1 hour", "4 hours", "Tomorrow morning"]
    await chat.click("1 hour")
    chat.expect("Snoozed")


@pytest.mark.parametrize(
    ("tz", "zone"),
    [("Asia/Shanghai", SHANGHAI), ("America/Los_Angeles", LOS_ANGELES)],
)
async def test_reminders_only_inside_the_owners_working_hours(tz: str, zone: ZoneInfo) -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=1), owner=tz)
    await env.store.open()
    await resolved_case(env, owner="owner")
    await run_for(env, 24 * 6, step_minutes=20)
    times = [s["at"] for s in sends(env, "loop", "owner")]
    assert len(times) > 10
    for t in times:
        local = t.astimezone(zone)  # type: ignore[attr-defined]
        assert local.weekday() < 5 and 9 <= local.hour < 17, local


async def test_first_response_pings_the_lead_and_idle_pings_the_owner() -> None:
    env = env_with(ReminderPolicy(first_response_hours=2, idle_days=1))
    await env.store.open()
    case_id = await env.new_question()
    await run_for(env, 1.5)
    assert sends(env, "watch") == []
    await run_for(env, 1)
    first = sends(env, "watch", "lena")
    assert len(first) == 1
    items = await env.runtime.take_mailbox("lena")
    assert any("has waited for a first response" in i["text"] for i in items)
    await env.chat("bob").send(f"take {case_id}")
    await run_for(env, 7)  # same working day: not idle yet
    assert sends(env, "watch", "bob") == []
    await run_for(env, 24)
    idle = sends(env, "watch", "bob")
    assert len(idle) == 1
    items = await env.runtime.take_mailbox("bob")
    assert any("has had no activity" in i["text"] for i in items)


async def test_downtime_catch_up_sends_once() -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=1))
    await env.store.open()
    await resolved_case(env)
    assert len(sends(env, "loop")) == 1
    env.advance(hours=6)  # the bot was down from 09:00 to 15:00
    await env.runtime.scheduler.tick()
    await env.runtime.scheduler.tick()
    assert len(sends(env, "loop")) == 2
    job = await env.store.get_job("loop:1")
    assert job is not None and job["due"] == (env.clock.now() + timedelta(hours=1)).isoformat()


async def test_a_crash_between_claim_and_send_is_retried_after_the_claim_timeout() -> None:
    policy = ReminderPolicy(repeat_every_hours=1, claim_timeout_minutes=5)
    env = env_with(policy)
    await env.store.open()
    await resolved_case(env)
    env.advance(hours=1)
    # Simulate a crash right after the claim: claim the job by hand and never send.
    job = await env.store.get_job("loop:1")
    assert job is not None
    from bot.storage import Op

    claimed = {
        **job,
        "claimed_until": (env.clock.now() + timedelta(minutes=5)).isoformat(),
        "version": job.get("version", 0) + 1,
    }
    await env.store.commit([Op("jobs", "loop:1", claimed)])
    await env.runtime.scheduler.tick()
    assert len(sends(env, "loop")) == 1  # still claimed: nothing sent
    env.advance(minutes=6)
    await env.runtime.scheduler.tick()
    assert len(sends(env, "loop")) == 2  # retried, not lost


async def test_failed_delivery_backs_off_then_tells_the_lead() -> None:
    users = (
        UserConfig(name="lena", role=Role.LEAD, display_name="Lena Lead"),
        UserConfig(name="alice", role=Role.AGENT, display_name="Alice Agent", slack="U0ALICE"),
    )
    env = DeskEnv(make_settings(users=users, reminders=ReminderPolicy(max_delivery_attempts=3)))
    await env.store.open()
    attempts: list[str] = []

    async def broken_slack(user: User, replies: list[Reply]) -> bool:
        attempts.append(user.id)
        return False

    env.runtime.deliverers["slack"] = broken_slack
    await resolved_case(env)
    await run_for(env, 1, step_minutes=1)
    assert attempts.count("alice") == 3
    assert sends(env, "loop") == []
    items = await env.runtime.take_mailbox("lena")
    assert any("Alice Agent could not be reached about BILL-1" in i["text"] for i in items)


async def test_reminders_command_lists_what_is_due_and_why() -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=2))
    await env.store.open()
    case_id = await resolved_case(env)
    chat = env.chat("alice")
    await chat.send("reminders")
    chat.expect(
        "Due for you:",
        f"2026-11-24 11:00 UTC · {case_id} · tell the customer the result (reminder 2)",
    )
    await chat.send(f"informed {case_id} email")
    await chat.send("reminders")
    chat.expect_not(case_id + " · tell")


async def test_the_forecast_shows_the_leads_escalation_ping_and_the_loop_steps_before_it() -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=2))  # the lead after 3 unanswered reminders
    await env.store.open()
    case_id = await resolved_case(env)  # Tuesday 09:00 UTC: the first DM went out
    tomorrow = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    ping = (
        f"{case_id} is resolved, but after 3 reminders Alice Agent has not confirmed that the "
        "customer was told."
    )
    # lena (Berlin) never wrote to the bot: what `billing-bot reminders --as lena` prints.
    lines = env.runtime.reminder_lines
    assert [strip_pseudo(x) for x in await lines("lena", tomorrow)] == [
        f"2026-11-25 10:00 +0100 · {case_id} · {ping}"
    ]
    # alice's reminders by then, every 2 working hours (09:00-17:00 UTC).
    steps = ["24 11:00", "24 13:00", "24 15:00", "25 09:00", "25 11:00", "25 13:00", "25 15:00"]
    assert [strip_pseudo(x) for x in await lines("alice", tomorrow)] == [
        f"2026-11-{at} UTC · {case_id} · tell the customer the result (reminder {n})"
        for n, at in enumerate(steps, start=2)
    ]
    # In chat, `reminders` lists what is pending, each reminder once.
    lena = env.chat("lena")
    await lena.send("reminders")
    lena.expect("Due for you:", f"2026-11-25 10:00 +0100 · {case_id} · {ping}")
    alice = env.chat("alice")
    await alice.send("reminders")
    assert alice.text.count(case_id) == 1, alice.text
    # And so it happens.
    await run_for(env, 24.5)  # until Wednesday 09:30 UTC
    times = [s["at"] for s in sends(env, "loop", "alice")]
    assert [t.isoformat() for t in times[1:]] == [  # type: ignore[attr-defined]
        "2026-11-24T11:00:00+00:00",
        "2026-11-24T13:00:00+00:00",
        "2026-11-24T15:00:00+00:00",
        "2026-11-25T09:00:00+00:00",
    ]
    assert [s["at"] for s in sends(env, "notify", "lena")] == [times[-1]]
    items = await env.runtime.take_mailbox("lena")
    assert any(ping in i["text"] for i in items), items


async def test_reassign_moves_the_reminders_to_the_new_owner() -> None:
    env = env_with(ReminderPolicy(repeat_every_hours=1))
    await env.store.open()
    case_id = await resolved_case(env)
    await env.chat("lena").send(f"assign {case_id} bob")
    await run_for(env, 1.25)
    assert sends(env, "loop", "bob")


async def test_reminders_survive_a_new_runtime_on_the_same_store(tmp_path: object) -> None:
    from bot.storage import TinyDBEngine

    path = f"{tmp_path}/db.json"
    env = env_with(ReminderPolicy(repeat_every_hours=1), store=Store(TinyDBEngine(path)))
    await env.store.open()
    await resolved_case(env)
    await env.store.close()
    env2 = env_with(ReminderPolicy(repeat_every_hours=1), store=Store(TinyDBEngine(path)))
    await env2.store.open()
    env2.clock.set(env.clock.now() + timedelta(hours=1, minutes=1))
    await env2.runtime.scheduler.tick()
    assert len(sends(env2, "loop", "alice")) == 1
    await env2.store.close()


def test_working_hours_math() -> None:
    from bot.workhours import WorkingHours

    wh = WorkingHours.parse("Asia/Shanghai")
    friday_evening = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # 18:00 Shanghai, Friday
    nxt = wh.next_working(friday_evening)
    assert nxt.astimezone(SHANGHAI) == datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI)
    added = wh.add_working(
        datetime(2026, 11, 27, 8, 0, tzinfo=UTC), timedelta(hours=2)
    )  # Fri 16:00
    assert added.astimezone(SHANGHAI) == datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI)
    assert MemoryEngine  # imported for the store fixtures of other tests
