"""The world a real ``billing-bot serve`` lives in, for crash and fault tests.

``World`` starts, on 127.0.0.1 in the test's event loop, the fake Slack Web
API (``tests/slack/slackfake.py``) and the fake Bot Connector
(``tests/teams/conftest.py``), writes a config file, and runs
``billing-bot serve`` as a real subprocess (:class:`ServeProcess`) with Slack
on (signed requests) and Teams in local (Emulator) mode on loopback. The
process can be killed with SIGKILL and started again on the same store and
port, its clock (``BILLING_BOT_FAKE_CLOCK``) moved on by the test.

``inspect_store`` opens a *copy* of a store offline (the running or killed
process's files are never touched) and ``case_problems`` lists every
invariant the copy breaks: a case that does not load, a gap or reuse in case
numbers, an audit trail that does not lead to the stored state, owner or
notes, a resolved case without its close-the-loop job, a malformed job or
inbox item.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp.test_utils import TestServer

from bot.domain import Case, State
from bot.kernel.scheduler import loop_key
from bot.storage import Store, TinyDBEngine
from conversations.runtime import Runtime
from tests.processes import ROOT, bot_env, free_port
from tests.slack.slackfake import PARTNER, SECRET, TENANT_A, TOKEN, FakeSlack, SlackEnv
from tests.teams.conftest import ALICE, BOB, LENA, PARTNER_TENANT, FakeConnector, Teams

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday morning

CONFIG = f"""
[desk]
time_zone = "UTC"

[slack]
team_id = "{PARTNER}"

[teams]
tenant_id = "{PARTNER_TENANT}"

[reminders]
repeat_every_hours = 1
escalate_after = 50

[[users]]
name = "ana"
role = "agent"
slack = "UANA"

[[users]]
name = "lena"
role = "lead"
slack = "ULENA"
teams = "{LENA.aad}"

[[users]]
name = "alice"
role = "agent"
display_name = "Alice Agent"
teams = "{ALICE.aad}"

[[users]]
name = "bob"
role = "agent"
display_name = "Bob Agent"
teams = "{BOB.aad}"

