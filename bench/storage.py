"""Storage benchmark: the durable TinyDB engine at 1,000 / 10,000 / 100,000 cases.

Run ``.venv/bin/python bench/storage.py [--sizes 1000,10000,100000] [--ops create,...]``.

For each size a store is bulk-built in a temp dir (files written directly in the
engine's format: archive + index for the finished cases, a TinyDB snapshot for
the rest), with 1% of the cases live. The shape stays what one desk sees as its
history grows:

* every case has a customer, most an owner, an audit trail of 2-7 entries, a
  fifth are disputes with exact money;
* live cases are spread over agents so that each agent owns about 10 (a person's
  workload does not grow with the archive); the number of agents grows instead;
* every live case has a reminder job, due within the next week; 5 are due now
  (the scheduler polls often, so few are due at any one poll).

Then a fresh process opens the store with :class:`TinyDBEngine` (fsync on) and
times, one operation at a time:

``create``      ``Store.create_case`` (counter + case, one durable commit)
``update``      read a live case, one transition with its audit entry, ``save_case``
``read``        ``get_case`` of a random number over the whole range (archive included)
``list_owner``  one agent's live cases (``Store.list_cases(owner=...)``)
``due_jobs``    the reminders due now (``Store.due_jobs``)

and, only when named in ``--ops`` (no target: they grow with the live cases by design),
``list_open`` (the desk's default ``list``: every live case through a predicate,
first 20) and ``counts`` (``Store.case_counts``, the health endpoint's numbers),

and reports p50/p99/max in milliseconds, the 100,000/1,000 ratio of each p50,
and the measuring process's peak RSS (``resource.getrusage``).

Two more figures per size (``--no-sweep`` / ``--no-serve`` leave them out):

* the **scheduler sweep**: every live case's reminder is made due (1,000 at
  100,000 cases), then one real ``Scheduler.tick`` of the real ``Runtime``
  (flows, the case card of each DM) runs them, with a recording deliverer
  instead of Slack; target <= 1 s with 1,000 due;
* the **peak RSS of a real ``billing-bot serve``** subprocess on the store as
  built, after it answered ``/healthz`` and 300 local-chat commands (status of
  random cases, archive included, and lists); target <= 300 MB at 100,000 cases.

The builder (:func:`build_store`) is also what ``bench/seed_store.py`` uses for
the load benchmark's store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.domain import (  # noqa: E402
    Actor,
    Case,
    Category,
    Customer,
    Dispute,
    InformedVia,
    Kind,
    Outcome,
    Role,
    State,
    User,
)
from bot.money import Money  # noqa: E402
from bot.storage import Op, Store, TinyDBEngine, open_store  # noqa: E402
from bot.storage.tinydb_engine import SCHEMA_VERSION  # noqa: E402

OPS = ("create", "update", "read", "list_owner", "due_jobs")
EXTRA_OPS = ("list_open", "counts")  # not in the targets; opt in with --ops
WRITES = ("create", "update")
T0 = datetime(2025, 11, 24, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=365)
LIVE_PER_AGENT = 10
DUE_NOW = 5
PARTNER_TEAM = "TPARTNER"  # the partner's Slack workspace
PARTNER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the partner's Teams tenant
LEAD_ID = "u-lead"
LEAD_SLACK = "ULEAD00"
DESCRIPTIONS = [
    "Why is the invoice for October higher than September? We added three seats mid-month.",
    "We were charged twice for Microsoft 365 E3 on the last invoice.",
    "Please explain the Azure plan charges for the sandbox subscription.",
    "The credit note from August is not on our statement.",
    "Tax on the invoice is wrong: we are VAT-registered in Ireland.",
]


# ---- bulk build --------------------------------------------------------------


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def agent_id(i: int) -> str:
    return f"u-agent{i}"


def build_case(
    number: int, n: int, rng: random.Random, live: bool, agents: int, t0: datetime = T0
) -> Case:
    created = t0 + timedelta(seconds=int(number * (365 * 86400 - 3600) / n))
    customers = max(20, n // 200)
    author = Actor(agent_id(rng.randrange(agents)), Role.AGENT, "slack")
    dispute = None
    if rng.random() < 0.2:
        amount = Money(Decimal(rng.randrange(100, 5_000_000)) / 100, "EUR")
        dispute = Dispute(f"INV-{number:07d}", amount, "charged for seats we removed")
    case = Case.new(
        number,
        kind=Kind.DISPUTE if dispute else Kind.QUESTION,
        customer_id=f"customer {rng.randrange(customers)}",
        category=Category.CHARGES if dispute else rng.choice(list(Category)),
        description=rng.choice(DESCRIPTIONS),
        actor=author,
        now=created,
        invoice=dispute.invoice if dispute else None,
        dispute=dispute,
    )
    step = timedelta(hours=3)
    at = created
    if not live and rng.random() < 0.1:
        case.cancel("duplicate", author, at + step)
        return case
    owner = agent_id(number % agents) if live else agent_id(rng.randrange(agents))
    case.set_owner(owner, author, at := at + step)
    worker = Actor(owner, Role.AGENT, "teams")
    if live and rng.random() < 0.3:
        return case  # open, assigned
    case.start(worker, at := at + step)
    case.add_note("Checked Partner Center: proration for seats added mid-month.", worker, at)
    if live and rng.random() < 0.5:
        return case
    if case.dispute is not None:
        credit = Money(case.dispute.amount.amount / 2, "EUR")
        case.resolve(
            "Microsoft granted a partial credit",
            worker,
            at := at + step,
            outcome=Outcome.PARTIAL_CREDIT,
            credited=credit,
        )
    else:
        case.resolve("Explained the charges", worker, at := at + step)
    if live:
        return case
    case.mark_informed(InformedVia.EMAIL, "Sent the breakdown", worker, at := at + step)
    case.close(worker, at + step)
    return case


def slack_user(i: int) -> str:
    """The Slack user id of agent ``i`` (in the partner's workspace ``PARTNER_TEAM``)."""
    return f"U{i:06d}"


def teams_aad(i: int) -> str:
    """The Teams (Entra ID) object id of agent ``i`` (in the tenant ``PARTNER_TENANT``)."""
    return f"00000000-0000-4000-8000-{i:012d}"


def teams_reference(i: int, service_url: str) -> dict[str, Any]:
    """What the Teams channel stores to DM agent ``i`` (a personal chat's reference)."""
    member = {"id": f"29:1agent{i}", "name": f"Agent {i}", "aadObjectId": teams_aad(i)}
    bot = {"id": "28:bench-bot", "name": "Billing Desk"}
    return {
        "member": {"id": member["id"], "name": member["name"], "aad": teams_aad(i)},
        "bot": bot,
        "tenant": PARTNER_TENANT,
        "service_url": service_url,
        "dm": {
            "activityId": None,
            "user": member,
            "bot": bot,
            "conversation": {
                "id": f"a:1dm-agent{i}",
                "conversationType": "personal",
                "tenantId": PARTNER_TENANT,
            },
            "channelId": "msteams",
            "locale": "en-US",
            "serviceUrl": service_url,
        },
    }


def job_for(case_doc: dict[str, Any], due: datetime) -> tuple[str, dict[str, Any]]:
    """The scheduler's job of a live case: close-the-loop when resolved, else the watch."""
    number = int(case_doc["number"])
    if case_doc["state"] == State.RESOLVED.value:
        doc = {"type": "loop", "case": number, "due": due.isoformat(), "count": 0}
        return f"loop:{number}", {**doc, "escalated": False}
    return f"watch:{number}", {"type": "watch", "case": number, "due": due.isoformat()}


def build_store(
    directory: Path,
    n: int,
    seed: int,
    *,
    now: datetime = NOW,
    due_now: int = DUE_NOW,
    service_url: str | None = None,
) -> Path:
    """Write a store of ``n`` cases straight into the engine's file format.

    ``now`` is the store's present (its year of history ends there); ``due_now``
    reminders are due at ``now``, every other live case has one due later in the
    week. With ``service_url`` each agent also has a Teams reference there.
    """
    rng = random.Random(seed)
    t0 = now - timedelta(days=365)
    live_count = max(1, n // 100)
    agents = max(1, live_count // LIVE_PER_AGENT)
    # Live cases are mostly recent ones, a few old ones linger.
    recent = range(max(1, n - n // 10), n + 1)
    live_numbers = set(rng.sample(recent, min(len(recent), live_count * 4 // 5)))
    while len(live_numbers) < live_count:
        live_numbers.add(rng.randint(1, n))
    path = directory / "bench.json"
    engine = TinyDBEngine(path)  # for the file names only; never opened here
    tables: dict[str, dict[str, Any]] = {
        "counters": {"case": {"value": n, "version": n}},
        "cases": {},
        "customers": {},
        "users": {},
        "identities": {},
        "conversations": {},
        "references": {},
        "jobs": {},
        "events": {},
        "inbox": {},
        "audit": {},
    }
    with engine.archive_path.open("wb") as archive, engine.index_path.open("wb") as index:
        offset = 0
        for number in range(1, n + 1):
            live = number in live_numbers
            doc = build_case(number, n, rng, live, agents, t0).to_doc()
            doc["version"] = len(doc["audit"])
            if live:
                tables["cases"][str(number)] = doc
                continue
            line = dumps(doc) + b"\n"
            archive.write(line)
            index.write(TinyDBEngine._index_line(doc, offset, len(line)))
            offset += len(line)
    for i in range(max(20, n // 200)):
        c = Customer(f"customer {i}", f"Customer {i}", f"tenant-{i}", agent_id(i % agents), t0)
        tables["customers"][c.id] = c.to_doc()
    lead = User(LEAD_ID, "Lena Lead", Role.LEAD, identities={"slack": LEAD_SLACK})
    tables["users"][lead.id] = lead.to_doc()
    tables["identities"][f"slack:{LEAD_SLACK}"] = {"user_id": lead.id}
    for i in range(agents):
        identities = {"slack": slack_user(i), "teams": teams_aad(i)}
        u = User(agent_id(i), f"Agent {i}", Role.AGENT, identities=identities)
        tables["users"][u.id] = u.to_doc()
        for channel, external in identities.items():
            tables["identities"][f"{channel}:{external}"] = {"user_id": u.id}
        slack_ref = {"team": PARTNER_TEAM, "user": slack_user(i), "channel": f"D{i:06d}"}
        tables["references"][f"{u.id}|slack"] = slack_ref
        if service_url:
            tables["references"][f"{u.id}|teams"] = teams_reference(i, service_url)
    for k, number in enumerate(sorted(live_numbers)):
        due = now - timedelta(minutes=k + 1) if k < due_now else now + timedelta(hours=1 + k % 160)
        key, job = job_for(tables["cases"][str(number)], due)
        tables["jobs"][key] = job
    for i in range(200):
        tables["events"][f"slack:Ev{i}"] = {"expires": (now + timedelta(hours=1)).isoformat()}
    snapshot: dict[str, Any] = {"meta": {"1": {"schema_version": SCHEMA_VERSION, "seq": 0}}}
    for name, docs in tables.items():
        snapshot[name] = {str(i): {**d, "_key": k} for i, (k, d) in enumerate(docs.items(), 1)}
    path.write_bytes(dumps(snapshot))
    # A store that has been around is on disk, not in dirty pages the first fsync must flush.
    for f in (path, engine.archive_path, engine.index_path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


# ---- measuring (in a fresh process) ------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(fn: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter_ns()
        await fn()
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def advance(case: Case, actor: Actor) -> None:
    """One transition (with its audit entry) that keeps the case live."""
    if case.state in (State.OPEN, State.REOPENED):
        case.start(actor, NOW)
    elif case.state in (State.IN_PROGRESS, State.ESCALATED):
        if case.dispute is not None:
            case.resolve("denied", actor, NOW, outcome=Outcome.DENIED)
        else:
            case.resolve("explained", actor, NOW)
    elif case.state == State.RESOLVED:
        case.mark_informed(InformedVia.CHAT, "told them", actor, NOW)
    else:  # customer informed (or closed): back to work
        case.reopen("customer wrote back", actor, NOW)


async def scheduler_sweep(store: Store, db: str) -> dict[str, Any]:
    """Make every live case's reminder due, then time one real ``Scheduler.tick``.

    The runtime is the real one (flows, scheduler, ``render_job`` with the case
    card); only the Slack deliverer is a recorder, so no network is involved.
    The store's clock stands still at ``NOW``: a Tuesday 09:00 UTC, inside every
    agent's working hours.
    """
    from bot.app.wiring import build_runtime
    from bot.clock import FakeClock
    from bot.config import Settings
    from bot.domain import User as DeskUser
    from bot.kernel.scheduler import iso

    due_at = NOW - timedelta(minutes=1)
    ops = [
        Op("jobs", key, {**job, "due": iso(due_at - timedelta(seconds=i))})
        for i, (key, job) in enumerate(await store.jobs())
        if job.get("type") in ("loop", "watch")
    ]
    await store.commit(ops)
    due = len(await store.due_jobs(NOW))
    runtime = build_runtime(Settings(db_path=db, slack_team_id=PARTNER_TEAM), store, FakeClock(NOW))
    delivered: list[tuple[str, int]] = []

    async def record(user: DeskUser, replies: list[Any]) -> bool:
        delivered.append((user.id, len(replies)))
        return True

    runtime.deliverers["slack"] = record
    started = time.perf_counter()
    sent = await runtime.scheduler.tick()
    seconds = time.perf_counter() - started
    return {
        "due": due,
        "sent": sent,
        "delivered": len(delivered),
        "still_due": len(await store.due_jobs(NOW)),
        "seconds": seconds,
    }


async def measure(
    db: str,
    n: int,
    ops: list[str],
    samples: int,
    seed: int,
    sweep_on: bool = True,
) -> dict[str, Any]:
    """Open the store at ``db`` (a TinyDB path or a ``postgresql://`` URL) and time ``ops``."""
    rng = random.Random(seed)
    started = time.perf_counter()
    store = open_store(db)
    await store.open()
    open_s = time.perf_counter() - started
    live = await store.live_cases()
    live_count = len(live)
    live_numbers = [c.number for c in live]
    owners = sorted({c.owner for c in live if c.owner})
    actor = Actor("u-agent0", Role.AGENT, "slack")
    results: dict[str, list[float]] = {}

    async def read() -> None:
        await store.get_case(rng.randint(1, n))

    async def list_owner() -> None:
        await store.list_cases(owner=rng.choice(owners))

    async def list_open() -> None:
        await store.list_cases(predicate=lambda c: c.state != State.CUSTOMER_INFORMED, limit=20)

    async def counts() -> None:
        store.case_counts()

    async def due_jobs() -> None:
        await store.due_jobs(NOW)

    async def update() -> None:
        case = await store.get_case(rng.choice(live_numbers))
        assert case is not None
        advance(case, actor)
        await store.save_case(case)

    def build(number: int) -> Case:
        return Case.new(
            number,
            kind=Kind.QUESTION,
            customer_id="customer 1",
            category=Category.INVOICE,
            description=DESCRIPTIONS[0],
            actor=actor,
            now=NOW,
        )

    async def create() -> None:
        await store.create_case(build)

    funcs = {
        "read": read,
        "list_owner": list_owner,
        "list_open": list_open,
        "counts": counts,
        "due_jobs": due_jobs,
        "update": update,
        "create": create,
    }
    # Reads first, on the store as built; then the sweep; then creates; then updates,
    # spread over every live case (the new ones too: updating 10 cases 2,000 times would
    # time audit growth).
    order = {"create": 1, "update": 2}
    swept: dict[str, Any] | None = None
    for op in sorted(ops, key=lambda o: order.get(o, 0)):
        if op in WRITES and sweep_on and swept is None:
            swept = await scheduler_sweep(store, db)
        if op == "update":
            live_numbers[:] = [c.number for c in await store.live_cases()]
        await timed(funcs[op], min(20, samples))  # warm-up
        results[op] = await timed(funcs[op], samples)
    if sweep_on and swept is None:
        swept = await scheduler_sweep(store, db)
    compaction = None
    if isinstance(store.engine, TinyDBEngine) and any(o in WRITES for o in ops):
        compaction = await compaction_pause(store, create)
    await store.close()
    peak_kb = peak_rss_kb()
    return {
        "size": n,
        "open_s": open_s,
        "live": live_count,
        "agents": len(owners),
        "peak_rss_mb": peak_kb / 1024,
        "sweep": swept,
        "compaction": compaction,
        "ops": {
            op: {
                "p50": percentile(v, 0.50),
                "p99": percentile(v, 0.99),
                "max": max(v),
            }
            for op, v in results.items()
        },
    }


async def compaction_pause(store: Store, create: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """How long a write waits behind a compaction, made due at once.

    Compactions are due by journal bytes (16 MiB or twice the snapshot), so the
    timed writes above rarely meet one; this forces one. The first create's
    journal write makes it due; the second create waits until it is done.
    """
    engine = store.engine
    assert isinstance(engine, TinyDBEngine)
    limit = engine.compact_bytes
    engine.compact_bytes = 0
    try:
        await create()
        began = time.perf_counter()
        await create()
        waited = time.perf_counter() - began
    finally:
        engine.compact_bytes = limit
    return {"ms": waited * 1000, "snapshot_mb": engine.path.stat().st_size / 1e6}


def peak_rss_kb() -> int:
    """This process's peak RSS: ``VmHWM`` (its own memory since ``exec``; ``ru_maxrss`` keeps
    the high-water mark of the process it was forked from, here the driver's)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def store_copy(source: Path, target: str) -> dict[str, Any]:
    """``billing-bot store copy --from source --to target`` as a process: seconds, peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "store", "copy", "--from", str(source), "--to", target],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak_kb = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:  # VmHWM only grows: its last reading is the peak, near enough
        with contextlib.suppress(OSError, ValueError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = int(line.split()[1])
        time.sleep(0.2)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"store copy to {target} failed:\n{err[-3000:]}")
    return {"copy_s": seconds, "copy_rss_mb": peak_kb / 1024, "copy_output": out.strip()[-300:]}


# ---- driver ------------------------------------------------------------------


def serve_peak_rss(db: str, directory: Path, n: int, requests: int = 300) -> dict[str, Any]:
    """Peak RSS of a real ``billing-bot serve`` holding the store ``db`` (path or URL).

    The serve runs with no config file and no channel credentials (its own
    defaults), answers ``/healthz``, then ``requests`` local-chat commands
    (``status BILL-n`` over the whole range, archive included, ``list mine``,
    ``list``) one after another; then its ``VmHWM`` is read and it is stopped.
    """
    from bench.serveproc import ServerProcess, free_port, serve_command

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_"))}
    env.update(BOT_DB=db, HOST="127.0.0.1", PORT=str(port), BOT_CONFIG="")
    rng = random.Random(n)
    server = ServerProcess(
        "serve",
        serve_command(),
        port=port,
        health_path="/healthz",
        env=env,
        cwd=directory,
        log=directory / ("serve-pg.log" if db.startswith("postgres") else "serve.log"),
    )
    with server:
        ready_s = server.ready_s
        texts = [f"status BILL-{rng.randint(1, n)}" for _ in range(requests)]
        texts[::3] = ["list mine"] * len(texts[::3])
        texts[1::10] = ["list"] * len(texts[1::10])
        for text in texts:
            body = json.dumps({"user": agent_id(0), "text": text}).encode()
            req = urllib.request.Request(
                server.url + "/local/messages",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
        with urllib.request.urlopen(server.url + "/healthz", timeout=30) as resp:
            health = json.loads(resp.read())
        peak = server.peak_rss_mb()
        rss = server.rss_mb()
    return {
        "ready_s": ready_s,
        "requests": requests,
        "cases": health["cases"]["total"],
        "peak_rss_mb": peak,
        "rss_mb": rss,
    }


def measure_in_subprocess(
    db: str, n: int, ops: list[str], samples: int, seed: int, sweep: bool
) -> dict[str, Any]:
    """:func:`measure` in a fresh process (its peak RSS is the store's, not the builder's)."""
    cmd = [sys.executable, __file__, "--measure", db, "--sizes", str(n)]
    cmd += ["--ops", ",".join(ops), "--samples", str(samples), "--seed", str(seed)]
    if not sweep:
        cmd.append("--no-sweep")
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measuring {db} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The first round's figures (the store as built), each operation's from its median round
    (the round whose p50 is the median of the rounds' p50s)."""
    out = dict(rounds[0])
    out["rounds"] = len(rounds)
    out["ops"] = {}
    for op in rounds[0]["ops"]:
        stats = sorted((r["ops"][op] for r in rounds), key=lambda s: s["p50"])
        out["ops"][op] = {**stats[(len(stats) - 1) // 2], "rounds_p50": [s["p50"] for s in stats]}
    return out


@dataclass
class Built:
    """A size's stores, ready to measure: TinyDB files, and their copy in PostgreSQL."""

    n: int
    directory: Path
    path: Path
    build_s: float
    files_mb: float
    serve: dict[str, Any] | None = None
    pg_url: str | None = None
    pg_info: dict[str, Any] = field(default_factory=dict)
    sweep_path: Path | None = None  # copies of the stores as built, for the sweep
    sweep_url: str | None = None


def build_size(n: int, seed: int, serve: bool, sweep: bool, pg: PgServer | None) -> Built:
    """Build a store of ``n`` cases; with ``pg`` also copy it into a fresh database.

    The copy is ``billing-bot store copy`` itself (a process, timed, its peak RSS read); then
    the database is vacuumed, analyzed and checkpointed (a store that has been around, as the
    TinyDB files are fsynced after the build). Each store's ``serve`` peak RSS
    is taken on the store as built, and the sweep runs on a copy of it (each round's reads
    are then of the store as built plus the rounds' own writes).
    """
    directory = Path(tempfile.mkdtemp(prefix=f"bench-storage-{n}-"))
    t = time.perf_counter()
    path = build_store(directory, n, seed)
    built = Built(n, directory, path, time.perf_counter() - t, 0.0)
    built.files_mb = sum(f.stat().st_size for f in directory.iterdir()) / 1e6
    if pg is not None or sweep:
        pristine = directory / "as-built"  # what the measuring rounds do not touch
        pristine.mkdir()
        for f in list(directory.iterdir()):
            if f.is_file():
                shutil.copy2(f, pristine / f.name)
        built.sweep_path = pristine / path.name
    if pg is not None:
        assert built.sweep_path is not None
        built.pg_url = pg.create_database(f"bench_{n}")
        copied = store_copy(built.sweep_path, built.pg_url)
        pg.settle(built.pg_url)
        if sweep:
            built.sweep_url = pg.create_database(f"bench_{n}_sweep", template=f"bench_{n}")
        built.pg_info = {
            **copied,
            "files_mb": pg.database_mb(built.pg_url),
            "server_version": pg.version(),
            "serve": serve_peak_rss(built.pg_url, directory, n) if serve else None,
        }
    built.serve = serve_peak_rss(str(path), directory, n) if serve else None
    return built


def run_sizes(
    sizes: list[int],
    ops: list[str],
    samples: int,
    seed: int,
    keep: bool,
    sweep: bool,
    serve: bool,
    *,
    rounds: int = 1,
    pg: PgServer | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Build every size, then measure: ``rounds`` rounds, each a fresh process per store,
    interleaved over sizes and engines (a slow minute of the shared machine hits a round
    of each, not one size); every operation is judged by its median round."""
    built: list[Built] = []
    try:
        for n in sizes:
            print(f"building {n:,} cases ...", file=sys.stderr, flush=True)
            built.append(build_size(n, seed, serve, sweep, pg))
        tiny: dict[int, list[dict[str, Any]]] = {b.n: [] for b in built}
        on_pg: dict[int, list[dict[str, Any]]] = {b.n: [] for b in built}
        for r in range(rounds):
            for b in built:
                print(f"round {r + 1}: measuring {b.n:,} cases ...", file=sys.stderr, flush=True)
                tiny[b.n].append(measure_in_subprocess(str(b.path), b.n, ops, samples, seed, False))
                if b.pg_url is not None:
                    on_pg[b.n].append(
                        measure_in_subprocess(b.pg_url, b.n, ops, samples, seed, False)
                    )
        results, pg_results = [], []
        for b in built:
            result = median_round(tiny[b.n])
            result.update(build_s=b.build_s, files_mb=b.files_mb, serve=b.serve)
            if b.sweep_path is not None and sweep:
                print(f"sweep at {b.n:,} cases ...", file=sys.stderr, flush=True)
                swept = measure_in_subprocess(str(b.sweep_path), b.n, [], samples, seed, True)
                result["sweep"] = swept["sweep"]
            results.append(result)
            if on_pg[b.n]:
                pg_result = {**median_round(on_pg[b.n]), **b.pg_info}
                if b.sweep_url is not None:
                    swept = measure_in_subprocess(b.sweep_url, b.n, [], samples, seed, True)
                    pg_result["sweep"] = swept["sweep"]
                pg_results.append(pg_result)
        return results, pg_results
    finally:
        for b in built:
            if keep:
                print(f"(kept {b.directory} {b.pg_url or ''})", file=sys.stderr)
                continue
            for url in (b.pg_url, b.sweep_url):
                if pg is not None and url is not None:
                    pg.drop_database(url)
            shutil.rmtree(b.directory, ignore_errors=True)


class PgServer:
    """The PostgreSQL server the benchmark's databases go to (one fresh database per size)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _with(self, database: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + database))

    def _admin(self, sql: str) -> Any:
        import asyncpg

        async def run() -> Any:
            conn = await asyncpg.connect(self._with("postgres"))
            try:
                return await conn.fetchval(sql)
            finally:
                await conn.close()

        return asyncio.run(run())

    def create_database(self, name: str, template: str | None = None) -> str:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self._with(name)

    def drop_database(self, url: str) -> None:
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def settle(self, url: str) -> None:
        """VACUUM ANALYZE and CHECKPOINT the database at ``url`` (as if it had been around)."""
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("VACUUM ANALYZE")
                await conn.execute("CHECKPOINT")
            finally:
                await conn.close()

        asyncio.run(run())

    def version(self) -> str:
        return str(self._admin("SHOW server_version"))

    def database_mb(self, url: str) -> float:
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        return float(self._admin(f"SELECT pg_database_size('{name}')")) / 1e6


@contextlib.contextmanager
def pg_server(url: str | None) -> Iterator[PgServer]:
    """The server at ``url``, else a throw-away cluster (tests/pg/cluster.py) with fsync on."""
    if url:
        yield PgServer(url)
        return
    from tests.pg.cluster import running_cluster

    with running_cluster(durable=True) as started:
        yield PgServer(started)


def report(results: list[dict[str, Any]], ops: list[str]) -> bool:
    print(
        f"machine: {os.cpu_count()} cpus, Python {platform.python_version()}, {platform.system()}"
    )
    if results[0].get("rounds", 1) > 1:
        print(
            f"{results[0]['rounds']} rounds, interleaved over sizes and engines; each operation's "
            "figures are its median round's"
        )
    print()
    print("| cases | live | files MB | open s | peak RSS MB |")
    print("|------:|-----:|---------:|-------:|------------:|")
    for r in results:
        print(
            f"| {r['size']:,} | {r['live']:,} | {r['files_mb']:.0f} | {r['open_s']:.2f} "
            f"| {r['peak_rss_mb']:.0f} |"
        )
    print()
    print("| operation | cases | p50 ms | p99 ms | max ms |")
    print("|-----------|------:|-------:|-------:|-------:|")
    for op in ops:
        for r in results:
            s = r["ops"][op]
            print(f"| {op} | {r['size']:,} | {s['p50']:.3f} | {s['p99']:.3f} | {s['max']:.2f} |")
    ok = True
    small, big = results[0], results[-1]
    if len(results) > 1:
        print()
        print(f"| operation | p50 ratio {big['size']:,} / {small['size']:,} | within 2x |")
        print("|-----------|------:|:---:|")
        for op in ops:
            ratio = big["ops"][op]["p50"] / small["ops"][op]["p50"]
            met = ratio <= 2.0
            if op in OPS:
                ok &= met
            verdict = ("yes" if met else "NO") if op in OPS else "(no target)"
            print(f"| {op} | {ratio:.2f} | {verdict} |")
    print()
    for op in (o for o in ops if o in WRITES):
        for r in results:
            s = r["ops"][op]
            met = s["p50"] <= 5 and s["p99"] <= 25
            ok &= met
            print(
                f"durable {op} at {r['size']:,}: p50 {s['p50']:.2f} ms (<= 5), "
                f"p99 {s['p99']:.2f} ms (<= 25): {'met' if met else 'MISSED'}"
            )
    compacted = [r for r in results if r.get("compaction")]
    if compacted:
        print()
        print("A write behind a compaction (the live data rewritten as a new snapshot, fsynced):")
        print()
        print("| cases | snapshot MB | write waits ms |")
        print("|------:|------------:|---------------:|")
        for r in compacted:
            c = r["compaction"]
            print(f"| {r['size']:,} | {c['snapshot_mb']:.1f} | {c['ms']:.1f} |")
    swept = [r for r in results if r.get("sweep")]
    if swept:
        print()
        print("Scheduler sweep (every live case's reminder due, one real Scheduler.tick):")
        print()
        print("| cases | due | DMs sent | still due | sweep s |")
        print("|------:|----:|---------:|----------:|--------:|")
        _sweep_rows(swept)
        for r in swept:
            w = r["sweep"]
            if w["due"] >= 1000:
                met = w["seconds"] <= 1.0 and w["still_due"] == 0
                ok &= met
                print(
                    f"sweep of {w['due']:,} due at {r['size']:,} cases: {w['seconds']:.3f} s "
                    f"(<= 1 s): {'met' if met else 'MISSED'}"
                )
    served = [r for r in results if r.get("serve")]
    if served:
        print()
        print("`billing-bot serve` holding the store (local-chat commands, then VmHWM):")
        print()
        print("| cases | ready s | requests | peak RSS MB | RSS after MB |")
        print("|------:|--------:|---------:|------------:|-------------:|")
        _serve_rows(served)
        for r in served:
            v = r["serve"]
            if r["size"] >= 100_000:
                met = v["peak_rss_mb"] <= 300
                ok &= met
                print(
                    f"serve peak RSS at {r['size']:,} cases: {v['peak_rss_mb']:.0f} MB "
                    f"(<= 300): {'met' if met else 'MISSED'}"
                )
    return ok


def report_pg(tiny: list[dict[str, Any]], pg: list[dict[str, Any]], ops: list[str]) -> bool:
    """PostgreSQL beside TinyDB: the same stores, the same operations, the same run."""
    print()
    print("## PostgreSQL beside TinyDB")
    print()
    print(f"PostgreSQL {pg[0].get('server_version', '?')}; the stores above, copied there by")
    print("`billing-bot store copy`, then measured the same way.")
    print()
    print("| cases | store copy s | copy peak RSS MB | database MB | open s | peak RSS MB |")
    print("|------:|-------------:|-----------------:|------------:|-------:|------------:|")
    for r in pg:
        print(
            f"| {r['size']:,} | {r['copy_s']:.1f} | {r['copy_rss_mb']:.0f} | {r['files_mb']:.0f} "
            f"| {r['open_s']:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    print()
    print(
        "| operation | cases | TinyDB p50 ms | p99 ms | PostgreSQL p50 ms | p99 ms "
        "| PostgreSQL p50 of each round |"
    )
    print("|-----------|------:|-------:|-------:|-------:|-------:|-------|")
    for op in ops:
        for t, r in zip(tiny, pg, strict=True):
            a, b = t["ops"][op], r["ops"][op]
            each = " / ".join(f"{x:.3f}" for x in b.get("rounds_p50", [b["p50"]]))
            print(
                f"| {op} | {r['size']:,} | {a['p50']:.3f} | {a['p99']:.3f} "
                f"| {b['p50']:.3f} | {b['p99']:.3f} | {each} |"
            )
    ok = True
    if len(pg) > 1:
        small, big = pg[0], pg[-1]
        print()
        print(
            f"| operation | TinyDB p50 ratio | PostgreSQL p50 ratio {big['size']:,} / "
            f"{small['size']:,} | PostgreSQL within 2x |"
        )
        print("|-----------|------:|------:|:---:|")
        for op in ops:
            t_ratio = tiny[-1]["ops"][op]["p50"] / tiny[0]["ops"][op]["p50"]
            ratio = big["ops"][op]["p50"] / small["ops"][op]["p50"]
            met = ratio <= 2.0
            if op in OPS:
                ok &= met
            verdict = ("yes" if met else "NO") if op in OPS else "(no target)"
            print(f"| {op} | {t_ratio:.2f} | {ratio:.2f} | {verdict} |")
    swept = [r for r in pg if r.get("sweep")]
    if swept:
        print()
        print("| cases | sweep: due | DMs sent | still due | sweep s |")
        print("|------:|----:|---------:|----------:|--------:|")
        _sweep_rows(swept)
    served = [r for r in pg if r.get("serve")]
    if served:
        print()
        print("| cases | serve ready s | requests | peak RSS MB | RSS after MB |")
        print("|------:|--------:|---------:|------------:|-------------:|")
        _serve_rows(served)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="case counts, comma-separated")
    parser.add_argument(
        "--ops", default=",".join(OPS), help=f"operations ({', '.join(OPS + EXTRA_OPS)})"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=2000,
        help="timed runs per operation (2000: the writes span two compactions)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the built stores")
    parser.add_argument(
        "--no-sweep", action="store_true", help="skip the scheduler sweep (all live reminders due)"
    )
    parser.add_argument(
        "--no-serve", action="store_true", help="skip the peak RSS of a real billing-bot serve"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="timed rounds per operation; each operation is judged by its median round",
    )
    parser.add_argument(
        "--engine",
        choices=("tinydb", "postgresql"),
        default="tinydb",
        help="postgresql: also copy each store to PostgreSQL and measure it beside TinyDB",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BOT_BENCH_POSTGRES_URL"),
        help="a PostgreSQL server to use (a role that may create databases; one is created "
        "and dropped per size) instead of a throw-away cluster; env BOT_BENCH_POSTGRES_URL",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the measuring process
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    ops = [o for o in args.ops.split(",") if o]
    unknown = set(ops) - set(OPS + EXTRA_OPS)
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.measure:
        result = asyncio.run(
            measure(
                args.measure,
                sizes[0],
                ops,
                args.samples,
                args.seed,
                not args.no_sweep,
            )
        )
        print(json.dumps(result))
        return 0
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(pg_server(args.pg_url)) if args.engine == "postgresql" else None
        results, pg_results = run_sizes(
            sizes,
            ops,
            args.samples,
            args.seed,
            args.keep,
            not args.no_sweep,
            not args.no_serve,
            rounds=args.rounds,
            pg=pg,
        )
    ok = report(results, ops)
    if pg_results:
        ok &= report_pg(results, pg_results, ops)
    print()
    print("all targets met" if ok else "SOME TARGETS MISSED")
    return 0 if ok or not args.strict else 1


def _sweep_rows(swept: list[dict[str, Any]]) -> None:
    """The rows of a scheduler-sweep table (TinyDB's and PostgreSQL's)."""
    for r in swept:
        w = r["sweep"]
        print(
            f"| {r['size']:,} | {w['due']:,} | {w['sent']:,} | {w['still_due']:,} "
            f"| {w['seconds']:.3f} |"
        )


def _serve_rows(served: list[dict[str, Any]]) -> None:
    """The rows of a serve-holding-the-store table (TinyDB's and PostgreSQL's)."""
    for r in served:
        v = r["serve"]
        print(
            f"| {v['cases']:,} | {v['ready_s']:.2f} | {v['requests']} "
            f"| {v['peak_rss_mb']:.0f} | {v['rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
