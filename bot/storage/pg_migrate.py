"""The PostgreSQL schema's migrations: numbered SQL files in ``bot/storage/migrations/``.

``NNNN_name.sql`` files are applied in order, each in the one transaction that
takes ``pg_advisory_xact_lock`` first: two processes starting together apply
each migration once (the second waits, then finds it applied). What was applied
is in ``schema_migrations`` (version, name, when). Migrations are additive (new
tables, new nullable columns, new indexes), so a process one version behind keeps
serving during a rolling deploy; a process refuses a schema more than one version
newer than it knows (:class:`SchemaTooNew`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.storage.engine import StorageError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
LOCK_KEY = 0x6269_6C6C  # "bill": the advisory lock every migrating process takes
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def known_migrations() -> list[Migration]:
    """Every migration file shipped with this billing-bot, oldest first."""
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = _NAME.fullmatch(path.name)
        if m is None:
            raise StorageError(f"a migration file must be named NNNN_name.sql, not {path.name}")
        out.append(Migration(int(m.group(1)), m.group(2), path.read_text()))
    numbers = [m.version for m in out]
    if numbers != list(range(1, len(out) + 1)):
        raise StorageError(f"the migrations are not numbered 1, 2, 3…: {numbers}")
    return out


SCHEMA_VERSION = len(known_migrations())
"""The schema version this billing-bot knows (its newest migration)."""


def is_postgres_url(where: object) -> bool:
    return str(where).startswith(("postgresql://", "postgres://"))


def safe_url(url: str) -> str:
    """The URL without its password, for messages and ``/healthz``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class SchemaTooNew(StorageError):
    """The database was migrated by a billing-bot more than one version newer."""


_CREATE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def schema_version(conn: Any) -> int:
    """The database's schema version: its newest applied migration (0: none)."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


def check_version(current: int, where: str) -> None:
    """Refuse a schema more than one version newer than this billing-bot knows."""
    if current > SCHEMA_VERSION + 1:
        raise SchemaTooNew(
            f"the database {where} has schema version {current}, but this billing-bot knows "
            f"only up to {SCHEMA_VERSION}: it was migrated by a newer billing-bot; run that "
            "version (a process may be at most one schema version behind)"
        )


async def migrate(conn: Any, where: str, *, dry_run: bool = False) -> tuple[int, list[Migration]]:
    """Apply the pending migrations (none with ``dry_run``); ``(version before, pending)``.

    One transaction under the advisory lock: all pending migrations apply, or none.
    """
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = 0")  # a migration may take its time
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        current = await schema_version(conn)
        check_version(current, where)
        pending = [m for m in known_migrations() if m.version > current]
        if dry_run or not pending:
            return current, pending
        await conn.execute(_CREATE)
        for m in pending:
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
            )
    return current, pending


def run_sync(coro_fn: Any) -> Any:
    """Run ``coro_fn()`` on an event loop of its own thread (callable from sync code and loops)."""
    import asyncio
    import threading

    result: list[Any] = []
    errors: list[BaseException] = []

    def thread() -> None:
        try:
            result.append(asyncio.run(coro_fn()))
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    t = threading.Thread(target=thread, name="pg-migrate")
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return result[0]


async def migrate_url(url: str, *, dry_run: bool = False) -> tuple[int, list[Migration]]:
    """:func:`migrate` on the database at ``url``; StorageError when it cannot be reached."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=15)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise StorageError(f"cannot reach the database {safe_url(url)}: {exc}") from exc
    try:
        return await migrate(conn, safe_url(url), dry_run=dry_run)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StorageError(f"migrating {safe_url(url)} failed: {exc}") from exc
    finally:
        await conn.close()


def schema_status(url: str) -> tuple[int, int]:
    """``(the database's schema version, the newest this billing-bot knows)``."""
    import asyncpg

    async def read() -> int:
        try:
            conn = await asyncpg.connect(url, timeout=15)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise StorageError(f"cannot reach the database {safe_url(url)}: {exc}") from exc
        try:
            return await schema_version(conn)
        finally:
            await conn.close()

    return int(run_sync(read)), SCHEMA_VERSION
