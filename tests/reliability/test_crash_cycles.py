"""Kill -9 cycles: a real ``serve`` under concurrent Slack and Teams traffic, SIGKILLed at random.

Four simulated people work at once, each in a loop until the process dies:

* ana on Slack creates cases through the ``/billing ask`` modal (a signed
  ``view_submission``), takes them with the card's Take button
  (``block_actions``), resolves them and sometimes records that the customer
  was told (slash commands), and adds notes (slash commands);
* lena on Slack adds notes in a DM to the bot (``message.im`` events; an event
  that got no answer is sent again with ``X-Slack-Retry-Num``, as Slack does);
* alice on Teams creates cases through the ask card, takes them with the
  card's Take button, resolves them, sometimes records the customer was told;
* bob on Teams adds notes.

Every text carries a unique token (``Q…Z`` descriptions, ``N…Z`` notes,
``R…Z`` resolutions), so the store can be checked request by request. After
each kill a copy of the store is opened offline and checked
(``inspect_store`` and ``case_problems`` in ``world.py``); then the process is started
again on the same store with its clock moved on. After the last cycle a final
``serve`` runs with the clock three hours later, works off whatever was
queued, must send a close-the-loop DM for every case still waiting for one,
and is stopped cleanly. Then every request that was answered 2xx must be done
exactly once, and no case id may have been shown for two different cases.

``RELIABILITY_SEED`` replays a run; ``RELIABILITY_CYCLES`` changes the count.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.domain import State
from tests.reliability.world import (
    CARD_TITLE,
    START,
    StoreImage,
    World,
    env_seed,
    inspect_store,
    open_world,
    shown_cards,
)
from tests.slack.slackfake import ASK_VALUES, Posted
from tests.teams.conftest import ALICE, BOB, Call, TeamsUser

pytestmark = pytest.mark.slow

CYCLES = int(os.environ.get("RELIABILITY_CYCLES", "20"))
SEED = env_seed(20261124)
CLOCK_STEP = timedelta(minutes=3)  # fake time between two starts: always forward
QTOKEN = re.compile(r"\bQ[A-Z]\d{4}Z\b")
DOWN = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass
class Expect:
    """What a request answered 2xx promised; checked against the store after the last run."""

    kind: str  # created | noted | took | resolved | informed
    via: str
    token: str = ""
    case: int = 0
    user: str = ""
    tokens: tuple[str, ...] = ()


@dataclass
class Ledger:
    """Everything sent, what was acknowledged, and what each acknowledgement promised."""

    sent: int = 0
    acked: int = 0
    unanswered: int = 0  # the process died before answering (or refused the connection)
    refused: list[str] = field(default_factory=list)  # a 2xx/4xx that did not accept the request
    expects: list[Expect] = field(default_factory=list)
    created: set[str] = field(default_factory=set)  # every creation token ever sent
    notes: set[str] = field(default_factory=set)  # every note token ever sent
    numbers: dict[str, int] = field(default_factory=dict)  # creation token -> case number shown

    def ack(self, expect: Expect | None) -> None:
        self.acked += 1
        if expect is not None:
            self.expects.append(expect)


@dataclass
class Lifecycle:
    """One case, from creation to resolved (and maybe customer informed), by one person."""

    token: str
    inform: bool
    number: int | None = None
    took: bool = False
    resolved: bool = False
    informed: bool = False
    resolutions: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.resolved and (self.informed or not self.inform)


class Driver:
    """One person sending requests back to back while the process lives."""

    def __init__(self, letter: str, world: World, ledger: Ledger, rng: random.Random) -> None:
        self.letter = letter  # in every token this driver makes: tokens never collide
        self.world = world
        self.ledger = ledger
        self.rng = rng
        self.seq = 0
        self.cases: list[Lifecycle] = []

    def token(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.letter}{self.seq:04d}Z"

    def known_numbers(self) -> list[int]:
        return sorted(set(self.ledger.numbers.values()))

    def learn_numbers(self) -> None:
        for lc in self.cases:
            if lc.number is None:
                lc.number = self.ledger.numbers.get(lc.token)

    async def run(self, stop: asyncio.Event, burst: bool = False) -> None:
        """Send until ``stop``; in a burst back to back, so the kill finds work queued."""
        while not stop.is_set():
            self.learn_numbers()
            try:
                await self.step()
            except DOWN:
                self.ledger.unanswered += 1
                await asyncio.sleep(0.02)
            await asyncio.sleep(self.rng.uniform(0, 0.02) if burst else self.rng.uniform(0.05, 0.2))

    async def step(self) -> None:
        raise NotImplementedError

    def next_lifecycle(self) -> Lifecycle | None:
        """A case of mine that can move on, or None (then a new one is created)."""
        ready = [lc for lc in self.cases if lc.number is not None and not lc.finished]
        return ready[0] if ready else None

    def waiting_too_many(self) -> bool:
        return len([lc for lc in self.cases if lc.number is None]) >= 2


class SlackAgent(Driver):
    """ana on Slack: the ask modal, the Take button, resolve / informed / note commands."""

    user = "UANA"
    person = "ana"

    def __init__(self, *a: Any, view: dict[str, Any]) -> None:
        super().__init__(*a)
        self.view = view
        self.slack = self.world.slack_env()

    async def step(self) -> None:
        numbers = self.known_numbers()
        if numbers and self.rng.random() < 0.3:
            await self.note(self.rng.choice(numbers))
            return
        lc = self.next_lifecycle()
        if lc is None:
            if self.waiting_too_many():
                await asyncio.sleep(0.05)
                return
            await self.create()
            return
        assert lc.number is not None
        if not lc.took:
            await self.take(lc)
        elif not lc.resolved:
            await self.resolve(lc)
        else:
            await self.inform(lc)

    async def create(self) -> None:
        token = self.token("Q")
        lc = Lifecycle(token, inform=self.rng.random() < 0.5)
        self.cases.append(lc)
        self.ledger.created.add(token)
        self.ledger.sent += 1
        view = {**self.view, "id": f"V{token}"}
        values = {**ASK_VALUES, "description": f"{token} why two charges"}
        status, answer = await self.slack.submit(view, values, user=self.user)
        if status == 200 and answer == {}:
            self.ledger.ack(Expect("created", "slack modal", token=token))
        else:
            self.cases.remove(lc)
            self.ledger.refused.append(f"slack modal {token}: {status} {answer}")

    def card(self, number: int) -> Posted | None:
        for message in reversed(self.world.slack.messages):
            if message.ephemeral or f"BILL-{number} · " not in message.text:
                continue
            if any(b["value"].split("|")[0] == "take" for b in message.buttons()):
                return message
        return None

    async def command(self, text: str, expect: Expect) -> bool:
        self.ledger.sent += 1
        status, body = await self.slack.command(text, user=self.user, settle=False)
        if status == 200 and not body.strip():
            self.ledger.ack(expect)
            return True
        self.ledger.refused.append(f"slack /billing {text}: {status} {body[:200]}")
        return False

    async def take(self, lc: Lifecycle) -> None:
        assert lc.number is not None
        expect = Expect("took", "slack", case=lc.number, user=self.person)
        card = self.card(lc.number)
        if card is None:
            lc.took = await self.command(f"take BILL-{lc.number}", expect)
            return
        self.ledger.sent += 1
        status, body = await self.slack.click(card, "take", user=self.user, settle=False)
        if status == 200:
            self.ledger.ack(Expect("took", "slack button", case=lc.number, user=self.person))
            lc.took = True
        else:
            self.ledger.refused.append(f"slack click take: {status} {body[:200]}")

    async def resolve(self, lc: Lifecycle) -> None:
        assert lc.number is not None
        token = self.token("R")
        lc.resolutions.append(token)
        expect = Expect("resolved", "slack", case=lc.number, tokens=tuple(lc.resolutions))
        lc.resolved = await self.command(f"resolve BILL-{lc.number} {token} reversed", expect)

    async def inform(self, lc: Lifecycle) -> None:
        assert lc.number is not None
        expect = Expect("informed", "slack", case=lc.number)
        lc.informed = await self.command(f"informed BILL-{lc.number} email told them", expect)

    async def note(self, number: int) -> None:
        token = self.token("N")
        self.ledger.notes.add(token)
        await self.command(
            f"note BILL-{number} {token} checked",
            Expect("noted", "slack", case=number, token=token),
        )


class SlackDMNotes(Driver):
    """lena on Slack: notes in a DM; an unanswered event is retried with the same event_id."""

    user = "ULENA"

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.slack = self.world.slack_env()
        self.pending: list[tuple[str, str, int, int, str]] = []  # event id, text, retry, case, tok

    async def step(self) -> None:
        if self.pending:
            event_id, text, retry, number, token = self.pending.pop(0)
            await self.send(event_id, text, retry + 1, number, token)
            return
        numbers = self.known_numbers()
        if not numbers:
            await asyncio.sleep(0.05)
            return
        number = self.rng.choice(numbers)
        token = self.token("N")
        self.ledger.notes.add(token)
        await self.send(f"Ev{token}", f"note BILL-{number} {token} called them", 0, number, token)

    async def send(self, event_id: str, text: str, retry: int, number: int, token: str) -> None:
        self.ledger.sent += 1
        try:
            status, body = await self.slack.dm(
                text, user=self.user, event_id=event_id, retry=retry or None
            )
        except DOWN:
            if retry < 3:  # Slack tries an event 1 + 3 times
                self.pending.append((event_id, text, retry, number, token))
            raise
        if status == 200:
            self.ledger.ack(Expect("noted", "slack dm", case=number, token=token))
        else:
            self.ledger.refused.append(f"slack event {event_id}: {status} {body[:200]}")


class TeamsAgent(Driver):
    """alice on Teams: the ask card, the card's Take button, typed resolve / informed / notes."""

    who: TeamsUser = ALICE
    person = "alice"

    def __init__(self, *a: Any, form: Call) -> None:
        super().__init__(*a)
        self.form = form
        self.teams = self.world.teams()

    async def post(self, activity: dict[str, Any], what: str, expect: Expect | None) -> bool:
        self.ledger.sent += 1
        status = await self.world.post_activity(activity)
        if 200 <= status < 300:
            self.ledger.ack(expect)
            return True
        self.ledger.refused.append(f"teams {what}: {status}")
        return False

    async def step(self) -> None:
        numbers = self.known_numbers()
        if numbers and self.rng.random() < 0.3:
            number = self.rng.choice(numbers)
            token = self.token("N")
            self.ledger.notes.add(token)
            activity = self.teams.say(self.who, f"note BILL-{number} {token} mailed")
            await self.post(activity, "note", Expect("noted", "teams", case=number, token=token))
            return
        lc = self.next_lifecycle()
        if lc is None:
            if self.waiting_too_many():
                await asyncio.sleep(0.05)
                return
            token = self.token("Q")
            lc = Lifecycle(token, inform=self.rng.random() < 0.5)
            self.cases.append(lc)
            self.ledger.created.add(token)
            values = {"customer": "Contoso", "category": "refund", "description": f"{token} refund"}
            activity = self.teams.submit(self.who, self.form, values)
            if not await self.post(activity, "ask card", Expect("created", "teams", token=token)):
                self.cases.remove(lc)
            return
        number = lc.number
        assert number is not None
        if not lc.took:
            card = self.card(number)
            expect = Expect("took", "teams", case=number, user=self.person)
            if card is not None:
                activity = self.teams.click(self.who, card, "Take")
            else:
                activity = self.teams.say(self.who, f"take BILL-{number}")
            lc.took = await self.post(activity, "take", expect)
        elif not lc.resolved:
            token = self.token("R")
            lc.resolutions.append(token)
            expect = Expect("resolved", "teams", case=number, tokens=tuple(lc.resolutions))
            activity = self.teams.say(self.who, f"resolve BILL-{number} {token} refunded")
            lc.resolved = await self.post(activity, "resolve", expect)
        else:
            activity = self.teams.say(self.who, f"informed BILL-{number} call")
            lc.informed = await self.post(
                activity, "informed", Expect("informed", "teams", case=number)
            )

    def card(self, number: int) -> Call | None:
        for call in reversed(self.world.connector.calls):
            if not call.cards or f"BILL-{number} · " not in call.card_text():
                continue
            if any(a.get("title") == "Take" for a in call.actions()):
                return call
            return None
        return None


