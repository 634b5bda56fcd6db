"""The authorization matrix, generated from :data:`bot.policy.MATRIX`, and how one cell is checked.

A *cell* is one operation (a typed command, a button click or a whole-form
submission) × one person (agent, lead, customer of tenant A, customer of
tenant B, no role) × one channel. Each cell gets a fresh case of tenant A
(Contoso) in the state the operation needs, carrying an internal note and,
once escalated, a Microsoft service request: the secrets a customer must
never see. The expected outcome is not written by hand: :func:`expected`
asks :func:`bot.policy.check` about that very case. Then the operation goes
end to end through a channel :class:`Driver` and :func:`run_cell` checks:

* allowed → no refusal, and the operation's effect happened (a form opened,
  the case moved, the list shows the case);
* forbidden → the policy's refusal text, and the store is unchanged;
* always → the answer holds nothing the person may not see (another
  tenant's name or cases, internal notes, service-request numbers).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.domain import Actor, Case, Category, Kind, Role, State
from bot.kernel.model import ActionRef, Channel, Message
from bot.policy import MATRIX, Action, Forbidden, check
from bot.storage import Store
from conversations.runtime import Runtime
from tests.harness import TENANT_A, TENANT_B

NOTE_SECRET = "INTERNAL-NOTE-7f3a"  # in every seeded case's internal note
SR_SECRET = "SRSECRET"  # prefix of every seeded service request number
DESC_A = "DESC-A-contoso"  # descriptions of tenant A's cases
DESC_B = "DESC-B-fabrikam"  # the description of tenant B's case
SEEDER = "lena"  # the lead who prepares each cell's case over the local channel


@dataclass(frozen=True, slots=True)
class Person:
    """A role of PRODUCT.md as the matrix sees it (each driver maps it to a channel identity)."""

    key: str
    role: Role
    tenant: str | None = None

    def __str__(self) -> str:
        return self.key


PEOPLE = (
    Person("agent", Role.AGENT),
    Person("lead", Role.LEAD),
    Person("customer_a", Role.CUSTOMER, TENANT_A),
    Person("customer_b", Role.CUSTOMER, TENANT_B),
    Person("none", Role.NONE),
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One command, button or form, the action the policy knows it by, and the case it needs."""

    kind: str  # command | button | form
    name: str
    action: Action
    state: State | None = None  # the seeded case's state; None: no case is needed
    text: str = ""  # a command's words, ``{case}`` filled in
    value: str | None = None  # a button's extra value
    effect: str = "ok"  # what "allowed works" means: see :func:`check_effect`
    case_bound: bool = True  # False: the case only has to exist (``list`` shows it)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


OPEN, WORK, DONE, TOLD, ESC = (
    State.OPEN,
    State.IN_PROGRESS,
    State.RESOLVED,
    State.CUSTOMER_INFORMED,
    State.ESCALATED,
)


def _command(
    name: str, action: Action, state: State | None, text: str, effect: str = "ok", **kw: Any
) -> Operation:
    return Operation("command", name, action, state, text, effect=effect, **kw)


