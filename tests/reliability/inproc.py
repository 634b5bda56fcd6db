"""The whole bot in the test process, every dependency a local fake, faults on demand.

``running_bot`` serves ``bot.app.server.build_app`` over real HTTP on 127.0.0.1
(aiohttp's ``TestClient``) on a durable TinyDB store, with the Slack channel
on against ``FakeSlack``, Teams in local (Emulator) mode against the fake Bot
Connector, and API-mode escalation against ``FakePartnerCenter`` (a fast
client: no backoff sleeps, a 0.3 s timeout, as in ``tests/test_escalation.py``).

:class:`DiskFault` stands in for the ``os`` module of the storage engine:
``fail(errno.ENOSPC)`` makes every write, sync and rename of the store fail
the way a full (or read-only) disk does, until ``heal()``. Tests run as root,
so file modes could not prove this; the engine itself is not patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno as errno_codes
import json
import os
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app.server import RUNTIME, build_app
from bot.clock import FakeClock
from bot.config import CustomerConfig, UserConfig
from bot.domain import Role
from bot.partner_center import PartnerCenterClient
from bot.storage import Store, TinyDBEngine, tinydb_engine
from conversations.escalation import flow_of
from conversations.runtime import Runtime
from tests.fakes.partner_center import FakePartnerCenter, running_fake_partner_center
from tests.slack.slackfake import START, TENANT_A, FakeSlack, SlackEnv, make_settings
from tests.teams.conftest import ALICE, BOB, LENA, PARTNER_TENANT, FakeConnector, Teams


async def eventually(probe: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``probe()`` is truthy (background work: the inbox, the scheduler)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not probe():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


class DiskFault:
    """The storage engine's ``os``: the real one, except that writes fail while ``failing``."""

    def __init__(self) -> None:
        self.error: int | None = None
        self.refused = 0  # how many file operations were refused

    def fail(self, code: int = errno_codes.ENOSPC) -> None:
        self.error = code

    def heal(self) -> None:
        self.error = None

    def _check(self) -> None:
        if self.error is not None:
            self.refused += 1
            raise OSError(self.error, os.strerror(self.error))

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self._check()
        return os.write(fd, data)

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        self._check()
        return os.pwrite(fd, data, offset)

    def fsync(self, fd: int) -> None:
        self._check()
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        self._check()
        os.fdatasync(fd)

    def replace(self, src: Any, dst: Any) -> None:
        self._check()
        os.replace(src, dst)


@dataclass(repr=False)
class LiveBot:
    """The running bot and every fake around it."""

    client: TestClient
    runtime: Runtime
    slack: SlackEnv
    fake_slack: FakeSlack
    connector: FakeConnector
    teams: Teams
    pc: FakePartnerCenter
    clock: FakeClock
    disk: DiskFault
    db: Path

    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def engine(self) -> TinyDBEngine:
        engine = self.runtime.store.engine
        assert isinstance(engine, TinyDBEngine)
        return engine

    async def healthz(self) -> tuple[int, dict[str, Any]]:
        resp = await self.client.get("/healthz")
        return resp.status, await resp.json()

    async def activity(self, activity: dict[str, Any], *, settle: bool = True) -> int:
        resp = await self.client.post(
            "/api/messages",
            data=json.dumps(activity),
            headers={"Content-Type": "application/json"},
        )
        await resp.read()
        if settle:
            await self.runtime.wait_idle()
        return resp.status

    async def local(self, user: str, text: str) -> tuple[int, str]:
        resp = await self.client.post("/local/messages", json={"user": user, "text": text})
        body = await resp.json()
        texts = [r.get("text") or "" for r in body.get("replies", [])] if resp.status == 200 else []
        return resp.status, "\n".join(texts) or json.dumps(body)


def settings_for(slack_api: str, db: Path, pc: FakePartnerCenter) -> Any:
    base = make_settings(
        slack_api,
        db_path=str(db),
        host="127.0.0.1",
        teams_partner_tenant_id=PARTNER_TENANT,
        users=(
            UserConfig(name="ana", role=Role.AGENT, slack="UANA"),
            UserConfig(name="lena", role=Role.LEAD, slack="ULENA", teams=LENA.aad),
            UserConfig(name="alice", role=Role.AGENT, display_name="Alice", teams=ALICE.aad),
            UserConfig(name="bob", role=Role.AGENT, display_name="Bob", teams=BOB.aad),
        ),
        customers=(
            CustomerConfig(
                name="Contoso", tenant_id=TENANT_A, owner="lena", slack_channels=("CCONTOSO",)
            ),
        ),
    )
    return pc.settings(base=base)


async def _no_sleep(_seconds: float) -> None:
    return None


@contextlib.asynccontextmanager
async def running_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveBot]:
    """The bot with Slack, Teams and Partner Center on, each a local fake; see the docstring."""
    disk = DiskFault()
    monkeypatch.setattr(tinydb_engine, "os", disk)
    fake_slack = FakeSlack()
    connector = FakeConnector()
    for user in (ALICE, LENA, BOB):
        connector.members[user.id] = {**user.account(), "userPrincipalName": f"{user.key}@x.y"}
    servers = [
        TestServer(fake_slack.app, host="127.0.0.1"),
        TestServer(connector.app(), host="127.0.0.1"),
    ]
    for server in servers:
        await server.start_server()
    fake_slack.url = str(servers[0].make_url("")).rstrip("/")
    connector.url = str(servers[1].make_url("")).rstrip("/")
    db = tmp_path / "store" / "billing.json"
    clock = FakeClock(START, speed=1.0)
    async with running_fake_partner_center() as pc:
        settings = settings_for(f"{fake_slack.url}/api/", db, pc)
        app = build_app(settings, Store(TinyDBEngine(db)), clock)
        runtime = app[RUNTIME]
        flow_of(runtime).client = PartnerCenterClient(
            settings, clock=clock, sleep=_no_sleep, rng=random.Random(7), timeout=0.3
        )
        try:
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                yield LiveBot(
                    client=client,
                    runtime=runtime,
                    slack=SlackEnv(client, fake_slack, runtime, settings),
                    fake_slack=fake_slack,
                    connector=connector,
                    teams=Teams(connector),
                    pc=pc,
                    clock=clock,
                    disk=disk,
                    db=db,
                )
        finally:
            disk.heal()
            for event in fake_slack.holds.values():
                event.set()
            if connector.gate is not None:
                connector.gate.set()
            for server in servers:
                await server.close()
