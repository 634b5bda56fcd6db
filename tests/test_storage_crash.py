"""Kill -9 a real writer process again and again: no acknowledged write may be lost.

The writer (``tests/storage_writer.py``) compacts every 20 commits, so kills
also land in the middle of compactions (snapshot, archive and index writes).
After every kill the store is opened here, checked against everything the
writer acknowledged over all runs, and closed again (which compacts it).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.domain import State
from bot.storage import Store, TinyDBEngine

WRITER = Path(__file__).with_name("storage_writer.py")
ROOT = WRITER.parent.parent
CYCLES = 24
SEED = 20261124
COMPACT_EVERY = 20  # small: many kills land in the middle of a compaction


@dataclass
class Acks:
    created: dict[int, str] = field(default_factory=dict)  # number -> token
    version: dict[int, int] = field(default_factory=dict)  # number -> highest acked version
    state: dict[int, str] = field(default_factory=dict)  # number -> state at that version
    lines: int = 0

    def read(self, text: str) -> None:
        complete = text.split("\n")[:-1]  # a line cut by the kill was not acknowledged
        for line in complete:
            parts = line.split(" ")
            if parts[0] == "READY":
                continue
            kind, number, version, state = parts[0], int(parts[1]), int(parts[2]), parts[3]
            if kind == "C":
                assert number not in self.created, f"case number {number} was given out twice"
                self.created[number] = parts[4]
            if version >= self.version.get(number, 0):
                self.version[number] = version
                self.state[number] = state
            self.lines += 1


def start_writer(store: Path, seed: int, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with out.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, str(WRITER), str(store), str(seed), str(COMPACT_EVERY)],
            stdout=fh,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )


def wait_ready(proc: subprocess.Popen[bytes], out: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.read_bytes().startswith(b"READY\n"):
            return
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"the writer died before it was ready:\n{err}")
        time.sleep(0.005)
    raise AssertionError("the writer did not get ready")


async def verify(store_path: Path, acks: Acks) -> None:
    engine = TinyDBEngine(store_path)
    store = Store(engine)
    await store.open()  # loads: no StorageError after any kill
    try:
        assert store.health()["ok"] is True
        live = {c.number for c in await store.live_cases()}
        archived = {s.number for s in store.archived_summaries()}
        assert not live & archived
        for number, version in acks.version.items():
            case = await store.get_case(number)
            assert case is not None, f"acknowledged case {number} is missing"
            assert case.number == number
            assert case.version >= version, (number, case.version, version)
            if case.version == version:
                assert case.state.value == acks.state[number], number
            if number in acks.created:
                assert case.description == acks.created[number], f"case {number} was overwritten"
            finished = case.state in (State.CLOSED, State.CANCELLED)
            assert (number in archived) == finished and (number in live) != finished
        counter = engine.peek("counters", "case")
        highest = max(acks.created, default=0)
        assert counter is not None or highest == 0
        if counter is not None:
            assert counter["value"] >= highest  # the next number cannot collide
    finally:
        await store.close()


async def test_kill_minus_nine_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store_path = tmp_path / "crash.json"
    acks = Acks()
    started = time.monotonic()
    for cycle in range(CYCLES):
        out = tmp_path / f"acks-{cycle}.txt"
        proc = start_writer(store_path, SEED + cycle, out)
        try:
            wait_ready(proc, out)
            time.sleep(rng.uniform(0.03, 0.35))
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
        acks.read(out.read_text())
        await verify(store_path, acks)
    # The store grew over the runs, and the kills hit a store with an archive.
    assert acks.lines > CYCLES * 20
    assert len(acks.created) > 100
    engine = TinyDBEngine(store_path)
    await engine.open()
    try:
        assert engine.index, "no case was ever archived"
    finally:
        await engine.close()
    assert time.monotonic() - started < 60
