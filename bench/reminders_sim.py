"""Simulate the close-the-loop policy: the real scheduler, flows and TinyDB store on a fake clock.

    python bench/reminders_sim.py --days 30 --cases 5000 --seed 1

Owners in several time zones answer reminders after random delays (some
never). The last line printed is one JSON object with the figures; the
must-values are ``reminders_after_informed == 0``, ``duplicate_reminders == 0``,
``outside_working_hours == 0`` and ``loop_closed_or_escalated_ratio == 1.0``.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app.wiring import build_runtime  # noqa: E402
from bot.clock import FakeClock  # noqa: E402
from bot.config import CustomerConfig, ReminderPolicy, Settings, UserConfig  # noqa: E402
from bot.domain import Role, User  # noqa: E402
from bot.kernel.model import Channel, Message, Reply  # noqa: E402
from bot.storage import Store, TinyDBEngine  # noqa: E402
from conversations.runtime import Runtime

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday
ZONES = ["Asia/Shanghai", "America/Los_Angeles", "Europe/Berlin", "UTC", "Australia/Sydney"]
TICK = timedelta(minutes=10)
LAST: list[Sim] = []  # the last simulation, for a look at its details from Python


@dataclass
class Sim:
    runtime: Runtime
    clock: FakeClock
    rng: random.Random
    policy: ReminderPolicy
    events: list[tuple[datetime, int, str, int]] = field(default_factory=list)
    seq: int = 0
    sends: list[tuple[datetime, str, str, int | None]] = field(default_factory=list)
    informed_at: dict[int, datetime] = field(default_factory=dict)
    resolved_at: dict[int, datetime] = field(default_factory=dict)
    lead_pinged: dict[int, datetime] = field(default_factory=dict)
    never: set[int] = field(default_factory=set)

    def push(self, when: datetime, what: str, case: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, what, case))

    async def say(self, user: str, text: str) -> list[Reply]:
        msg = Message(
            channel=Channel.LOCAL, user=user, conversation=f"sim:{user}", text=text, user_name=user
        )
        return (await self.runtime.desk.handle(msg)).replies

    async def deliver(self, user: User, replies: list[Reply]) -> bool:
        now = self.clock.now()
        text = replies[0].text if replies else ""
        case = None
        card = replies[0].card if replies else None
        if card is not None:
            case = int(card.case_id.split("-")[1])
        kind = (
            "loop"
            if ("is resolved. Please tell" in text or text.startswith("Reminder:"))
            else "other"
        )
        self.sends.append((now, user.id, kind, case))
        if kind == "other" and user.role == Role.LEAD and case is not None and "after" in text:
            self.lead_pinged.setdefault(case, now)
        if kind == "loop" and case is not None and case not in self.never:
            if self.rng.random() < 0.6:  # answers this reminder, after a while
                self.push(now + timedelta(minutes=self.rng.randint(5, 300)), "inform", case)
        return True


def build_settings(owners: list[tuple[str, str]], policy: ReminderPolicy) -> Settings:
    users = [UserConfig(name="lead", role=Role.LEAD, time_zone="Europe/Berlin", slack="ULEAD")]
    users += [
        UserConfig(name=n, role=Role.AGENT, time_zone=tz, slack=f"U{n.upper()}") for n, tz in owners
    ]
    customers = tuple(CustomerConfig(name=f"Customer {i}", owner="lead") for i in range(50))
    return Settings(db_path=":memory:", users=tuple(users), customers=customers, reminders=policy)


async def run(days: int, cases: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    policy = ReminderPolicy()
    owners = [(f"owner{i}", ZONES[i % len(ZONES)]) for i in range(10)]
    settings = build_settings(owners, policy)
    tmp = tempfile.TemporaryDirectory()
    store = Store(TinyDBEngine(Path(tmp.name) / "sim.json"))
    await store.open()
    clock = FakeClock(START)
    runtime = build_runtime(settings, store, clock)
    runtime.inline_scheduling = False
    sim = Sim(runtime, clock, rng, policy)
    LAST.append(sim)
    runtime.deliverers["slack"] = sim.deliver
    end = START + timedelta(days=days)
    owner_of: dict[int, str] = {}
    # Cases arrive over the run (the last two days only for late arrivals).
    for _ in range(cases):
        sim.push(START + timedelta(seconds=rng.randint(0, int((days - 2) * 86400))), "ask", 0)

    wall = time.perf_counter()
    next_tick = START
    while True:
        nxt_event = sim.events[0][0] if sim.events else end
        if next_tick <= nxt_event:
            if next_tick >= end:
                break
            clock.set(next_tick)
            await runtime.scheduler.tick()
            next_tick += TICK
            continue
        when, _seq, what, number = heapq.heappop(sim.events)
        if when >= end:
            continue
        clock.set(when)
        if what == "ask":
            owner, _tz = rng.choice(owners)
            customer = f"Customer {rng.randrange(50)}"
            msg = Message(
                channel=Channel.LOCAL,
                user=owner,
                conversation=f"sim:{owner}",
                form_id="ask",
                form_values={
                    "customer": customer,
                    "category": "charges",
                    "description": "Why this charge?",
                },
                user_name=owner,
            )
            replies = (await runtime.desk.handle(msg)).replies
            card = next(r.card for r in replies if r.card)
            number = int(card.case_id.split("-")[1])
            owner_of[number] = owner
            await sim.say(owner, f"take BILL-{number}")
            sim.push(when + timedelta(hours=rng.uniform(1, 72)), "resolve", number)
            if rng.random() < 0.15:
                sim.never.add(number)
        elif what == "resolve":
            await sim.say(owner_of[number], f"resolve BILL-{number} reversed the charge")
            sim.resolved_at[number] = when
        elif what == "inform" and number not in sim.informed_at:
            replies = await sim.say(owner_of[number], f"informed BILL-{number} email")
            if replies and "Recorded" in replies[0].text:
                sim.informed_at[number] = when
    wall_s = time.perf_counter() - wall

    users = {u.id: u for u in await store.users()}
    hours = {uid: runtime.scheduler.hours_of(u) for uid, u in users.items()}
    outside = sum(1 for at, uid, _k, _c in sim.sends if not hours[uid].is_working(at))
    after_informed = sum(
        1
        for at, _u, kind, c in sim.sends
        if kind == "loop" and c in sim.informed_at and at > sim.informed_at[c]
    )
    by_case: dict[int, list[datetime]] = {}
    for at, _uid, kind, c in sim.sends:
        if kind == "loop" and c is not None:
            by_case.setdefault(c, []).append(at)
    duplicates = 0
    for c, times in by_case.items():
        cal = hours[owner_of[c]]
        for a, b in zip(times, times[1:], strict=False):
            if b < cal.add_working(a, timedelta(hours=policy.repeat_every_hours)) - timedelta(
                minutes=1
            ):
                duplicates += 1
    # The policy deadline of a resolved case: when the owner's (K+1)th DM is due — the
    # first goes out when the owner's working hours allow, then one every N working
    # hours — and the lead's ping then goes out in the lead's working hours. The
    # scheduler runs every TICK, so each step may be up to one tick late: the
    # deadline allows exactly that (next_working and add_working are monotonic).
    lead_hours = hours["lead"]
    in_window = ok = 0
    for c, resolved in sim.resolved_at.items():
        cal = hours[owner_of[c]]
        t = cal.next_working(resolved + TICK)
        for _ in range(policy.escalate_after + 1):
            t = cal.add_working(t, timedelta(hours=policy.repeat_every_hours))
        deadline = lead_hours.next_working(t + TICK) + TICK
        if deadline >= end:
            continue
        in_window += 1
        informed = sim.informed_at.get(c)
        pinged = sim.lead_pinged.get(c)
        if (informed and informed <= deadline) or (pinged and pinged <= deadline):
            ok += 1
    result = {
        "cases": cases,
        "resolved": len(sim.resolved_at),
        "informed": len(sim.informed_at),
        "escalated_to_lead": len(sim.lead_pinged),
        "reminders_sent": sum(len(v) for v in by_case.values()),
        "reminders_after_informed": after_informed,
        "duplicate_reminders": duplicates,
        "outside_working_hours": outside,
        "loop_deadlines_in_run": in_window,
        "loop_closed_or_escalated_ratio": round(ok / in_window, 6) if in_window else 1.0,
        "days": days,
        "seed": seed,
        "wall_s": round(wall_s, 2),
    }
    await store.close()
    tmp.cleanup()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(run(args.days, args.cases, args.seed))
    print(json.dumps(result))
    must = (
        result["reminders_after_informed"] == 0
        and result["duplicate_reminders"] == 0
        and result["outside_working_hours"] == 0
        and result["loop_closed_or_escalated_ratio"] == 1.0
    )
    return 0 if must else 1


if __name__ == "__main__":
    raise SystemExit(main())