COMMANDS = (
    _command("help", Action.HELP, None, "help"),
    _command("resources", Action.RESOURCES, None, "resources", "links"),
    _command("ask", Action.ASK, None, "ask why two charges", "form:ask"),
    _command("dispute", Action.DISPUTE, None, "dispute G000000001", "form:dispute"),
    _command("status", Action.STATUS, ESC, "status {case}", "card"),
    _command("id-alone", Action.STATUS, ESC, "{case}", "card"),
    _command("list", Action.LIST, OPEN, "list all", "listed", case_bound=False),
    _command("add", Action.ADD, WORK, "add {case} typed comment", "commented"),
    _command("add-done", Action.ADD, DONE, "add {case} after the outcome", "commented"),
    _command("withdraw", Action.WITHDRAW, OPEN, "withdraw {case} not needed", "state:cancelled"),
    _command("take", Action.TAKE, OPEN, "take {case}", "owner"),
    _command("assign", Action.ASSIGN, OPEN, "assign {case} lena", "owner:lena"),
    _command("note", Action.NOTE, WORK, "note {case} typed note", "noted"),
    # Typed without a file: allowed → asked for the file (the file itself: tests/*/…files…).
    _command("attach", Action.ATTACH, WORK, "attach {case}", "ask-file"),
    _command("escalate", Action.ESCALATE, WORK, "escalate {case} SRM-0001", "state:escalated"),
    _command("srstatus", Action.ESCALATE, ESC, "srstatus {case} open"),
    _command("resolve", Action.RESOLVE, WORK, "resolve {case} fixed", "state:resolved"),
    _command("informed", Action.INFORMED, DONE, "informed {case} email", "state:customer_informed"),
    _command("reopen", Action.REOPEN, DONE, "reopen {case} again", "state:reopened"),
    _command("cancel", Action.CANCEL, OPEN, "cancel {case} duplicate", "state:cancelled"),
    _command("close", Action.CLOSE, TOLD, "close {case}", "state:closed"),
    _command("snooze", Action.SNOOZE, DONE, "snooze {case} 1h", "snoozed"),
    _command("reminders", Action.REMINDERS, None, "reminders"),
    _command("customers", Action.CUSTOMERS, None, "customers"),
    _command("customer", Action.CUSTOMER, None, "customer Contoso"),
    _command("overdue", Action.OVERDUE, None, "overdue"),
    _command("collections", Action.OVERDUE, None, "collections"),
    _command("paid", Action.PAID, None, "paid NOSUCHINVOICE 1.00"),
    _command("suspend", Action.SUSPEND, None, "suspend Contoso"),
    _command("reactivate", Action.REACTIVATE, None, "reactivate Contoso"),
    _command("language", Action.LANGUAGE, None, "language en"),
)

BUTTONS = (
    Operation("button", "take", Action.TAKE, OPEN, effect="owner"),
    Operation("button", "assign", Action.ASSIGN, OPEN, effect="form:assign"),
    Operation("button", "note", Action.NOTE, WORK, effect="form:note"),
    Operation("button", "escalate", Action.ESCALATE, WORK, effect="form:escalate"),
    Operation("button", "resolve", Action.RESOLVE, WORK, effect="form:resolve"),
    Operation("button", "informed", Action.INFORMED, DONE, effect="form:informed"),
    Operation("button", "snooze", Action.SNOOZE, DONE, effect="form:snooze"),
    Operation("button", "reopen", Action.REOPEN, DONE, effect="form:reopen"),
    Operation("button", "cancel", Action.CANCEL, OPEN, effect="form:cancel"),
    Operation("button", "close", Action.CLOSE, TOLD, effect="state:closed"),
    Operation("button", "open_form", Action.ASK, value="ask", effect="form:ask"),
    Operation("button", "open_form", Action.DISPUTE, value="dispute", effect="form:dispute"),
    Operation("button", "suspend", Action.SUSPEND, value="Contoso"),
    Operation("button", "reactivate", Action.REACTIVATE, value="Contoso"),
    Operation("button", "overdue", Action.OVERDUE),
)

# Whole forms as a modal, a card or the web page submit them (forged by anyone who may not).
FORM_VALUES: dict[str, dict[str, str]] = {
    "ask": {"customer": "Contoso", "category": "charges", "description": "form question"},
    "dispute": {
        "customer": "Contoso",
        "invoice": "G000000001",
        "amount": "10.00",
        "currency": "EUR",
        "reason": "form dispute",
    },
    "resolve": {"resolution": "form fixed"},
    "informed": {"via": "email", "text": ""},
    "reopen": {"reason": "form again"},
    "cancel": {"reason": "form duplicate"},
    "note": {"text": "form note"},
    "add": {"text": "form comment"},
    "assign": {"user": "lena"},
    "escalate": {"severity": "moderate", "request_id": "SRM-0002"},
    "snooze": {"until": "1h"},
}
FORMS = (
    Operation("form", "ask", Action.ASK, effect="created"),
    Operation("form", "dispute", Action.DISPUTE, effect="created"),
    Operation("form", "resolve", Action.RESOLVE, WORK, effect="state:resolved"),
    Operation("form", "informed", Action.INFORMED, DONE, effect="state:customer_informed"),
    Operation("form", "reopen", Action.REOPEN, DONE, effect="state:reopened"),
    Operation("form", "cancel", Action.CANCEL, OPEN, effect="state:cancelled"),
    Operation("form", "note", Action.NOTE, WORK, effect="noted"),
    Operation("form", "add", Action.ADD, WORK, effect="commented"),
    Operation("form", "assign", Action.ASSIGN, OPEN, effect="owner:lena"),
    Operation("form", "escalate", Action.ESCALATE, WORK, effect="state:escalated"),
    Operation("form", "snooze", Action.SNOOZE, DONE, effect="snoozed"),
)

