"""A throw-away PostgreSQL cluster for the tests: initdb in a temp dir, 127.0.0.1, a free port.

``python -m tests.pg.cluster`` starts one and prints its URL (stop it with Ctrl-C); the
tests use :func:`running_cluster` from a session-scoped fixture (``tests/conftest.py``),
unless ``BOT_TEST_POSTGRES_URL`` names a server to use instead.

PostgreSQL's ``initdb`` refuses to run as root: as root, the cluster belongs to the
``postgres`` system user (Debian's ``postgresql`` package makes it) and every server
command runs through ``runuser -u postgres``. Binaries: ``BOT_PG_BIN``, else the newest
``/usr/lib/postgresql/*/bin``, else ``initdb`` on the PATH. Nothing is skipped when the
server cannot start: :class:`ClusterError` says why, and the tests that need it fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DATA_DIRS: dict[str, Path] = {}
"""The data directory of every cluster running now, by URL (for :func:`restart`)."""


class ClusterError(RuntimeError):
    """The throw-away PostgreSQL server could not be started (the message says why)."""


def pg_bin() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    if os.environ.get("BOT_PG_BIN"):
        return Path(os.environ["BOT_PG_BIN"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ClusterError(
        "PostgreSQL's initdb was not found (install Debian's postgresql package: "
        "apt-get install -y postgresql; .ci/run does it), or set BOT_TEST_POSTGRES_URL"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(
            _as_server_user(argv), capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        raise ClusterError(f"{what} failed (exit {proc.returncode}): {proc.stderr or proc.stdout}")


@contextlib.contextmanager
def running_cluster(*, durable: bool = False) -> Iterator[str]:
    """Start a fresh cluster, yield its URL (database ``billing``), then stop and delete it.

    The tests' cluster does not wait for the disk (``fsync``, ``synchronous_commit`` off);
    ``durable`` keeps PostgreSQL's defaults, so a commit returns once its WAL is flushed
    (the storage benchmark measures that, as it measures TinyDB with fsync on).
    """
    bindir = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="billing-bot-pg-"))
    data = root / "data"
    sockets = root / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        try:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
        except (LookupError, OSError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise ClusterError(
                f"running as root, the cluster needs the postgres system user: {exc}"
            ) from exc
        root.chmod(0o755)
    port = free_port()
    started = False
    try:
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} "
            f"-c unix_socket_directories={sockets} -c max_connections=200 -c shared_buffers=64MB"
        )
        if not durable:
            options += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            "starting PostgreSQL",
        )
        started = True
        _run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "billing",
            ],
            "createdb",
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/billing"
        DATA_DIRS[url] = data
        try:
            yield url
        finally:
            DATA_DIRS.pop(url, None)
    except ClusterError as exc:
        log = root / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise ClusterError(f"{exc}\n{tail}".strip()) from exc
    finally:
        if started:
            with contextlib.suppress(ClusterError):
                _run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    "stopping PostgreSQL",
                )
        shutil.rmtree(root, ignore_errors=True)


def restart(url: str) -> None:
    """``pg_ctl restart -m fast``: every connection dropped, the server back on its port."""
    _run(
        [
            str(pg_bin() / "pg_ctl"),
            "-D",
            str(DATA_DIRS[url]),
            "-l",
            str(DATA_DIRS[url].parent / "server.log"),
            "-m",
            "fast",
            "-w",
            "restart",
        ],
        "restarting PostgreSQL",
    )


def main() -> None:
    import signal

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Also in the background (where SIGINT may be ignored): stop, then delete the cluster.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with running_cluster() as url:
        print(url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