class TeamsNotes(TeamsAgent):
    """bob on Teams: notes only."""

    who = BOB
    person = "bob"

    async def step(self) -> None:
        numbers = self.known_numbers()
        if not numbers:
            await asyncio.sleep(0.05)
            return
        number = self.rng.choice(numbers)
        token = self.token("N")
        self.ledger.notes.add(token)
        activity = self.teams.say(self.who, f"note BILL-{number} {token} looked")
        await self.post(activity, "note", Expect("noted", "teams", case=number, token=token))


# ---------------------------------------------------------------- what users were shown
def record_shown(world: World, ledger: Ledger) -> list[str]:
    """Learn case numbers from the cards users saw; a number shown for two cases is a problem."""
    problems: list[str] = []
    by_number: dict[int, set[str]] = {}
    for number, text in shown_cards(world.slack, world.connector):
        if len({int(m.group(1)) for m in CARD_TITLE.finditer(text)}) != 1:
            continue
        by_number.setdefault(number, set()).update(QTOKEN.findall(text))
    for number, tokens in by_number.items():
        if len(tokens) > 1:
            problems.append(f"BILL-{number} was shown for several cases: {sorted(tokens)}")
        for token in tokens:
            seen = ledger.numbers.setdefault(token, number)
            if seen != number:
                problems.append(f"{token} was shown as BILL-{seen} and as BILL-{number}")
    return problems


