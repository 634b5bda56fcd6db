"""The ``billing-bot`` command: ``serve``, ``chat`` and the maintenance commands.

``receivables import FILE.csv`` (like ``chat``) talks to a running ``serve``
over loopback when one owns the store, and opens the store itself otherwise.
``store check`` and ``store repair --to NEW`` only read the store (BOT_DB).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from bot.config import ConfigError, Settings, load_settings
from bot.i18n import _, use_locale
from bot.kernel.model import Reply
from bot.outbound import client_timeout
from bot.storage import StorageError, Store, StoreLocked, open_store, open_store_or_serve
from bot.storage.tinydb_engine import StoreUnavailable

log = logging.getLogger("billing-bot")
T = TypeVar("T")

# Commands that open (or check) a store: the flow modules are loaded first.
STORE_COMMANDS = frozenset({"serve", "chat", "reminders", "demo-data", "receivables", "store"})


class CommandFailed(Exception):
    """A maintenance command could not finish; its message is printed after ``billing-bot:``."""


async def through_serve_or_store(
    settings: Settings,
    *,
    route: str,
    directly: Callable[[Store], Awaitable[T]],
    from_body: Callable[[dict[str, Any]], T],
    params: dict[str, str] | None = None,
    payload: dict[str, Any] | None = None,
    timeout: float = 60.0,
) -> tuple[T, str | None]:
    """Do a command through the ``serve`` that owns the store, else on the store itself.

    One process owns a store (PRODUCT.md): with a ``serve`` running, the command
    goes to its loopback ``route`` (GET with ``params``, or POST with the JSON
    ``payload``) and ``from_body`` reads the answer; without one, ``directly``
    runs on the store, which is closed after. Returns the result and the URL of
    the serve that did it (None: done on the store here); raises
    :class:`CommandFailed` with what to print.
    """
    try:
        store, url = await open_store_or_serve(settings.db_path)
    except StorageError as exc:
        raise CommandFailed(str(exc)) from None
    if url is not None:
        try:
            async with aiohttp.ClientSession(timeout=client_timeout(timeout)) as http:
                method = "POST" if payload is not None else "GET"
                async with http.request(
                    method, f"{url}{route}", params=params, json=payload
                ) as resp:
                    body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise CommandFailed(f"cannot reach the serve at {url}: {exc}") from None
        if resp.status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise CommandFailed(str(error or f"HTTP {resp.status}"))
        return from_body(body), url
    assert store is not None
    try:
        await apply_config(settings, store)
        return await directly(store), None
    finally:
        await store.close()


async def apply_config(settings: Settings, store: Store) -> None:
    """A store this process opened: the config reaches the people stored in it first."""
    from conversations.directory import Directory

    await Directory(store, settings).apply_config()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="billing-bot",
        description="The billing-support desk of a Microsoft CSP partner, in chat.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the bot server (Slack, Teams, local chat, health)")
    serve.add_argument("--host", help="address to bind (HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PORT, default 3978)")
    chat = sub.add_parser("chat", help="chat with the desk in this terminal")
    chat.add_argument("--as", dest="user", default=None, help="who you are (default: $USER)")
    chat.add_argument("--locale", default=None, help="reply language: en or zh_CN")
    sub.add_parser("doctor", help="check this deployment's settings and say what to fix")
    sub.add_parser("demo-data", help="fill an empty store with a realistic sample desk")
    rem = sub.add_parser(
        "reminders", help="what is due for someone, now or at a given time, and why"
    )
    rem.add_argument("--as", dest="user", default=None, help="whose reminders (default: $USER)")
    rem.add_argument("--at", default=None, help="an ISO time, e.g. 2026-11-25T09:30:00+08:00")
    rec = sub.add_parser("receivables", help="receivables for the collections policy")
    rec_sub = rec.add_subparsers(dest="receivables_command", required=True)
    imp = rec_sub.add_parser(
        "import", help="import a receivables CSV; bad rows are reported with their line numbers"
    )
    imp.add_argument("file", help="the CSV file (UTF-8, header on line 1)")
    imp.add_argument("--as", dest="user", default=None, help="who imports, for the audit log")
    st = sub.add_parser("store", help="check the store's files, or write a repaired copy")
    st_sub = st.add_subparsers(dest="store_command", required=True)
    st_sub.add_parser(
        "check", help="check the snapshot and every journal line (read-only; exit 1 if damaged)"
    )
    rep = st_sub.add_parser(
        "repair",
        help="write a new store with the snapshot and every good journal line; "
        "the original is left as it is",
    )
    rep.add_argument("--to", required=True, metavar="NEW", help="the new store's path (.json)")
    cp = st_sub.add_parser(
        "copy",
        help="copy a whole store between TinyDB and PostgreSQL (into an empty store, "
        "or resuming an unfinished copy); verifies it",
    )
    cp.add_argument(
        "--from", dest="source", required=True, help="a TinyDB path or postgresql:// URL"
    )
    cp.add_argument("--to", dest="target", required=True, help="a TinyDB path or postgresql:// URL")
    cp.add_argument("--batch", type=int, default=500, help=argparse.SUPPRESS)
    mig = sub.add_parser(
        "migrate", help="apply the PostgreSQL schema's pending migrations (BOT_DB=postgresql://…)"
    )
    mig.add_argument(
        "--dry-run", action="store_true", help="list what would be applied, apply nothing"
    )
    from adapters.teams.package import add_arguments as teams_package_arguments

    teams_package_arguments(
        sub.add_parser("teams-package", help="zip the Teams app manifest and icons for upload")
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"billing-bot: config error: {exc}", file=sys.stderr)
        return 2
    if args.command in STORE_COMMANDS or args.command == "teams-package":
        from bot.app.wiring import FLOWS

        # Importing the flow modules declares their tables before a store opens, and
        # their commands (the Teams package's command menu is the declared one).
        assert FLOWS
    if args.command == "serve":
        return serve(settings, args.host, args.port)
    if args.command == "chat":
        return asyncio.run(chat(settings, args.user, args.locale))
    if args.command == "doctor":
        from bot.app.doctor import check, report

        text, code = report(check(settings))
        print(text)
        return code
    if args.command == "reminders":
        return asyncio.run(reminders(settings, args.user, args.at))
    if args.command == "demo-data":
        return asyncio.run(demo_data_command(settings))
    if args.command == "receivables":
        return asyncio.run(receivables_import(settings, args.file, args.user))
    if args.command == "store" and args.store_command == "copy":
        return asyncio.run(store_copy_command(args.source, args.target, args.batch))
    if args.command == "store":
        return store_command(settings, args.store_command, getattr(args, "to", None))
    if args.command == "migrate":
        return asyncio.run(migrate_command(settings, args.dry_run))
    if args.command == "teams-package":
        from adapters.teams.package import run as teams_package

        return teams_package(settings.teams_app_id, args)
    return 2


def serve(settings: Settings, host: str | None, port: int | None) -> int:
    from dataclasses import replace

    from bot.app.server import build_app, describe_channels

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = replace(settings, host=host or settings.host, port=port or settings.port)
    store = open_store(settings.db_path)
    app = build_app(settings, store)
    started = False

    async def _started(_app: web.Application) -> None:
        # Appended last, it runs once every start-up step (the store's open first) is done:
        # an OSError before it is not a listen failure.
        nonlocal started
        started = True

    app.on_startup.append(_started)
    print(
        f"billing-bot serving on http://{settings.host}:{settings.port} (store {settings.db_path})"
    )
    print("channels:\n" + "\n".join(describe_channels(app)), flush=True)
    try:
        web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    except (StoreLocked, StoreUnavailable) as exc:
        print(f"billing-bot: {exc}", file=sys.stderr)  # they name the store themselves
        return 1
    except StorageError as exc:
        print(f"billing-bot: cannot open the store: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if not started:
            print(f"billing-bot: cannot start: {exc}", file=sys.stderr)
        else:
            print(
                f"billing-bot: cannot listen on {settings.host}:{settings.port}: {exc}",
                file=sys.stderr,
            )
        return 1
    return 0


def store_command(settings: Settings, command: str, to: str | None) -> int:
    """``store check`` (exit 0 healthy, 1 damaged) and ``store repair --to NEW``.

    Both only read the store at BOT_DB; ``check`` takes no lock, so it can look
    at the store of a running serve.
    """
    from bot.storage.tinydb_engine import check_store, repair_store

    if settings.db_path == ":memory:":
        print("billing-bot: BOT_DB is :memory:, there is no store file", file=sys.stderr)
        return 2
    if command == "check":
        try:
            healthy, report = check_store(settings.db_path)
        except OSError as exc:
            print(f"billing-bot: cannot read the store {settings.db_path}: {exc}", file=sys.stderr)
            return 1
        print("\n".join(report))
        return 0 if healthy else 1
    assert to is not None
    try:
        report = repair_store(settings.db_path, to)
    except StorageError as exc:
        print(f"billing-bot: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"billing-bot: cannot write the repaired store {to}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report))
    return 0


async def store_copy_command(source: str, target: str, batch: int) -> int:
    """``billing-bot store copy --from FROM --to TO`` (bot/storage/copy.py); prints what it did."""
    from bot.storage.copy import copy_between

    try:
        await copy_between(source, target, batch=batch, say=print)
    except StorageError as exc:
        print(f"billing-bot: {exc}", file=sys.stderr)
        return 1
    return 0


async def migrate_command(settings: Settings, dry_run: bool) -> int:
    """``billing-bot migrate [--dry-run]``: bring the PostgreSQL schema up to this version.

    A serve applies them at start too (under the same advisory lock); this is for
    doing it ahead of a deploy, or seeing what a deploy would do.
    """
    from bot.storage import is_postgres_url
    from bot.storage.pg_migrate import SCHEMA_VERSION, migrate_url, safe_url

    if not is_postgres_url(settings.db_path):
        print(
            f"billing-bot: migrate is for a PostgreSQL store (BOT_DB=postgresql://…); "
            f"{settings.db_path} is a TinyDB store, which upgrades itself when it opens",
            file=sys.stderr,
        )
        return 2
    try:
        before, pending = await migrate_url(settings.db_path, dry_run=dry_run)
    except StorageError as exc:
        print(f"billing-bot: {exc}", file=sys.stderr)
        return 1
    where = safe_url(settings.db_path)
    if not pending:
        print(
            f"{where}: schema version {before}, up to date "
            f"(this billing-bot knows {SCHEMA_VERSION})"
        )
        return 0
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
    if dry_run:
        print(f"{where}: schema version {before}; would apply {names} (dry run: nothing applied)")
    else:
        print(f"{where}: schema version {before} -> {pending[-1].version}; applied {names}")
    return 0


async def chat(settings: Settings, user: str | None, locale: str | None) -> int:
    import getpass

    from adapters.local.chat import ChatSession, http_sender, message_for, run_terminal
    from bot.app.wiring import build_runtime
    from bot.kernel.serialize import reply_from_dict

    name = user or getpass.getuser() or "me"
    try:
        store, url = await open_store_or_serve(settings.db_path)
    except StorageError as exc:
        print(f"billing-bot: {exc}", file=sys.stderr)
        return 1
    if url is not None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            try:
                async with http.get(f"{url}/local/inbox", params={"user": name}) as resp:
                    body = await resp.json()
            except aiohttp.ClientError as exc:
                print(f"billing-bot: cannot reach the serve at {url}: {exc}", file=sys.stderr)
                return 1
            items = body.get("items", [])
            session = ChatSession(http_sender(http, url), name, locale)
            shown = locale or body.get("locale")  # else the person's own language
            with use_locale(shown):
                intro = _(
                    "Connected to the billing-bot at {url} as {name}. Type help, or quit."
                ).format(url=url, name=name)
            intro += _mailbox_text([reply_from_dict(i) for i in items], shown)
            if not await run_terminal(session, sys.stdin, sys.stdout, intro):
                return 1  # the serve stopped: said so, and whether the last line was saved
        return 0
    assert store is not None
    runtime = build_runtime(settings, store)
    try:
        await runtime.desk.directory.apply_config()

        async def send(payload: dict[str, Any]) -> list[Reply]:
            result = await runtime.handle(message_for(payload))
            return result.replies

        session = ChatSession(send, name, locale)
        found = await store.find_user(name)
        items = await runtime.take_mailbox(found.id if found else name)
        locale = locale or (found.locale if found else None)
        with use_locale(locale):
            intro = _("billing-bot (store {path}) — you are {name}. Type help, or quit.").format(
                path=settings.db_path, name=name
            )
        intro += _mailbox_text([reply_from_dict(i) for i in items], locale)
        await run_terminal(session, sys.stdin, sys.stdout, intro)
    finally:
        await store.close()
    return 0


def _mailbox_text(replies: list[Reply], locale: str | None) -> str:
    """What arrived for the person while no chat was open, headed in their language."""
    from adapters.local.render import render_replies

    if not replies:
        return ""
    text, _buttons = render_replies(replies)
    with use_locale(locale):
        head = _("While you were away ({n}):").format(n=len(replies))
    return f"\n\n{head}\n{text}"


async def reminders(settings: Settings, user: str | None, at: str | None) -> int:
    """Print what the scheduler would send to ``user`` by ``at`` (default now), and why."""
    import getpass
    from datetime import datetime

    from bot.app.wiring import build_runtime
    from bot.clock import clock_from_env

    name = user or getpass.getuser()
    clock = clock_from_env()
    try:
        when = datetime.fromisoformat(at) if at else clock.now()
    except ValueError:
        print(
            f"billing-bot: --at {at!r} is not an ISO time like 2026-11-25T09:30:00+08:00",
            file=sys.stderr,
        )
        return 2
    if when.tzinfo is None:
        print("billing-bot: give --at with a time zone offset, e.g. +08:00 or Z", file=sys.stderr)
        return 2
    try:
        lines, _where = await through_serve_or_store(
            settings,
            route="/local/reminders",
            params={"user": name, "at": when.isoformat()},
            from_body=lambda body: list(body["lines"]),
            directly=lambda store: build_runtime(settings, store, clock).reminder_lines(name, when),
        )
    except CommandFailed as exc:
        print(f"billing-bot: {exc}", file=sys.stderr)
        return 1
    if not lines:
        print(f"Nothing would be due for {name} by {when.isoformat()}.")
    for line in lines:
        print(line)
    return 0


async def receivables_import(settings: Settings, path: str, user: str | None) -> int:
    """Import a receivables CSV: through a running serve if there is one, else directly.

    Exit status 0: every row imported; 1: some rows were bad (reported with
    their line numbers, the good ones kept) or the store was unavailable; 2:
    the file could not be read.
    """
    import getpass
    from pathlib import Path

    from bot.clock import clock_from_env
    from bot.domain import DomainError
    from conversations.collections import ImportReport, import_receivables

    name = user or getpass.getuser() or "cli"
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        print(f"billing-bot: {path} is not UTF-8 text; save it as CSV UTF-8", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"billing-bot: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    async def directly(store: Store) -> ImportReport:
        try:
            return await import_receivables(
                store,
                settings,
                text,
                actor=name,
                channel="cli",
                file=file.name,
                now=clock_from_env().now(),
            )
        except DomainError as exc:
            raise CommandFailed(str(exc)) from None

    try:
        report, _where = await through_serve_or_store(
            settings,
            route="/local/receivables",
            payload={"csv": text, "file": file.name, "user": name},
            from_body=ImportReport.from_dict,
            directly=directly,
            timeout=300.0,
        )
    except CommandFailed as exc:
        print(f"billing-bot: {exc}", file=sys.stderr)
        return 1
    print(report.text())
    return 1 if report.errors else 0


async def demo_data_command(settings: Settings) -> int:
    """``billing-bot demo-data``: through a running serve on loopback, else on the store itself."""
    from adapters.web.demo import DemoRefused, counts_text, fill_demo
    from bot.clock import clock_from_env

    async def directly(store: Store) -> dict[str, int]:
        try:
            return await fill_demo(store, settings, clock_from_env().now())
        except DemoRefused as exc:
            raise CommandFailed(str(exc)) from None

    try:
        summary, url = await through_serve_or_store(
            settings,
            route="/local/demo-data",
            payload={},
            from_body=lambda body: dict(body["summary"]),
            directly=directly,
            timeout=120.0,
        )
    except CommandFailed as exc:
        print(f"billing-bot: demo-data: {exc}", file=sys.stderr)
        return 1
    made = counts_text(summary)
    where = f"the serve at {url}" if url else settings.db_path
    print(f"Demo data is in {where}: {made}.")
    if url:
        print(f"Open {url}/dashboard to see the desk.")  # the server it filled, on its port
    else:
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        print(f"Start billing-bot serve and open http://{host}:{settings.port}/dashboard.")
    return 0
