"""Slack: slash command, events and interactivity through slack-bolt (see docs/slack.md).

``mount`` is called by ``bot.app.server.build_app``. The channel is on only when
``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` are set; it then adds
``POST /slack/events``, the request handler and the DM deliverer, and closes
its shared HTTP session when the server stops. Everything that imports
slack_bolt or slack_sdk stays in this folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from bot.config import Settings
    from conversations.runtime import Runtime

ROUTE = "/slack/events"


def mount(app: web.Application, runtime: Runtime, settings: Settings) -> dict[str, Any]:
    """Add the Slack routes when the credentials are set; say whether the channel is on."""
    missing = [
        name
        for name, value in (
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
        )
        if not value
    ]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return {"on": False, "why": f"{' and '.join(missing)} {verb} not set"}
    from adapters.slack.channel import SlackChannel
    from adapters.slack.translate import request_route

    slack = SlackChannel(runtime, settings)
    app.router.add_post(ROUTE, slack.http)
    app.on_startup.append(slack.on_startup)
    app.on_cleanup.append(slack.on_cleanup)
    runtime.request_handlers["slack"] = slack.work
    runtime.request_routes["slack"] = request_route
    runtime.deliverers["slack"] = slack.deliver
    return {"on": True, "why": f"POST {ROUTE}; Web API at {slack.base_url}"}


__all__ = ["ROUTE", "mount"]