def shown_exist(ledger: Ledger, image: StoreImage) -> list[str]:
    """Every case id a user was shown exists, and is the case it was shown for."""
    out = []
    for token, number in ledger.numbers.items():
        case = image.cases.get(number)
        if case is None:
            out.append(f"BILL-{number} was shown (for {token}) but is not in the store")
        elif token not in case.description:
            out.append(f"BILL-{number} was shown for {token} but holds {case.description!r}")
    return out


def unfulfilled(ledger: Ledger, image: StoreImage) -> list[str]:
    """Each acknowledged request that is not done (exactly once) in the final store."""
    by_token: dict[str, list[int]] = {}
    for number, case in image.cases.items():
        for token in QTOKEN.findall(case.description):
            by_token.setdefault(token, []).append(number)
    out = []
    for e in ledger.expects:
        case = image.cases.get(e.case)
        if e.kind == "created":
            if len(by_token.get(e.token, [])) != 1:
                out.append(f"{e.via} creation {e.token}: cases {by_token.get(e.token)}")
        elif case is None:
            out.append(f"{e.via} {e.kind} of BILL-{e.case}: no such case")
        elif e.kind == "noted":
            found = sum(1 for n in case.notes if e.token in n.text)
            if found != 1:
                out.append(f"{e.via} note {e.token} on BILL-{e.case}: found {found} times")
        elif e.kind == "took":
            if case.owner != e.user:
                out.append(f"{e.via} take of BILL-{e.case} by {e.user}: owner is {case.owner}")
        elif e.kind == "resolved":
            done = case.state in (State.RESOLVED, State.CUSTOMER_INFORMED)
            if not done or (case.resolution or "").split(" ")[0] not in e.tokens:
                out.append(f"{e.via} resolve of BILL-{e.case}: {case.state} {case.resolution!r}")
        elif e.kind == "informed" and case.state != State.CUSTOMER_INFORMED:
            out.append(f"{e.via} informed of BILL-{e.case}: state {case.state}")
    for token in ledger.created:
        if len(by_token.get(token, [])) > 1:
            out.append(f"{token} made {len(by_token[token])} cases")
    for token, number in Counter(
        t
        for case in image.cases.values()
        for n in case.notes
        for t in re.findall(r"N[A-Z]\d{4}Z", n.text)
    ).items():
        if number > 1:
            out.append(f"note {token} was added {number} times")
    return out


