"""``billing-bot store copy``: TinyDB → PostgreSQL and back, resumed after kill -9, refusals."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from adapters.web.demo import fill_demo
from bot.domain import Case, Category, Kind
from bot.storage import Op, Store, open_store
from bot.storage.copy import contents
from tests.harness import make_settings
from tests.processes import ROOT, Serve, bot_env
from tests.test_storage_contract import AGENT

NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)
FIXTURE = Path(__file__).parent / "fixtures" / "store-79a86d9"


def copy_cli(source: str, target: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "store", "copy", "--from", source, "--to", target, *extra],
        env=bot_env(Path("unused.json")),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_copy(source: str, target: str, *extra: str) -> tuple[int, str, str]:
    proc = copy_cli(source, target, *extra)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


async def read_all(where: str | Path) -> dict[str, dict[str, Any]]:
    store = open_store(where)
    await store.open()
    try:
        return await contents(store.engine)
    finally:
        await store.close()


async def demo_store(path: Path) -> None:
    store = open_store(path)
    await store.open()
    try:
        await fill_demo(store, make_settings(db_path=str(path)), NOW)
    finally:
        await store.close()


async def test_the_demo_store_goes_to_postgresql_and_back_unchanged(
    tmp_path: Path, pg_url: str
) -> None:
    first = tmp_path / "first" / "billing-bot.json"
    await demo_store(first)
    code, out, err = run_copy(str(first), pg_url)
    assert code == 0, err
    assert "verified:" in out and "cases, each checksum equal" in out, out
    assert f"to {pg_url}" in out
    back = tmp_path / "back" / "billing-bot.json"
    code, out, err = run_copy(pg_url, str(back))
    assert code == 0, err
    want = await read_all(first)
    assert {"cases", "customers", "users", "receivables", "audit"} <= set(want)
    assert sum(1 for d in want["cases"].values() if d["state"] in ("closed", "cancelled"))
    assert await read_all(pg_url) == want
    assert await read_all(back) == want


async def test_a_copy_killed_midway_resumes_to_the_same_result(tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "big" / "billing-bot.json"
    store = open_store(source)
    await store.open()
    try:
        ops: list[Op] = []
        for n in range(1, 1501):
            case = Case.new(
                n,
                kind=Kind.QUESTION,
                customer_id=f"c{n % 7}",
                category=Category.INVOICE,
                description=f"question {n}",
                actor=AGENT,
                now=NOW + timedelta(seconds=n),
            )
            if n % 3 == 0:
                case.cancel("duplicate", AGENT, NOW)
            case.version = 1
            ops.append(Op("cases", str(n), case.to_doc()))
        ops.append(Op("counters", "case", {"value": 1500, "version": 1500}))
        await store.commit(ops)
    finally:
        await store.close()  # the cancelled ones go to the archive
    proc = copy_cli(str(source), pg_url, "--batch", "10")
    progress = 0
    deadline = time.monotonic() + 120
    conn = await asyncpg.connect(pg_url)
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = await conn.fetchval(
                    "SELECT doc->>'done' FROM flow_docs "
                    "WHERE tbl = 'store_copy' AND doc->>'table' = 'cases'"
                )
            except asyncpg.UndefinedTableError:  # not migrated yet
                done = None
            progress = int(done or 0)
            if progress >= 200:
                break
            await asyncio.sleep(0.02)
        proc.kill()  # SIGKILL, midway through the cases
        proc.communicate(timeout=30)
        assert 200 <= progress < 1500, progress
        cases_then = await conn.fetchval("SELECT count(*) FROM cases")
        assert 0 < cases_then < 1500
    finally:
        await conn.close()
    code, out, err = run_copy(str(source), pg_url)
    assert code == 0, err
    assert "resuming the unfinished copy" in out and "1500 cases, each checksum equal" in out
    assert await read_all(pg_url) == await read_all(source)
    # Done: a further copy into it is refused (it holds data now).
    code, _out, err = run_copy(str(source), pg_url)
    assert code == 1 and "already holds data" in err


async def test_a_target_with_other_data_or_another_copy_is_refused(
    tmp_path: Path, pg_url: str
) -> None:
    first = tmp_path / "a" / "billing-bot.json"
    await demo_store(first)
    other = tmp_path / "b" / "billing-bot.json"
    await demo_store(other)
    code, _out, err = run_copy(str(first), str(other))
    assert code == 1 and "already holds data" in err and "Traceback" not in err
    # An unfinished copy from another source is not resumed from this one.
    target = open_store(pg_url)
    await target.open()
    try:
        await target.commit(
            [Op("store_copy", "progress", {"source": "/elsewhere.json", "table": "", "done": 0})]
        )
    finally:
        await target.close()
    code, _out, err = run_copy(str(first), pg_url)
    assert code == 1 and "unfinished copy from /elsewhere.json" in err


async def test_a_tinydb_store_a_serve_owns_is_refused(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "served" / "billing-bot.json"
    serve = Serve(db)
    serve.start()
    try:
        code, _out, err = run_copy(str(db), pg_url)
    finally:
        serve.stop()
    assert code == 1
    assert f"in use by the serve at {serve.url}" in err and "stop it first" in err
    assert "Traceback" not in err
    assert await read_all(pg_url) == {}


async def test_the_store_written_by_79a86d9_copies_to_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    dst = tmp_path / "store"
    shutil.copytree(FIXTURE, dst)
    path = dst / "billing-bot.json"
    code, out, err = run_copy(str(path), pg_url)
    assert code == 0, err
    assert "24 cases, each checksum equal" in out
    assert await read_all(pg_url) == await read_all(path)
    store = Store(open_store(pg_url).engine)
    await store.open()
    try:
        assert [n for n in range(1, 25) if await store.get_case(n) is not None] == list(
            range(1, 25)
        )
        case = await store.get_case(2)
        assert case is not None and case.owner == "lena"
        assert [n.text for n in case.notes][-1] == "journal line from 79a86d9"
        assert len(await store.customers()) == 6
        assert await store.next_number("case") == 25
    finally:
        await store.close()


async def test_a_table_the_copying_process_never_declared_is_copied(
    tmp_path: Path, pg_url: str
) -> None:
    """A flow's table that the ``store copy`` process does not load still goes along."""
    from bot.storage import declare_tables

    name, empty = declare_tables("copy_only_here_table", "copy_empty_here_table")
    source = tmp_path / "s" / "billing-bot.json"
    store = open_store(source)
    await store.open()
    try:
        await store.commit([Op(name, "k", {"a": 1})])
    finally:
        await store.close()  # the snapshot holds both tables, one of them empty
    code, out, err = run_copy(str(source), pg_url)
    assert code == 0, err
    assert f"verified: {name}: 1 document," in out
    copied = await read_all(pg_url)
    assert copied[name] == {"k": {"a": 1}} and empty not in copied


