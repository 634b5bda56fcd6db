"""Microsoft Teams through botbuilder: every import of botbuilder stays in this folder.

:func:`mount` adds ``POST /api/messages`` to the bot's aiohttp application and
reports whether the channel is on and why (shown at start and in
``/healthz``). The modules: ``translate`` (activity JSON → neutral message),
``render`` (neutral replies → activities with Adaptive Cards), ``channel``
(the CloudAdapter, the durable request queue's work, DMs and references), ``auth``
(token checks and token fetches off the event loop, timeouts) and
``package`` (``billing-bot teams-package``). See docs/teams.md.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from bot.config import Settings
    from conversations.runtime import Runtime

from adapters.teams.settings import APP_TYPES, OPENID_METADATA_ENV, openid_metadata_problem

log = logging.getLogger(__name__)

__all__ = ["APP_TYPES", "OPENID_METADATA_ENV", "mount", "openid_metadata_problem", "status"]


def status(settings: Settings) -> dict[str, Any]:
    """Whether the Teams channel can run with these settings, and why (no I/O)."""
    from bot.locality import is_loopback

    app_type = (settings.teams_app_type or "MultiTenant").lower()
    if settings.teams_app_id:
        if app_type not in APP_TYPES:
            return {
                "on": False,
                "why": f"MICROSOFT_APP_TYPE must be one of {', '.join(APP_TYPES.values())}",
            }
        if app_type in ("singletenant", "userassignedmsi") and not settings.teams_app_tenant_id:
            return {
                "on": False,
                "why": f"MICROSOFT_APP_TYPE={APP_TYPES[app_type]} needs MICROSOFT_APP_TENANT_ID",
            }
        if app_type != "userassignedmsi" and not settings.teams_app_password:
            return {"on": False, "why": "MICROSOFT_APP_ID is set but MICROSOFT_APP_PASSWORD is not"}
        keys = ""
        metadata = os.environ.get(OPENID_METADATA_ENV, "").strip()
        if metadata:
            problem = openid_metadata_problem(metadata)
            if problem:
                return {"on": False, "why": problem}
            keys = f" (signing keys listed at {metadata})"
        return {
            "on": True,
            "why": f"POST /api/messages; app {settings.teams_app_id} ({APP_TYPES[app_type]}), "
            f"every request's token is verified{keys}",
            "mode": "authenticated",
        }
    if is_loopback(settings.host):
        return {
            "on": True,
            "why": "local (Emulator) mode: MICROSOFT_APP_ID is not set, requests are not "
            "authenticated, so it answers only local requests (loopback peer and Host, no "
            "forwarding header) on a server bound to loopback, and sends answers only to a "
            "loopback serviceUrl",
            "mode": "emulator",
        }
    return {
        "on": False,
        "why": f"MICROSOFT_APP_ID is not set; without it Teams runs only in local (Emulator) "
        f"mode, which needs the server bound to loopback (HOST is {settings.host})",
    }


def mount(app: web.Application, runtime: Runtime, settings: Settings) -> dict[str, Any]:
    """Add ``POST /api/messages`` and the Teams request handler and deliverer; report on/off."""
    from aiohttp import web

    state = status(settings)
    if not state["on"]:
        why = str(state["why"])
        log.warning("Teams channel is off: %s", why)

        async def off(request: web.Request) -> web.Response:
            return web.json_response({"error": f"the Teams channel is off: {why}"}, status=503)

        app.router.add_post("/api/messages", off)
        return state
    from adapters.teams import translate
    from adapters.teams.channel import TeamsChannel

    try:
        channel = TeamsChannel(runtime, settings)
    except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exception for bad settings
        state = {"on": False, "why": f"the Bot Framework settings were refused: {exc}"}
        log.warning("Teams channel is off: %s", state["why"])
        return state
    app.router.add_post("/api/messages", channel.messages)
    runtime.request_handlers["teams"] = channel.work
    runtime.request_routes["teams"] = translate.request_route
    runtime.deliverers["teams"] = channel.deliver
    log.info("Teams channel is on: %s", state["why"])
    return state