def loop_dms(world: World, slack_from: int, teams_from: int) -> set[int]:
    """Cases named in close-the-loop DMs sent since the given positions."""
    found: set[int] = set()
    pattern = re.compile(r"(?:Reminder: )?BILL-(\d+) (?:is resolved|was resolved)")
    for message in world.slack.messages[slack_from:]:
        if message.channel.startswith("D"):
            found.update(int(m) for m in pattern.findall(message.text))
    for call in world.connector.calls[teams_from:]:
        if call.method == "POST" and call.body:
            found.update(int(m) for m in pattern.findall(call.everything()))
    return found


async def quiet(world: World, seconds: float, limit: float) -> None:
    """Wait until neither fake saw a call for ``seconds`` (at most ``limit`` in all)."""
    deadline = time.monotonic() + limit
    last = (len(world.slack.calls), len(world.connector.calls))
    since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = (len(world.slack.calls), len(world.connector.calls))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return


async def templates(world: World) -> tuple[dict[str, Any], Call]:
    """The ask modal (Slack) and the ask card (Teams) the drivers submit again and again."""
    slack = world.slack_env()
    status, _body = await slack.command("ask", user="UANA", settle=False)
    assert status == 200
    status = await world.post_activity(world.teams().say(ALICE, "ask"))
    assert 200 <= status < 300
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        forms = [c for c in world.connector.calls if c.cards and c.actions()]
        if world.slack.views and forms:
            return world.slack.last_view(), forms[-1]
        await asyncio.sleep(0.05)
    raise AssertionError("the ask modal or the ask card never came")