OPERATIONS = COMMANDS + BUTTONS + FORMS


@dataclass(frozen=True, slots=True)
class Cell:
    op: Operation
    who: Person

    def __str__(self) -> str:
        return f"{self.op}-{self.who}"


def cells() -> list[Cell]:
    """Every operation × every person (the same list on every channel)."""
    return [Cell(op, who) for op in OPERATIONS for who in PEOPLE]


def total_cells(channels: int = 4) -> int:
    return len(cells()) * channels


def policy_coverage() -> set[Action]:
    """The actions the operations exercise (VIEW_NOTES: by the status card's contents)."""
    return {op.action for op in OPERATIONS} | {Action.VIEW_NOTES}


# ---------------------------------------------------------------------------- answers
@dataclass(slots=True)
class Answer:
    """What the person saw: readable text, the raw payloads (for leak checks), forms opened."""

    text: str = ""
    raw: str = ""
    forms: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, text: str, raw: Any) -> None:
        self.text += "\n" + text
        self.raw += "\n" + (raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False))


class Driver(Protocol):
    """One channel, end to end: the same three gestures on each."""

    channel: str
    runtime: Runtime

    async def send(self, who: Person, text: str) -> Answer: ...

    async def click(self, who: Person, ref: ActionRef) -> Answer: ...

    async def submit(
        self, who: Person, form_id: str, values: dict[str, str], ctx: dict[str, str]
    ) -> Answer: ...


def norm(text: str) -> str:
    """Letters and digits only, lower case: the same words whatever a channel's markup."""
    import html

    text = html.unescape(re.sub(r"<[^>]+>", " ", html.unescape(text)))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def refusals() -> set[str]:
    """Every refusal text the policy can give (normalised), for "was it refused?" checks."""
    out = set()
    case = _probe_case(7)
    for role in Role:
        actor = Actor("probe", role, "matrix", TENANT_B if role == Role.CUSTOMER else None)
        for action in Action:
            for target in (None, case):
                try:
                    check(actor, action, target, customer_tenant=TENANT_A)
                except Forbidden as exc:
                    out.add(re.sub(r"bill \d+", "bill", norm(str(exc))))
    return out


def _probe_case(number: int, owner: str | None = None) -> Case:
    from datetime import UTC, datetime

    case = Case.new(
        number,
        kind=Kind.QUESTION,
        customer_id="contoso",
        category=Category.CHARGES,
        description="probe",
        actor=Actor("probe", Role.LEAD, "matrix"),
        now=datetime(2026, 11, 24, 9, tzinfo=UTC),
    )
    case.owner = owner
    return case


def expected(cell: Cell, case: Case | None) -> str | None:
    """The policy's refusal for this cell (None when allowed), from :func:`bot.policy.check`."""
    actor = Actor("matrix-probe", cell.who.role, "matrix", cell.who.tenant)
    target = case if cell.op.case_bound else None
    try:
        check(actor, cell.op.action, target, customer_tenant=TENANT_A)
    except Forbidden as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------- the store
_numbers = itertools.count(1)


async def local(runtime: Runtime, text: str) -> None:
    """A command of the seeding lead over the local channel (asserted not refused)."""
    msg = Message(Channel.LOCAL, SEEDER, f"dm:{SEEDER}", text=text, user_name=SEEDER)
    result = await runtime.handle(msg)
    kinds = [r.kind for r in result.replies]
    assert "error" not in kinds, (text, [r.text for r in result.replies])


