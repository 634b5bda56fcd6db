"""Issue 17, item 7: a damaged journal stops the start; only a torn tail is dropped.

Every newline-terminated journal line was an acknowledged write, so a line
that is not JSON, has the wrong shape, a ``seq`` of 0, or (new lines carry a
CRC32) a flipped byte makes the engine refuse to load, and ``serve`` exit 1
with a message naming the line, never a traceback. ``billing-bot store
check`` reports every damaged line without touching the store; ``store
repair --to NEW`` writes a new store with the snapshot and every good line.
Journals written before the checksum (79a86d9) still load.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.storage import Op, StorageError, TinyDBEngine
from tests.processes import ROOT, Serve, bot_env, free_port

NAMES = ["Contoso", "Fabrikam", "Northwind", "Litware"]


def crash_copy(db: Path, directory: Path) -> Path:
    """The files of an open store as a kill -9 would leave them (every commit is fsynced)."""
    directory.mkdir()
    for f in db.parent.iterdir():
        if not f.name.endswith(".lock"):
            shutil.copy2(f, directory / f.name)
    return directory / db.name


async def crash_image(tmp_path: Path) -> Path:
    """A store with a snapshot and one journal line per customer, as a kill -9 leaves it."""
    live = tmp_path / "live" / "billing-bot.json"
    engine = TinyDBEngine(live)
    await engine.open()
    try:
        for i, name in enumerate(NAMES):
            await engine.commit([Op("customers", f"c{i}", {"id": f"c{i}", "name": name})])
        image = crash_copy(live, tmp_path / "store")
    finally:
        await engine.close()
    assert len(journal(image).read_bytes().splitlines()) == len(NAMES)
    return image


def journal(db: Path) -> Path:
    return db.with_name(db.stem + ".journal")


def replace_line(db: Path, number: int, line: bytes) -> bytes:
    """Put ``line`` in place of journal line ``number`` (1-based); return the new bytes."""
    lines = journal(db).read_bytes().split(b"\n")
    lines[number - 1] = line
    damaged = b"\n".join(lines)
    journal(db).write_bytes(damaged)
    return damaged


def flip(db: Path, number: int, old: bytes, new: bytes) -> bytes:
    """Change one byte sequence inside journal line ``number``."""
    line = journal(db).read_bytes().split(b"\n")[number - 1]
    assert line.count(old) == 1 and len(old) == len(new)
    return replace_line(db, number, line.replace(old, new))


WRONG_SHAPES = {
    "unknown table": b'{"seq":2,"ops":[["nope","k",{"a":1}]]}',
    "ops is a number": b'{"seq":2,"ops":5}',
    "a two-field op": b'{"seq":2,"ops":[["customers","c1"]]}',
    "a document that is a string": b'{"seq":2,"ops":[["customers","c1","x"]]}',
    "seq 0": b'{"seq":0,"ops":[["customers","zz",{"id":"zz","name":"Ghost"}]]}',
    "seq not a number": b'{"seq":"2","ops":[]}',
    "not an object": b"[2, []]",
    "seq going backwards": b'{"seq":1,"ops":[["customers","zz",{"id":"zz","name":"Ghost"}]]}',
    "not JSON": b'{"seq":2,"ops":[["customers","c1",{"na',
}


@pytest.mark.parametrize("damage", list(WRONG_SHAPES))
async def test_a_middle_line_of_the_wrong_shape_stops_the_load(tmp_path: Path, damage: str) -> None:
    db = await crash_image(tmp_path)
    damaged = replace_line(db, 2, WRONG_SHAPES[damage])
    engine = TinyDBEngine(db)
    with pytest.raises(StorageError, match="damaged at line 2") as info:
        await engine.open()
    assert "store repair" in str(info.value)
    assert journal(db).read_bytes() == damaged  # not a byte changed
    # The lock was let go: a repaired store can be opened by the next process.
    replace_line(db, 2, b'{"seq":2,"ops":[]}')
    again = TinyDBEngine(db)
    await again.open()
    await again.close()


async def test_a_flipped_byte_in_the_last_complete_line_stops_the_load(tmp_path: Path) -> None:
    """Still valid JSON, so only the line's checksum can tell (the old code kept 'Litwarf')."""
    db = await crash_image(tmp_path)
    damaged = flip(db, 4, b"Litware", b"Litwarf")
    with pytest.raises(StorageError, match="damaged at line 4"):
        await TinyDBEngine(db).open()
    assert journal(db).read_bytes() == damaged


async def test_a_last_complete_line_that_is_no_longer_json_stops_the_load(tmp_path: Path) -> None:
    """The old code dropped it with a warning: an acknowledged write was gone."""
    db = await crash_image(tmp_path)
    damaged = flip(db, 4, b"Litware", b'Lit"are')
    with pytest.raises(StorageError, match="damaged at line 4"):
        await TinyDBEngine(db).open()
    assert journal(db).read_bytes() == damaged


async def test_only_a_torn_tail_is_dropped(tmp_path: Path) -> None:
    db = await crash_image(tmp_path)
    good = journal(db).read_bytes()
    line = b'{"seq":5,"ops":[["customers","c9",{"id":"c9","name":"Torn"}]],"crc":"00000000"}'
    journal(db).write_bytes(good + line)  # no newline: its fsync never returned
    engine = TinyDBEngine(db)
    await engine.open()
    try:
        assert engine.peek("customers", "c9") is None
        assert engine.peek("customers", "c3") == {"id": "c3", "name": "Litware"}
        assert journal(db).read_bytes() == good
    finally:
        await engine.close()


