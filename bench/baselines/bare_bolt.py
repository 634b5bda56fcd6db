"""Baseline: a bare slack-bolt ``AsyncApp`` whose ``/billing`` handler only acks.

Run ``python bench/baselines/bare_bolt.py --port P`` with ``SLACK_BOT_TOKEN``,
``SLACK_SIGNING_SECRET`` and ``SLACK_API_URL`` set (as for ``billing-bot serve``).

Mounted on aiohttp the way billing-bot mounts its own bolt app: one
``POST /slack/events`` route that converts the request with bolt's aiohttp
adapter (``to_bolt_request``), dispatches it (signature verification and the
rest of bolt's middleware), and converts the answer back. It acks the slash
command and every button click and does nothing else: what the bot's ack path
costs on top of this is what the load benchmark shows.
"""

from __future__ import annotations

import argparse
import os
import re

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build(token: str, secret: str, api_url: str | None) -> web.Application:
    client = AsyncWebClient(token=token, base_url=api_url or AsyncWebClient.BASE_URL)
    bolt = AsyncApp(client=client, signing_secret=secret, process_before_response=True)

    @bolt.command("/billing")
    async def billing(ack: AsyncAck) -> None:
        await ack()

    @bolt.action(re.compile(".*"))
    async def click(ack: AsyncAck) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        response = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build(
        os.environ["SLACK_BOT_TOKEN"],
        os.environ["SLACK_SIGNING_SECRET"],
        os.environ.get("SLACK_API_URL"),
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
