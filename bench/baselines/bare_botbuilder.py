"""Baseline: a bare botbuilder bot that only echoes, on aiohttp like billing-bot.

Run ``python bench/baselines/bare_botbuilder.py --port P`` (loopback: like
billing-bot without ``MICROSOFT_APP_ID``, the Bot Framework's local mode, in
which requests carry no token).

It is the Bot Framework's echo sample on the ``CloudAdapter``: ``POST
/api/messages`` hands the request to ``CloudAdapter.process``, and the bot
answers each message by ``send_activity`` to the activity's ``serviceUrl``
(the fake Bot Connector) before the request is answered, as the sample does.
A card submit (no text) is echoed by its data.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)


class _Config:
    """No app id: the Bot Framework's local (Emulator) mode."""

    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"


class EchoBot(ActivityHandler):
    """Says back what it was sent."""

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        said = activity.text or json.dumps(activity.value, sort_keys=True)
        await turn_context.send_activity(f"Echo: {said}")


def build() -> web.Application:
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(_Config()))
    bot = EchoBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        response = await adapter.process(request, bot)
        return response or web.Response(status=200)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(build(), host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
