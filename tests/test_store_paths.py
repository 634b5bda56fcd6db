"""Issue 17, items 8 and 9: one store behind a symlink is still one store; open errors name it.

Item 8: the lock and every file beside the store are named after its real
path, so a second ``serve`` reaching the same store through a symlink (to the
file or to its directory) is refused like any second owner, and a snapshot
written through a symlink replaces the real file, not the link.

Item 9: when the operating system refuses a store file at start (a parent
that is a regular file, a full disk), ``serve`` says which store and the OS
error; only a failed bind says "cannot listen".
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.storage import Op, StorageError, TinyDBEngine, open_store_or_serve
from tests.processes import ROOT, Serve, bot_env, free_port


def run_serve(db: Path, port: int, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        env=bot_env(db),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---- item 8: symlinks ------------------------------------------------------------
def test_a_second_serve_through_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "a" / "billing-bot.json"
    real.parent.mkdir()
    first = Serve(real)
    first.start()  # creates the store
    (tmp_path / "b").mkdir()
    file_link = tmp_path / "b" / "billing-bot.json"
    file_link.symlink_to(real)
    dir_link = tmp_path / "c"
    dir_link.symlink_to(real.parent, target_is_directory=True)
    try:
        for name in (file_link, dir_link / "billing-bot.json"):
            second = Serve(name)
            try:
                with pytest.raises(AssertionError) as info:
                    second.start()  # raises with the stderr when the process exits first
                message = str(info.value)
                assert "in use by another billing-bot" in message, message
                assert f"pid {first.proc.pid if first.proc else '?'}" in message
                assert second.proc is not None and second.proc.returncode == 1
            finally:
                if second.proc is not None and second.proc.poll() is None:
                    second.kill()  # the old code let it start
    finally:
        code, err = first.stop()
    assert code == 0, err
    assert file_link.is_symlink() and real.is_file() and not real.is_symlink()
    assert not (tmp_path / "b" / "billing-bot.lock").exists()  # no second lock was made


async def test_a_store_opened_through_a_symlink_stays_one_store(tmp_path: Path) -> None:
    real = tmp_path / "a" / "billing-bot.json"
    link = tmp_path / "b" / "billing-bot.json"
    link.parent.mkdir()
    real.parent.mkdir()
    link.symlink_to(real)  # dangling until the store is made
    engine = TinyDBEngine(link)
    await engine.open()
    await engine.commit([Op("customers", "c1", {"id": "c1", "name": "Contoso"})])
    await engine.close()  # compacts: the snapshot is renamed into place
    assert link.is_symlink() and real.is_file()
    assert {p.name for p in link.parent.iterdir()} == {"billing-bot.json"}
    engine = TinyDBEngine(real)
    await engine.open()
    try:
        assert engine.peek("customers", "c1") == {"id": "c1", "name": "Contoso"}
    finally:
        await engine.close()


async def test_chat_through_a_symlink_finds_the_serve_that_owns_the_store(
    tmp_path: Path,
) -> None:
    real = tmp_path / "a" / "billing-bot.json"
    link = tmp_path / "b" / "billing-bot.json"
    link.parent.mkdir()
    owner = TinyDBEngine(real)
    await owner.open()
    link.symlink_to(real)
    try:
        owner.set_lock_info({"url": "http://127.0.0.1:1"})
        store, url = await open_store_or_serve(link)
        if store is not None:
            await store.close()
        assert store is None and url == "http://127.0.0.1:1"
    finally:
        await owner.close()


# ---- item 9: the store cannot be opened ------------------------------------------
def _parent_is_a_file(tmp_path: Path) -> tuple[Path, str]:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    return blocker / "data" / "billing-bot.json", "Not a directory"


def _disk_full(tmp_path: Path) -> tuple[Path, str]:
    """Writes to /dev/full fail with ENOSPC, even for root: the lock file is one."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    db = tmp_path / "data" / "billing-bot.json"
    db.parent.mkdir()
    (db.parent / "billing-bot.lock").symlink_to("/dev/full")
    return db, "No space left on device"


@pytest.mark.parametrize("cause", [_parent_is_a_file, _disk_full], ids=["ENOTDIR", "ENOSPC"])
def test_serve_names_the_store_when_it_cannot_be_opened(tmp_path: Path, cause: object) -> None:
    assert callable(cause)
    db, os_error = cause(tmp_path)
    port = free_port()
    proc = run_serve(db, port)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "cannot listen" not in proc.stderr, proc.stderr
    assert f"cannot open the store {db}" in proc.stderr, proc.stderr
    assert os_error in proc.stderr, proc.stderr


async def test_the_open_error_is_a_storage_error_naming_the_store(tmp_path: Path) -> None:
    """``chat`` and the other commands print StorageError: an OSError would be a traceback."""
    db, os_error = _parent_is_a_file(tmp_path)
    with pytest.raises(StorageError) as info:
        await open_store_or_serve(db)
    assert str(db) in str(info.value) and os_error in str(info.value)


def test_a_port_in_use_still_says_cannot_listen(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_serve(tmp_path / "billing-bot.json", port)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