async def seed_case(runtime: Runtime, state: State) -> Case:
    """A new case of tenant A (Contoso) in ``state``, with an internal note."""
    store = runtime.store
    customer = await runtime.desk.directory.ensure_customer("Contoso")
    tag = next(_numbers)

    def build(number: int) -> Case:
        return Case.new(
            number,
            kind=Kind.QUESTION,
            customer_id=customer.id,
            category=Category.CHARGES,
            description=f"{DESC_A} {tag}",
            actor=Actor(SEEDER, Role.LEAD, "local"),
            now=runtime.clock.now(),
        )

    case = await store.create_case(build)
    steps = [f"note {case.id} {NOTE_SECRET}"]
    if state != State.OPEN:
        steps.append(f"take {case.id}")
    if state == State.ESCALATED:
        steps.append(f"escalate {case.id} {SR_SECRET}{case.number}")
    if state in (State.RESOLVED, State.CUSTOMER_INFORMED):
        steps.append(f"resolve {case.id} done")
    if state == State.CUSTOMER_INFORMED:
        steps.append(f"informed {case.id} email")
    for step in steps:
        await local(runtime, step)
    fresh = await store.get_case(case.number)
    assert fresh is not None and fresh.state == state, (fresh, state)
    return fresh


async def seed_world(runtime: Runtime) -> None:
    """Once per server: both customers, and one case of tenant B that A must never see."""
    directory = runtime.desk.directory
    await directory.ensure_customer("Contoso")
    fabrikam = await directory.ensure_customer("Fabrikam")

    def build(number: int) -> Case:
        return Case.new(
            number,
            kind=Kind.QUESTION,
            customer_id=fabrikam.id,
            category=Category.INVOICE,
            description=DESC_B,
            actor=Actor(SEEDER, Role.LEAD, "local"),
            now=runtime.clock.now(),
        )

    case = await runtime.store.create_case(build)
    await local(runtime, f"note {case.id} {NOTE_SECRET}")


SNAPSHOT_TABLES = ("cases", "customers", "counters", "jobs", "receivables", "collections")


def snapshot(store: Store) -> dict[str, Any]:
    """What a refused request must leave alone.

    Left out: who was seen (users, identities, references), dedupe markers and
    the channel inboxes (events, inbox, Teams' outbox), and the audit records
    of refused attempts (a refused suspend is audited on purpose).
    """
    engine = store.engine
    out: dict[str, Any] = {t: dict(engine.view(t)) for t in SNAPSHOT_TABLES}
    out["conversations"] = {
        k: v
        for k, v in engine.view("conversations").items()
        if not k.startswith(("teams-outbox|", "inbox|"))
    }
    out["audit"] = {
        k: v
        for k, v in engine.view("audit").items()
        if not str(v.get("action", "")).endswith("_refused")
    }
    return out


def leaks(who: Person, answer: Answer) -> list[str]:
    """What of ``answer`` this person must never see."""
    never = [NOTE_SECRET, SR_SECRET]
    if who.role == Role.CUSTOMER:
        mine_a = who.tenant == TENANT_A
        never += ["Fabrikam", TENANT_B, DESC_B] if mine_a else ["Contoso", TENANT_A, DESC_A]
    elif who.role == Role.NONE:
        never += ["Contoso", "Fabrikam", TENANT_A, TENANT_B, DESC_A, DESC_B]
    else:
        return []
    return [s for s in never if s.lower() in answer.raw.lower()]