[[customers]]
name = "Contoso"
tenant_id = "{TENANT_A}"
owner = "lena"
"""

STORE_SUFFIXES = (".json", ".journal", ".archive.jsonl", ".archive.idx")
CARD_TITLE = re.compile(r"BILL-(\d+) · ")
MOVES = frozenset(
    {"started", "escalated", "resolved", "customer_informed", "reopened", "cancelled", "closed"}
)


class ServeProcess:
    """``python -m bot serve`` on a fixed port; output goes to a log file, never a pipe."""

    def __init__(self, db: Path, port: int, log: Path, env: dict[str, str]) -> None:
        self.db = db
        self.port = port
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        """Start and wait (without blocking the event loop) until it accepts connections."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--port", str(self.port)],
                env=bot_env(self.db, **self.env),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                _r, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.03)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise AssertionError(f"serve did not start:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, no unlock (the OS drops the file lock)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    async def stop(self) -> int:
        """SIGTERM, the clean way: returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while self.proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
        return int(self.proc.wait(timeout=30))

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class _Http:
    """What ``SlackEnv`` needs of a test client, on a real aiohttp session to a real port."""

    def __init__(self, session: aiohttp.ClientSession, world: World) -> None:
        self.session = session
        self.world = world

    def post(self, path: str, **kw: Any) -> Any:
        return self.session.post(self.world.url + path, **kw)


class _NoRuntime:
    """The bot runs in another process: nothing to wait for here."""

    async def wait_idle(self) -> None:
        return None


@dataclass
class World:
    """Fakes of Slack and the Bot Connector, a config, a store, and the serve process."""

    tmp: Path
    slack: FakeSlack = field(default_factory=FakeSlack)
    connector: FakeConnector = field(default_factory=FakeConnector)
    port: int = field(default_factory=free_port)
    config: str = CONFIG
    extra_env: dict[str, str] = field(default_factory=dict)
    serve: ServeProcess | None = None
    http: aiohttp.ClientSession | None = None
    _servers: list[TestServer] = field(default_factory=list)
    _slack_env: SlackEnv | None = None

    @property
    def db(self) -> Path:
        return self.tmp / "store" / "billing.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> World:
        for member in (ALICE, LENA, BOB):
            self.connector.members[member.id] = {
                **member.account(),
                "userPrincipalName": f"{member.key}@example.com",
            }
        for app, attr in ((self.slack.app, "slack"), (self.connector.app(), "connector")):
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            self._servers.append(server)
            url = str(server.make_url("")).rstrip("/")
            getattr(self, attr).url = url
        (self.tmp / "bot.toml").write_text(self.config, encoding="utf-8")
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        return self

    async def close(self) -> None:
        if self.serve is not None and self.serve.proc and self.serve.proc.poll() is None:
            self.serve.kill()
        if self.connector.gate is not None:
            self.connector.gate.set()
        for event in self.slack.holds.values():
            event.set()
        if self.http is not None:
            await self.http.close()
        for server in self._servers:
            await server.close()

    def env(self, clock: datetime | None) -> dict[str, str]:
        env = {
            "BOT_CONFIG": str(self.tmp / "bot.toml"),
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": f"{self.slack.url}/api/",
            **self.extra_env,
        }
        if clock is not None:
            env["BILLING_BOT_FAKE_CLOCK"] = f"{clock.isoformat()}@1"
        return env

    async def start(self, clock: datetime | None = START) -> ServeProcess:
        """A new serve process on the same store and port."""
        self.serve = ServeProcess(self.db, self.port, self.tmp / "serve.log", self.env(clock))
        await self.serve.start()
        return self.serve

    def slack_env(self) -> SlackEnv:
        """``SlackEnv``'s signed-request builders, posting to the serve process.

        One shared instance: its counters make the trigger and event ids, which
        Slack never repeats (the bot takes a repeated one for Slack's retry).
        """
        assert self.http is not None
        if self._slack_env is None:
            self._slack_env = SlackEnv(
                client=cast(Any, _Http(self.http, self)),
                fake=self.slack,
                runtime=cast(Runtime, _NoRuntime()),
                settings=cast(Any, None),
            )
        return self._slack_env

    def teams(self) -> Teams:
        return Teams(self.connector)

    async def post_activity(self, activity: dict[str, Any]) -> int:
        assert self.http is not None
        async with self.http.post(
            f"{self.url}/api/messages",
            data=json.dumps(activity),
            headers={"Content-Type": "application/json"},
        ) as resp:
            await resp.read()
            return resp.status

    async def healthz(self) -> tuple[int, dict[str, Any]]:
        assert self.http is not None
        async with self.http.get(f"{self.url}/healthz") as resp:
            return resp.status, await resp.json()


@contextlib.asynccontextmanager
async def open_world(tmp: Path, **kw: Any) -> AsyncIterator[World]:
    world = await World(tmp, **kw).open()
    try:
        yield world
    finally:
        await world.close()


# ---------------------------------------------------------------- the store, offline
@dataclass
class StoreImage:
    """What a copy of the store holds, read by the bot's own storage code."""

    cases: dict[int, Case]
    docs: dict[int, dict[str, Any]]
    counter: int
    jobs: dict[str, dict[str, Any]]
    inbox: dict[str, dict[str, Any]]
    events: dict[str, dict[str, Any]]
    problems: list[str]


def copy_store(db: Path, into: Path) -> Path:
    """Copy a store's files (as they are on disk right now) into ``into``; the copy's path."""
    into.mkdir(parents=True, exist_ok=True)
    stem = db.with_suffix("")
    for suffix in STORE_SUFFIXES:
        src = stem.with_name(stem.name + suffix)
        if src.exists():
            shutil.copy2(src, into / src.name)
    return into / db.name


async def inspect_store(db: Path, scratch: Path) -> StoreImage:
    """Open a copy of the store at ``db`` and read everything; ``problems`` lists what is wrong."""
    if scratch.exists():
        shutil.rmtree(scratch)
    path = copy_store(db, scratch)
    engine = TinyDBEngine(path)
    store = Store(engine)
    await store.open()  # raises on a half-written store
    try:
        counter_doc = engine.peek("counters", "case") or {}
        counter = int(counter_doc.get("value", 0))
        cases: dict[int, Case] = {}
        docs: dict[int, dict[str, Any]] = {}
        problems: list[str] = []
        for key in engine.view("cases"):
            if not key.isdigit() or not 1 <= int(key) <= counter:
                problems.append(f"case key {key!r} outside 1..{counter} (the counter)")
        for number in range(1, counter + 1):
            doc = await engine.get("cases", str(number))
            if doc is None:
                problems.append(f"BILL-{number} is missing (a gap: its number was given out)")
                continue
            docs[number] = doc
            try:
                cases[number] = Case.from_doc(doc)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                problems.append(f"BILL-{number} does not load: {type(exc).__name__}: {exc}")
        jobs = {k: dict(v) for k, v in engine.view("jobs").items()}
        inbox = {k: dict(v) for k, v in engine.view("inbox").items()}
        events = {k: dict(v) for k, v in engine.view("events").items()}
        image = StoreImage(cases, docs, counter, jobs, inbox, events, problems)
        problems.extend(case_problems(image))
        return image
    finally:
        await store.close()


def case_problems(image: StoreImage) -> list[str]:
    """Every way the cases, jobs and inbox of ``image`` contradict each other."""
    out: list[str] = []
    for number, case in image.cases.items():
        where = f"BILL-{number}"
        if case.number != number:
            out.append(f"{where} is stored under the wrong key ({case.number})")
        if not case.audit or case.audit[0].action != "created":
            out.append(f"{where}: the audit trail does not start with 'created'")
        state = State.OPEN.value
        owner: str | None = None
        noted = 0
        last = None
        for entry in case.audit:
            if last is not None and entry.at < last:
                out.append(f"{where}: audit entries out of order ({entry.at} < {last})")
            last = entry.at
            if entry.action in MOVES:
                if entry.details.get("from") != state:
                    out.append(f"{where}: '{entry.action}' moves from {entry.details.get('from')}")
                state = str(entry.details.get("to"))
            elif entry.action == "assigned":
                owner = entry.details.get("to")
            elif entry.action == "noted":
                noted += 1
        if state != case.state.value:
            out.append(f"{where}: the audit leads to {state}, the case says {case.state.value}")
        if owner != case.owner:
            out.append(f"{where}: the audit gives owner {owner}, the case says {case.owner}")
        if noted != len(case.notes):
            out.append(f"{where}: {noted} 'noted' audit entries but {len(case.notes)} notes")
        if case.version < 1:
            out.append(f"{where}: version {case.version}")
        if case.state == State.RESOLVED:
            if not case.resolution:
                out.append(f"{where}: resolved without a resolution")
            if loop_key(number) not in image.jobs:
                out.append(f"{where}: resolved but its close-the-loop job is gone")
    for key, job in image.jobs.items():
        if not isinstance(job.get("type"), str) or not isinstance(job.get("due"), str):
            out.append(f"job {key} is malformed: {job}")
    for key, item in image.inbox.items():
        if not isinstance(item.get("channel"), str) or not isinstance(item.get("payload"), dict):
            out.append(f"inbox item {key} is malformed")
    return out


def shown_cards(slack: FakeSlack, connector: FakeConnector) -> list[tuple[int, str]]:
    """(case number, everything the card said) for every case card a user was shown."""
    out: list[tuple[int, str]] = []
    for message in slack.messages:
        text = message.text
        for match in CARD_TITLE.finditer(text):
            out.append((int(match.group(1)), text))
    for call in connector.calls:
        if call.method not in ("POST", "PUT") or not call.body:
            continue
        text = call.everything()
        for match in CARD_TITLE.finditer(text):
            out.append((int(match.group(1)), text))
    return out


def env_seed(default: int) -> int:
    """``RELIABILITY_SEED`` when set (to replay a run), else ``default``."""
    value = os.environ.get("RELIABILITY_SEED", "")
    return int(value) if value.isdigit() else default
