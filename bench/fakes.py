"""The load benchmark's outside world: the fake Slack Web API and the fake Bot Connector.

Run ``python bench/fakes.py --slack-port P --teams-port Q`` (127.0.0.1 only).

These are the test suite's own fakes, unchanged: ``FakeSlack`` from
``tests/slack/slackfake.py`` (Web API methods and ``response_url`` s) and
``FakeConnector`` from ``tests/teams/conftest.py`` (``/v3/conversations/…``).
For a long run two things are added around them:

* a middleware counts every request by kind (``GET /bench/stats`` answers the
  counts as JSON), so the load generator can tell when the bot has sent the
  answers to what it was asked;
* what the fakes record for tests (calls, messages) is dropped every second,
  so memory and their linear look-ups stay small however long the run.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.slack.slackfake import FakeSlack  # noqa: E402
from tests.teams.conftest import FakeConnector  # noqa: E402

LOOPBACK = "127.0.0.1"


class Counts:
    """Requests the fakes answered, by kind (shared by both apps)."""

    def __init__(self) -> None:
        self.by_kind: Counter[str] = Counter()


STATS = web.AppKey("stats", Counts)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def kind_of(request: web.Request) -> str:
    """``slack:chat.postMessage``, ``slack:response``, ``teams:POST reply``, … (for counting)."""
    path = request.path
    if path.startswith("/api/"):
        return "slack:" + path[len("/api/") :]
    if path.startswith("/response/"):
        return "slack:response"
    if re.fullmatch(r"/v3/conversations/[^/]+/activities/[^/]+", path):
        return f"teams:{request.method} activity/{{id}}"
    if path.startswith("/v3/conversations"):
        suffix = re.sub(r"^/v3/conversations(/[^/]+)?", "", path)
        return f"teams:{request.method} conversations{suffix or ''}"
    return "other"


@web.middleware
async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path != "/bench/stats":
        request.app[STATS].by_kind[kind_of(request)] += 1
    return await handler(request)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[STATS].by_kind))


def counted(app: web.Application, counts: Counts) -> web.Application:
    """``app`` with the counting middleware and ``GET /bench/stats`` added (before it starts)."""
    app.middlewares.append(count)
    app[STATS] = counts
    app.router.add_get("/bench/stats", stats)
    return app


async def forget(slack: FakeSlack, connector: FakeConnector) -> None:
    """Drop what the fakes recorded, every second (the counts stay)."""
    while True:
        await asyncio.sleep(1.0)
        slack.calls.clear()
        slack.messages.clear()
        slack.views.clear()
        slack.hits.clear()
        connector.calls.clear()


async def serve(slack_port: int, teams_port: int) -> None:
    slack = FakeSlack()
    slack.url = f"http://{LOOPBACK}:{slack_port}"
    connector = FakeConnector()
    connector.url = f"http://{LOOPBACK}:{teams_port}"
    counts = Counts()
    runners = []
    apps = [(counted(slack.app, counts), slack_port)]
    apps.append((counted(connector.app(), counts), teams_port))
    for app, port in apps:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, port).start()
        runners.append(runner)
    print(f"fake Slack on {slack.url}, fake Bot Connector on {connector.url}", flush=True)
    try:
        await forget(slack, connector)
    finally:
        for runner in runners:
            await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slack-port", type=int, required=True)
    parser.add_argument("--teams-port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.slack_port, args.teams_port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