async def test_a_journal_without_checksums_still_loads(tmp_path: Path) -> None:
    """Lines as 79a86d9 wrote them, then lines of this version appended to the same journal."""
    db = await crash_image(tmp_path)
    old = b"".join(
        b'{"seq":%d,"ops":[["customers","c%d",{"id":"c%d","name":"Old %d"}]]}\n' % (n, n, n, n)
        for n in range(1, 5)
    )
    journal(db).write_bytes(old)
    engine = TinyDBEngine(db)
    await engine.open()
    try:
        assert engine.peek("customers", "c4") == {"id": "c4", "name": "Old 4"}
        await engine.commit([Op("customers", "c5", {"id": "c5", "name": "New"})])
        crashed = crash_copy(db, tmp_path / "crashed")  # old lines, then a new one
    finally:
        await engine.close()
    lines = journal(crashed).read_bytes().splitlines()
    assert lines[:4] == old.splitlines() and len(lines) == 5
    again = TinyDBEngine(crashed)
    await again.open()
    try:
        assert again.peek("customers", "c1") == {"id": "c1", "name": "Old 1"}
        assert again.peek("customers", "c5") == {"id": "c5", "name": "New"}
    finally:
        await again.close()


# ---- through the real command --------------------------------------------------
SERVE_DAMAGE = ["unknown table", "ops is a number", "a two-field op", "seq 0"]


def run_bot(db: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=bot_env(db),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("damage", [*SERVE_DAMAGE, "flipped byte in the last line"])
async def test_serve_refuses_a_damaged_journal_with_a_message(tmp_path: Path, damage: str) -> None:
    db = await crash_image(tmp_path)
    if damage in WRONG_SHAPES:
        damaged = replace_line(db, 2, WRONG_SHAPES[damage])
        number = 2
    else:
        damaged = flip(db, 4, b"Litware", b"Litwarf")
        number = 4
    # A serve of the old code started on the flipped byte: the timeout ends it.
    proc = run_bot(db, "serve", "--port", str(free_port()), timeout=20)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "billing-bot: cannot open the store" in proc.stderr
    assert f"is damaged at line {number}" in proc.stderr
    assert "store repair --to" in proc.stderr and "from a backup" in proc.stderr
    assert journal(db).read_bytes() == damaged


def snapshot_of(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
        if not p.name.endswith(".lock")
    }


async def test_store_check_reports_every_damaged_line_and_changes_nothing(
    tmp_path: Path,
) -> None:
    db = await crash_image(tmp_path)
    healthy = run_bot(db, "store", "check")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "healthy" in healthy.stdout
    replace_line(db, 2, WRONG_SHAPES["unknown table"])
    flip(db, 4, b"Litware", b"Litwarf")
    journal(db).write_bytes(journal(db).read_bytes() + b'{"seq":9,"op')  # and a torn tail
    before = snapshot_of(db.parent)
    proc = run_bot(db, "store", "check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "journal line 2 " in out and "unknown table 'nope'" in out
    assert "journal line 4 " in out and "checksum mismatch" in out
    assert "journal line 5 " in out and "torn tail" in out
    assert "journal line 1 " not in out and "journal line 3 " not in out
    assert "2 good lines, 2 damaged" in out
    assert "store repair --to" in out
    assert snapshot_of(db.parent) == before  # read-only: not even the torn tail is cut


async def test_store_check_reads_the_store_of_a_running_serve(tmp_path: Path) -> None:
    db = await crash_image(tmp_path)
    serve = Serve(db)
    serve.start()
    try:
        proc = run_bot(db, "store", "check")  # no lock needed
        assert proc.returncode == 0, proc.stdout + proc.stderr
        repair = run_bot(db, "store", "repair", "--to", str(tmp_path / "new" / "b.json"))
        assert repair.returncode == 1 and "in use by another billing-bot" in repair.stderr
        assert not (tmp_path / "new" / "b.json").exists()
    finally:
        code, err = serve.stop()
    assert code == 0, err


async def test_store_repair_keeps_every_good_line_and_leaves_the_original(
    tmp_path: Path,
) -> None:
    db = await crash_image(tmp_path)
    replace_line(db, 2, WRONG_SHAPES["a two-field op"])
    flip(db, 4, b"Litware", b"Litwarf")
    before = snapshot_of(db.parent)
    new = tmp_path / "repaired" / "billing-bot.json"
    proc = run_bot(db, "store", "repair", "--to", str(new))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "left out journal line 2 " in proc.stdout and "is not [table, key" in proc.stdout
    assert "left out journal line 4 " in proc.stdout and "checksum mismatch" in proc.stdout
    assert "2 of 4 complete journal lines" in proc.stdout
    assert snapshot_of(db.parent) == before  # the original is left exactly as it was
    engine = TinyDBEngine(new)
    await engine.open()
    try:
        assert engine.peek("customers", "c0") == {"id": "c0", "name": "Contoso"}
        assert engine.peek("customers", "c2") == {"id": "c2", "name": "Northwind"}
        assert engine.peek("customers", "c1") is None
        assert engine.peek("customers", "c3") is None
    finally:
        await engine.close()
    check = run_bot(new, "store", "check")
    assert check.returncode == 0, check.stdout
    again = run_bot(db, "store", "repair", "--to", str(new))  # never overwrites
    assert again.returncode == 1 and "never overwrites" in again.stderr
    assert json.loads(new.read_bytes())["customers"]  # the repaired store is still there