async def test_attached_files_go_along_to_postgresql_and_back(tmp_path: Path, pg_url: str) -> None:
    from bot.domain import Attachment

    first = tmp_path / "first" / "billing-bot.json"
    data = b"%PDF-1.4\n" + b"evidence " * 500
    store = open_store(first)
    await store.open()
    try:
        case = await store.create_case(
            lambda n: Case.new(
                n,
                kind=Kind.QUESTION,
                customer_id="contoso",
                category=Category.INVOICE,
                description="why?",
                actor=AGENT,
                now=NOW,
            )
        )
        file_id = await store.put_file(data)
        att = Attachment(file_id, "a.pdf", len(data), "application/pdf", "u-ana", NOW, "web", True)
        case.attach(Attachment(**{**att.to_doc(), "at": NOW, "stored": True}), AGENT, NOW)
        await store.save_case(case)
    finally:
        await store.close()
    code, out, err = run_copy(str(first), pg_url)
    assert code == 0 and "files copied (attachments): 1" in out, (out, err)
    back = tmp_path / "back" / "billing-bot.json"
    code, out, err = run_copy(pg_url, str(back))
    assert code == 0, err
    for where in (pg_url, back):
        s = open_store(where)
        await s.open()
        try:
            assert await s.file_bytes(file_id) == data
        finally:
            await s.close()