def check_effect(
    cell: Cell, before: Case | None, after: Case | None, answer: Answer, counter: int
) -> None:
    """The operation did what it is for (allowed cells)."""
    effect = cell.op.effect
    text = norm(answer.text)
    why = f"{cell}: {answer.text[:1500]}"
    if effect.startswith("form:"):
        assert effect[5:] in answer.forms, why
    elif effect == "links":
        assert "https://" in answer.raw, why
    elif effect == "card":
        assert before is not None
        assert norm(before.id) in text and norm(before.description) in text, why
        staff = Action.VIEW_NOTES in MATRIX[cell.who.role]
        assert (NOTE_SECRET.lower() in answer.raw.lower()) is staff, why
        assert (SR_SECRET.lower() in answer.raw.lower()) is staff, why
    elif effect == "listed":
        assert before is not None
        sees = cell.who.role != Role.CUSTOMER or cell.who.tenant == TENANT_A
        assert (norm(before.id) + " " in text + " ") is sees, why
    elif effect.startswith("owner"):
        assert after is not None and after.owner, why
        if effect == "owner:lena":
            assert after.owner == "lena", why
    elif effect == "noted":
        assert before is not None and after is not None
        assert len(after.notes) == len(before.notes) + 1, why
    elif effect == "commented":
        assert before is not None and after is not None
        assert len(after.comments) == len(before.comments) + 1, why
    elif effect == "created":
        assert counter > 0, why
        assert "bill" in text, why
    elif effect == "ask-file":
        assert "send the file with it" in text, why
        assert before is not None and after is not None and after.attachments == [], why
    elif effect == "snoozed":
        assert after is not None and after.audit[-1].action == "snoozed", why
    elif effect.startswith("state:"):
        assert after is not None and after.state.value == effect[6:], why
    else:
        assert answer.text.strip(), why


REFUSALS: set[str] = set()


def was_refused(answer: Answer) -> bool:
    if not REFUSALS:
        REFUSALS.update(refusals())
    text = re.sub(r"bill \d+", "bill", norm(answer.text))
    return any(r in text for r in REFUSALS)


def case_counter(store: Store) -> int:
    doc = store.engine.peek("counters", "case") or {}
    return int(doc.get("value", 0) or 0)


async def settle_jobs(runtime: Runtime) -> None:
    """The reminders the seeding made due go out now, not in the middle of a cell."""
    for _ in range(200):
        await runtime.scheduler.tick()
        jobs = runtime.store.engine.view("jobs").values()
        if not any(job.get("claimed_until") for job in jobs):
            return
        await asyncio.sleep(0.01)  # the background scheduler is sending one


async def run_cell(driver: Driver, cell: Cell) -> None:
    """One cell, end to end through ``driver`` (see the module docstring)."""
    runtime = driver.runtime
    store = runtime.store
    op = cell.op
    case = await seed_case(runtime, op.state) if op.state is not None else None
    await settle_jobs(runtime)
    refusal = expected(cell, case)
    before = snapshot(store)
    count_before = case_counter(store)
    if op.kind == "command":
        answer = await driver.send(cell.who, op.text.format(case=case.id if case else ""))
    elif op.kind == "button":
        ref = ActionRef(op.name, case.id if case else None, case.stage if case else None, op.value)
        answer = await driver.click(cell.who, ref)
    else:
        ctx = {"case": case.id, "stage": str(case.stage)} if case else {}
        answer = await driver.submit(cell.who, op.name, dict(FORM_VALUES[op.name]), ctx)
    after_case = await store.get_case(case.number) if case else None
    found = leaks(cell.who, answer)
    assert not found, f"{cell} on {driver.channel} leaked {found}:\n{answer.raw[:3000]}"
    if refusal is not None:
        assert norm(refusal) in norm(answer.text), (
            f"{cell} on {driver.channel}: expected the refusal {refusal!r}, got:\n{answer.text}"
        )
        after = snapshot(store)
        changed = {
            t: {k: (before[t].get(k), after[t].get(k)) for k in set(before[t]) | set(after[t])
                if before[t].get(k) != after[t].get(k)}
            for t in before
            if before[t] != after[t]
        }  # fmt: skip
        assert not changed, f"{cell} on {driver.channel} was refused but changed {changed}"
        return
    assert not was_refused(answer), f"{cell} on {driver.channel} was refused:\n{answer.text}"
    check_effect(cell, case, after_case, answer, case_counter(store) - count_before)


def ids(cell: Cell) -> str:
    return str(cell)