async def test_kill_minus_nine_cycles_lose_nothing_acknowledged(
    tmp_path: Path, figures: list[str]
) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    ledger = Ledger()
    async with open_world(tmp_path) as world:
        await world.start(START)
        view, form = await templates(world)
        drivers: list[Driver] = [
            SlackAgent("S", world, ledger, random.Random(rng.random()), view=view),
            SlackDMNotes("D", world, ledger, random.Random(rng.random())),
            TeamsAgent("T", world, ledger, random.Random(rng.random()), form=form),
            TeamsNotes("B", world, ledger, random.Random(rng.random()), form=form),
        ]
        problems: list[str] = []
        survived = 0
        queued_at_kill = 0  # acknowledged work still in the inbox when the process died
        bursts = 0
        image: StoreImage | None = None
        for cycle in range(CYCLES):
            if cycle:
                await world.start(START + cycle * CLOCK_STEP)
            stop = asyncio.Event()
            burst = rng.random() < 0.4  # else people's pace: the inbox mostly keeps up
            bursts += burst
            tasks = [asyncio.create_task(d.run(stop, burst)) for d in drivers]
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            assert world.serve is not None
            world.serve.kill()
            stop.set()
            await asyncio.gather(*tasks)
            image = await inspect_store(world.db, tmp_path / "copy")
            problems += [f"cycle {cycle}: {p}" for p in image.problems]
            problems += [f"cycle {cycle}: {p}" for p in record_shown(world, ledger)]
            problems += [f"cycle {cycle}: {p}" for p in shown_exist(ledger, image)]
            assert not problems, "\n".join(problems)
            survived += 1
            queued_at_kill += len(image.inbox)

        # The last run: three hours later, no new traffic but Slack's event retries.
        slack_from, teams_from = len(world.slack.messages), len(world.connector.calls)
        await world.start(START + CYCLES * CLOCK_STEP + timedelta(hours=3))
        lena = drivers[1]
        assert isinstance(lena, SlackDMNotes)
        while lena.pending:
            event_id, text, retry, number, token = lena.pending.pop(0)
            await lena.send(event_id, text, retry + 1, number, token)
        await quiet(world, 1.5, 30)
        assert image is not None
        waiting = {n for n, c in image.cases.items() if c.state == State.RESOLVED}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not waiting <= loop_dms(
            world, slack_from, teams_from
        ):
            await asyncio.sleep(0.1)
        await quiet(world, 1.0, 10)
        assert world.serve is not None
        code = await world.serve.stop()
        assert code == 0, world.serve.tail()
        final = await inspect_store(world.db, tmp_path / "final")
        problems += final.problems + record_shown(world, ledger) + shown_exist(ledger, final)
        problems += unfulfilled(ledger, final)
        still = {n for n, c in final.cases.items() if c.state == State.RESOLVED}
        missing = (waiting & still) - loop_dms(world, slack_from, teams_from)
        if missing:
            problems.append(f"no close-the-loop DM after the restart for {sorted(missing)}")
        if final.inbox:
            problems.append(f"inbox not empty after the last run: {list(final.inbox.values())}")
        problems += ledger.refused
        done = len(ledger.expects) - len(unfulfilled(ledger, final))
        report = (
            f"seed {SEED}: {survived} kill cycles survived ({bursts} in a burst); "
            f"requests sent {ledger.sent}, "
            f"acknowledged {ledger.acked}, done after restart {done} of {len(ledger.expects)} "
            f"promised; queued at a kill {queued_at_kill}; unanswered (process dead) "
            f"{ledger.unanswered}; cases {final.counter}; "
            f"resolved cases whose reminders resumed {len(waiting & still)}; "
            f"{time.monotonic() - started:.1f} s"
        )
        figures.append(f"crash cycles: {report}")
        assert not problems, "\n".join(problems)
        assert survived >= 20 or CYCLES < 20
        assert done == len(ledger.expects) == ledger.acked
