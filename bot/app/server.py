"""``billing-bot serve``: the aiohttp application every channel plugs into.

Routes: ``GET /healthz``; ``POST /local/messages`` (the local chat, loopback
only); ``POST /local/receivables`` (``billing-bot receivables import``, loopback
only). The Slack and Teams adapters add their routes when their credentials
are set. SIGTERM/SIGINT stop it cleanly: storage flushed and unlocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from adapters.web.pages import UPLOAD_PATH, upload_limit
from bot import __version__
from bot.app.wiring import build_runtime
from bot.clock import Clock, clock_from_env
from bot.config import Settings
from bot.kernel.model import Channel
from bot.kernel.serialize import message_from_dict, reply_to_dict
from bot.locality import LOCAL_ONLY, is_local, is_loopback
from bot.storage import StorageError, Store
from conversations.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
HEALTH_PROBE = "healthz:probe"  # the event record /healthz writes to test a failing store
RUNTIME = web.AppKey("runtime", Runtime)
CHANNELS = web.AppKey("channels", dict[str, dict[str, Any]])


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def healthz(request: web.Request) -> web.Response:
    """Status and storage health for anyone; the detail only for a local request or a lead.

    The detail (store path, Slack API URL, case counts, each channel and why) tells
    an outsider where things are and how busy the desk is: it is shown to local
    requests (``bot.locality``) and to a lead logged in to the web page.
    """
    from adapters.web import lead_logged_in

    runtime = request.app[RUNTIME]
    storage = runtime.store.health()
    if not storage.get("ok", True):
        # Unhealthy since a write failed: try one now, so a disk that works again reads
        # healthy at once instead of only after the next request that writes.
        probe = {"expires": runtime.clock.now().isoformat()}  # purged with old event ids
        with contextlib.suppress(StorageError):
            await runtime.store.commit([runtime.store.event_record_op(HEALTH_PROBE, probe)])
        storage = runtime.store.health()
    ok = bool(storage.get("ok", True))
    code = 200 if ok else 503
    status = "ok" if ok else "unhealthy"
    if not (is_local(request) or lead_logged_in(request)):
        return web.json_response({"status": status, "storage": {"ok": ok}}, status=code)
    counts = runtime.store.case_counts()
    body = {
        "status": status,
        "version": __version__,
        "storage": storage,
        "cases": {"total": sum(counts.values()), "by_state": counts},
        "channels": request.app[CHANNELS],
        "paused_destinations": runtime.paused_destinations(),
    }
    return web.json_response(body, status=code)


def local_messages_limit(app: web.Application) -> int:
    """A chat line's body: room for a file the config allows (in base64), and a bit more,
    so that a file just over the limit gets the desk's clear refusal, not a 413."""
    max_bytes = app[RUNTIME].settings.attachment_max_bytes
    return max(MAX_BODY, (max_bytes + 2**20) * 4 // 3 + MAX_BODY)


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is over ``limit`` bytes (read in chunks)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def local_messages(request: web.Request) -> web.Response:
    if not is_local(request):
        return json_error(403, LOCAL_ONLY)
    if request.content_type != "application/json":
        return json_error(415, "send application/json")
    limit = local_messages_limit(request.app)
    body = await read_bounded(request, limit)
    if body is None:
        return json_error(413, f"the body is too large ({limit // 1024} kB at most)")
    too_large = json_error(413, f"the body is too large ({MAX_BODY // 1024} kB at most)")
    try:
        payload = json.loads(body)
        if len(body) > MAX_BODY and not (isinstance(payload, dict) and payload.get("files")):
            return too_large  # the room is for files only: a chat line has the usual limit
        msg = message_from_dict(payload, Channel.LOCAL)
    except (json.JSONDecodeError, UnicodeDecodeError):
        if len(body) > MAX_BODY:
            return too_large
        return json_error(400, "the body is not valid JSON")
    except ValueError as exc:
        return json_error(400, str(exc))
    runtime = request.app[RUNTIME]
    result = await runtime.handle(msg)
    return web.json_response({"replies": [reply_to_dict(r) for r in result.replies]})


async def local_mailbox(request: web.Request) -> web.Response:
    if not is_local(request):
        return json_error(403, LOCAL_ONLY)
    user = request.query.get("user", "").strip()
    if not user:
        return json_error(400, "user is required")
    runtime = request.app[RUNTIME]
    found = await runtime.desk.directory.store.find_user(user)
    items = await runtime.take_mailbox(found.id if found else user)
    # The person's language (their own `language` choice, else the configured one): the
    # terminal chat greets them in it.
    return web.json_response({"items": items, "locale": found.locale if found else None})


async def local_reminders(request: web.Request) -> web.Response:
    from datetime import datetime

    if not is_local(request):
        return json_error(403, LOCAL_ONLY)
    runtime = request.app[RUNTIME]
    try:
        at = datetime.fromisoformat(request.query.get("at", ""))
    except ValueError:
        return json_error(400, "at must be an ISO time with an offset")
    if at.tzinfo is None:
        return json_error(400, "at must be an ISO time with an offset")
    return web.json_response(
        {"lines": await runtime.reminder_lines(request.query.get("user", ""), at)}
    )


MAX_IMPORT_BODY = 32 * 1024 * 1024  # a receivables CSV may be far larger than a chat message


async def local_receivables(request: web.Request) -> web.Response:
    """``billing-bot receivables import`` through the running serve (loopback only)."""
    from conversations.collections import flow_of

    if not is_local(request):
        return json_error(403, LOCAL_ONLY)
    if request.content_type != "application/json":
        return json_error(415, "send application/json")
    body = await read_bounded(request, MAX_IMPORT_BODY)
    if body is None:
        return json_error(413, "the receivables file is too large (32 MB at most)")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return json_error(400, "the body is not valid JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("csv"), str):
        return json_error(400, "csv (the file's text) is required")
    runtime = request.app[RUNTIME]
    report = await flow_of(runtime).import_csv(
        payload["csv"],
        actor=str(payload.get("user") or "cli"),
        channel="cli",
        file=str(payload.get("file") or "receivables.csv"),
    )
    return web.json_response(report.to_dict())


@web.middleware
async def body_limit(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """413 for a declared body over the route's limit, before any handler runs.

    aiohttp refuses an oversized body only when a handler reads it; a route that
    never reads its body (or refuses the request for another reason first) would
    otherwise answer 200 or 4xx to it.
    """
    limit = MAX_BODY
    if request.path == "/local/receivables":
        limit = MAX_IMPORT_BODY
    elif request.path == "/local/messages" and request.content_type == "application/json":
        limit = local_messages_limit(request.app)  # a chat line with a file (base64)
    elif request.path == UPLOAD_PATH:
        limit = upload_limit(request.app[RUNTIME].settings)
    if request.content_length is not None and request.content_length > limit:
        return json_error(413, f"the body is too large ({limit // 1024} kB at most)")
    return await handler(request)


@web.middleware
async def answers_first(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count the request as waiting for its answer: the request worker lets it go first."""
    with request.app[RUNTIME].answering():
        return await handler(request)


def build_app(settings: Settings, store: Store, clock: Clock | None = None) -> web.Application:
    """The application with every route; the store is opened on startup and closed on cleanup."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[body_limit, answers_first])
    runtime = build_runtime(settings, store, clock or clock_from_env())
    app[RUNTIME] = runtime
    app[CHANNELS] = {
        "local": {"on": True, "why": "loopback only: POST /local/messages, billing-bot chat"},
        "slack": {"on": False, "why": "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are not set"},
        "teams": {"on": False, "why": "the Teams adapter is not installed yet"},
    }
    _mount_channels(app, runtime, settings)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/local/messages", local_messages)
    app.router.add_get("/local/inbox", local_mailbox)
    app.router.add_get("/local/reminders", local_reminders)
    app.router.add_post("/local/receivables", local_receivables)
    app.cleanup_ctx.append(_lifecycle)
    return app


def _mount_channels(app: web.Application, runtime: Runtime, settings: Settings) -> None:
    """Let each channel adapter add its routes; each reports whether it is on and why."""
    from adapters import slack, teams
    from adapters import web as web_page

    for name, adapter in (("slack", slack), ("teams", teams), ("web", web_page)):
        mount = getattr(adapter, "mount", None)
        if mount is not None:
            app[CHANNELS][name] = mount(app, runtime, settings)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    await runtime.store.open()
    await runtime.desk.directory.apply_config()  # the config reaches people stored before it
    # The store's in-memory data (the archive index: one entry per case) lives as long as
    # the process. Frozen, the collector's full passes skip it: at 100,000 cases each one
    # would otherwise stop every request for ~0.1 s.
    gc.collect()
    gc.freeze()
    settings = runtime.settings
    host = "127.0.0.1" if not is_loopback(settings.host) else settings.host
    if ":" in host:
        host = f"[{host}]"
    await runtime.store.set_owner_info({"url": f"http://{host}:{settings.port}"})
    runtime.inline_scheduling = False
    tasks = [
        asyncio.create_task(runtime.scheduler_loop(), name="scheduler"),
        asyncio.create_task(runtime.request_worker(), name="inbox"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runtime.close()
        await runtime.store.close()
        log.info("storage flushed and unlocked")


def describe_channels(app: web.Application) -> list[str]:
    return [
        f"  {name}: {'on' if info['on'] else 'off'} — {info['why']}"
        for name, info in app[CHANNELS].items()
    ]
