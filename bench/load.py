"""Load benchmark: billing-bot side by side with bare slack-bolt and bare botbuilder.

Run ``.venv/bin/python bench/load.py`` (``--cases 100000 --concurrency 50
--requests 3000 --rounds 2 --duration 60`` are the defaults; ``make bench``
runs it).

In one invocation, on 127.0.0.1 only:

1. the fake Slack Web API and fake Bot Connector (``bench/fakes.py``: the test
   suite's fakes) start in their own process;
2. a store of ``--cases`` cases is seeded (``bench/seed_store.py``), unless
   ``--store DIR`` names one seeded before;
3. a real ``billing-bot serve`` subprocess starts on it (``BOT_DB``,
   ``BOT_CONFIG`` from the seed; ``SLACK_API_URL`` and every activity's
   ``serviceUrl`` point at the fakes; Teams in local mode on loopback), and
   so do the two baselines (``bench/baselines/``): a bare bolt ``AsyncApp``
   whose ``/billing`` handler only acks, and the Bot Framework echo bot, each
   mounted on aiohttp;
4. **Slack**: correctly signed ``POST /slack/events`` requests, a fixed mix of
   ``/billing status BILL-n`` (half a live case, half any case, archive
   included), ``/billing list mine`` and ``take`` button clicks on case cards
   (``block_actions``; each live case's first click is fresh, later ones are
   double clicks on an outdated card), from the seeded agents;
5. **Teams**: ``POST /api/messages`` activities, ``status BILL-n`` typed in a
   personal chat and card submits (the ``take`` button's ``Action.Submit``).

Each server gets the same request stream. In each of ``--rounds`` rounds the
servers take turns (ours, then the baseline, per channel), so both see the
same machine. A run sends ``--requests`` requests (the first round after a
warm-up of a tenth of that), ``--concurrency`` at a time, and stops early
after ``--duration`` seconds. It reports requests/s and p50/p95/p99 of the time
to the HTTP answer; then it waits until the server's answers have reached the
fakes (no new call for 2 s) and reports how many went out and how fast: the
bot acks first and works after, so the ack rate alone would hide a backlog.
It also reports each server's CPU time per request (``/proc/PID/stat``, from
the run's start until its answers were out), the serve's peak RSS
(``VmHWM``), ours against the baseline with their ratios, and the verdict on
each target. Requests are bounded in count and time; every address is
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.seed_store import MANIFEST_NAME, seed  # noqa: E402
from bench.serveproc import LOOPBACK, ServerProcess, free_port, serve_command  # noqa: E402
from bench.storage import LEAD_ID, LEAD_SLACK  # noqa: E402
from tests.slack.slackfake import SECRET, TOKEN, load, sign  # noqa: E402

BENCH = Path(__file__).resolve().parent
TEAMS_BOT = {"id": "28:bench-bot", "name": "Billing Desk"}
SLACK_ANSWERS = ("slack:response", "slack:chat.postMessage", "slack:chat.update")
QUIET_S = 2.0  # no new answer for this long: the bot's backlog is worked off
DRAIN_LIMIT_S = 120.0

DOUBLE_CLICKS = 0.1  # share of clicks that repeat the previous click on the same card

# A request: (body, content type, extra headers), built when it is sent (fresh signature).
Request = tuple[bytes, str, dict[str, str]]
Maker = Callable[[int], Request]


# ---- the requests ----------------------------------------------------------------


def card_blocks_sample() -> list[dict[str, Any]]:
    """The Block Kit blocks of a real case card (what a click's ``message`` carries)."""
    from adapters.slack.translate import card_blocks
    from bot.app.wiring import FLOWS
    from bot.domain import Actor, Case, Category, Kind, Role
    from conversations.cards import case_card

    assert FLOWS  # the flow modules declare their commands (Escalate) as in a serve

    now = datetime.now(UTC)
    actor = Actor("u-agent0", Role.AGENT, "slack")
    case = Case.new(
        1042,
        kind=Kind.QUESTION,
        customer_id="customer 1",
        category=Category.INVOICE,
        description="We were charged twice for Microsoft 365 E3 on the last invoice.",
        actor=actor,
        now=now,
    )
    case.set_owner("u-agent1", actor, now)
    case.add_note("Checked Partner Center: proration for seats added mid-month.", actor, now)
    viewer = Actor("u-agent2", Role.AGENT, "slack")
    card = case_card(case, None, viewer, "UTC", {"u-agent1": "Agent 1"}, now, None)
    return card_blocks(card)


@dataclass
class Traffic:
    """Builds the benchmark's requests from a seed manifest; the same stream for every server."""

    manifest: dict[str, Any]
    slack_url: str
    teams_url: str
    seed_value: int = 1
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.agents: list[dict[str, str]] = self.manifest["agents"]
        self.cases = int(self.manifest["cases"])
        self.live = [c["number"] for c in self.manifest["live"]]
        takeable = [
            c for c in self.manifest["live"] if c["state"] in ("open", "in_progress", "reopened")
        ]
        # Half the takeable cases are clicked on Slack, the other half on Teams.
        self.slack_clicks = takeable[0::2] or takeable
        self.teams_clicks = takeable[1::2] or takeable
        # What each clicked case's card shows now (stage, owner, state), as the clicks so far
        # left it: a click carries the card's stage, so it is fresh unless it repeats one.
        self._cards = {
            int(c["number"]): {"stage": c["stage"], "owner": c["owner"], "state": c["state"]}
            for c in takeable
        }
        self.team = str(self.manifest["slack_team"])
        self.tenant = str(self.manifest["teams_tenant"])
        self._blocks = card_blocks_sample()

    # -- common
    def _rng(self, i: int, salt: str) -> random.Random:
        return random.Random(f"{self.seed_value}:{salt}:{i}")

    def _case(self, rng: random.Random) -> int:
        """Half the time a live case, else any case of the store (mostly archived)."""
        if self.live and rng.random() < 0.5:
            return int(rng.choice(self.live))
        return rng.randint(1, self.cases)

    def _clicker(self, owner: str | None, rng: random.Random) -> dict[str, str]:
        others = [a for a in self.agents if a["id"] != owner]
        return rng.choice(others) if others else {"id": LEAD_ID, "slack": LEAD_SLACK, "teams": ""}

    def _take(
        self, pool: list[dict[str, Any]], i: int, rng: random.Random
    ) -> tuple[int, int, dict[str, str]]:
        """The next Take click on a case of ``pool``: (case number, card stage, clicker).

        Someone other than the owner takes the case from the card as it is now
        (the stage moves on by 2 from open, by 1 from in progress); one click in
        ``DOUBLE_CLICKS`` is the previous click on that case sent again.
        """
        number = int(pool[i % len(pool)]["number"])
        card = self._cards[number]
        last = card.get("last")
        if last is not None and rng.random() < DOUBLE_CLICKS:
            return number, int(last[1]), last[0]
        clicker = self._clicker(card["owner"], rng)
        stage = int(card["stage"])
        card["stage"] = stage + (2 if card["state"] in ("open", "reopened") else 1)
        card.update(state="in_progress", owner=clicker["id"], last=(clicker, stage))
        return number, stage, clicker

    # -- Slack
    def slack(self, i: int) -> Request:
        """Request ``i`` of the Slack stream: 2 status, 1 list mine, 1 click in every 4."""
        rng = self._rng(i, "slack")
        kind = i % 4
        agent = rng.choice(self.agents)
        if kind in (0, 2):
            return self._command(f"status BILL-{self._case(rng)}", agent, in_channel=kind == 2)
        if kind == 1:
            return self._command("list mine", agent, in_channel=False)
        number, stage, clicker = self._take(self.slack_clicks, i // 4, rng)
        return self._click(number, stage, clicker)

    def _signed(self, body: str) -> Request:
        return body.encode(), "application/x-www-form-urlencoded", sign(body, SECRET)

    def _command(self, text: str, agent: dict[str, str], *, in_channel: bool) -> Request:
        n = next(self._ids)
        fields = load("slash_command")
        fields.update(
            team_id=self.team,
            team_domain="partner",
            channel_id="CBILLING" if in_channel else "D" + agent["slack"],
            channel_name="billing" if in_channel else "directmessage",
            user_id=agent["slack"],
            user_name=agent["id"],
            text=text,
            response_url=f"{self.slack_url}/response/{n}",
            trigger_id=f"{n}.{uuid.uuid4().int % 10**12}.bench",
        )
        return self._signed(urllib.parse.urlencode(fields))

    def _click(self, number: int, stage: int, agent: dict[str, str]) -> Request:
        n = next(self._ids)
        body = load("block_actions")
        channel = "D" + agent["slack"]
        ts = f"1700000000.{number:06d}"
        body["user"] = {
            "id": agent["slack"],
            "username": agent["id"],
            "name": agent["id"],
            "team_id": self.team,
        }
        body["team"] = {"id": self.team, "domain": "partner"}
        # The card of an earlier "/billing status" in the clicker's DM: an ephemeral message.
        body["container"] = {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": True,
        }
        body["channel"] = {"id": channel, "name": "directmessage"}
        # Slack sends the clicked message whole: the case card's blocks.
        body["message"] = {
            "type": "message",
            "ts": ts,
            "text": f"BILL-{number}",
            "blocks": self._blocks,
        }
        body["trigger_id"] = f"{n}.{uuid.uuid4().int % 10**12}.bench"
        body["response_url"] = f"{self.slack_url}/response/{n}"
        body["actions"] = [
            {
                "action_id": "take",
                "block_id": "b1",
                "text": {"type": "plain_text", "text": "Take", "emoji": True},
                "value": f"take|BILL-{number}|{stage}",
                "style": "primary",
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ]
        return self._signed(urllib.parse.urlencode({"payload": json.dumps(body)}))

    # -- Teams
    def teams(self, i: int) -> Request:
        """Activity ``i`` of the Teams stream: 3 typed status, 2 card submits in every 5."""
        rng = self._rng(i, "teams")
        if i % 5 < 3:
            agent = rng.choice(self.agents)
            return self._activity(agent, text=f"status BILL-{self._case(rng)}")
        number, stage, agent = self._take(self.teams_clicks, i // 5, rng)
        value = {"action": "take", "case_id": f"BILL-{number}", "version": stage, "value": None}
        return self._activity(agent, value=value, reply_to=f"act-card-{number}")

    def _activity(
        self,
        agent: dict[str, str],
        *,
        text: str = "",
        value: dict[str, Any] | None = None,
        reply_to: str | None = None,
    ) -> Request:
        key = agent["id"].removeprefix("u-")
        member = {"id": f"29:1{key}", "name": agent["id"], "aadObjectId": agent["teams"]}
        body: dict[str, Any] = {
            "type": "message",
            "id": f"1{uuid.uuid4().int % 10**15:015d}",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "localTimezone": "Europe/Berlin",
            "serviceUrl": f"{self.teams_url}/",
            "channelId": "msteams",
            "from": member,
            "conversation": {
                "id": f"a:1dm-{key}",
                "conversationType": "personal",
                "tenantId": self.tenant,
            },
            "recipient": TEAMS_BOT,
            "entities": [{"type": "clientInfo", "locale": "en-US", "timezone": "Europe/Berlin"}],
            "channelData": {"tenant": {"id": self.tenant}},
            "locale": "en-US",
            "textFormat": "plain",
            "text": text,
        }
        if value is not None:
            body["value"] = value
        if reply_to is not None:
            body["replyToId"] = reply_to
        return json.dumps(body).encode(), "application/json", {}


# ---- driving one server ---------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of process ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


@dataclass
class Run:
    """The measured runs of one server on one channel (all rounds together)."""

    channel: str
    server: str
    requests: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list, repr=False)
    answers: int = 0  # calls the server made to the fakes for these requests
    answer_seconds: float = 0.0  # from each run's first request to its last answer, summed
    cpu_s: float = 0.0  # the server's CPU time, from each run's start until its answers were out
    sys_s: float = 0.0  # the part of it spent in the kernel (fsync, sockets)
    burst_cpu_s: float = 0.0  # the server's CPU time while the requests were being sent
    rss_peak_mb: float | None = None
    rounds: list[dict[str, float]] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if not s.startswith("2"))

    def summary(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "server": self.server,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(percentile(self.latencies, 0.50), 2),
            "p95_ms": round(percentile(self.latencies, 0.95), 2),
            "p99_ms": round(percentile(self.latencies, 0.99), 2),
            "max_ms": round(max(self.latencies, default=0.0), 2),
            "errors": self.errors,
            "statuses": self.statuses,
            "answers": self.answers,
            "answers_per_s": round(self.answers / self.answer_seconds, 1)
            if self.answer_seconds
            else None,
            "cpu_ms_per_request": round(1000 * self.cpu_s / self.requests, 3)
            if self.requests
            else None,
            "sys_ms_per_request": round(1000 * self.sys_s / self.requests, 3)
            if self.requests
            else None,
            "burst_cpu_ms_per_request": round(1000 * self.burst_cpu_s / self.requests, 3)
            if self.requests
            else None,
            "rss_peak_mb": round(self.rss_peak_mb, 1) if self.rss_peak_mb else None,
            "rounds": self.rounds,
        }


async def drive(
    session: aiohttp.ClientSession,
    url: str,
    make: Maker,
    *,
    start: int,
    total: int,
    concurrency: int,
    duration: float,
) -> tuple[list[float], Counter[str], float]:
    """Send requests ``start .. start+total-1`` to ``url``, ``concurrency`` at a time.

    Bounded in count (``total``) and time (no new request after ``duration`` s).
    Returns each request's time to the HTTP answer in ms, the statuses, and the
    wall time.
    """
    counter = itertools.count(start)
    end = start + total
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    began = time.perf_counter()
    deadline = began + duration

    async def worker() -> None:
        while True:
            i = next(counter)
            if i >= end or time.perf_counter() > deadline:
                return
            body, content_type, headers = make(i)
            sent = time.perf_counter()
            try:
                async with session.post(
                    url, data=body, headers={"Content-Type": content_type, **headers}
                ) as resp:
                    await resp.read()
                    status = str(resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[status] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - began


async def fake_counts(session: aiohttp.ClientSession, stats_url: str) -> Counter[str]:
    async with session.get(stats_url) as resp:
        return Counter(await resp.json())


def answers_of(counts: Counter[str], channel: str) -> int:
    if channel == "slack":
        return sum(counts[k] for k in SLACK_ANSWERS)
    return sum(n for k, n in counts.items() if k.startswith("teams:") and "members" not in k)


async def wait_answers(
    session: aiohttp.ClientSession,
    stats_url: str,
    channel: str,
    since: float,
    quiet: float = QUIET_S,
) -> tuple[int, float]:
    """Wait until no answer reached the fakes for ``quiet`` s; (answers, last answer - since)."""
    last = answers_of(await fake_counts(session, stats_url), channel)
    last_change = time.perf_counter()
    limit = last_change + DRAIN_LIMIT_S
    while time.perf_counter() - last_change < quiet and time.perf_counter() < limit:
        await asyncio.sleep(0.1)
        now = answers_of(await fake_counts(session, stats_url), channel)
        if now != last:
            last, last_change = now, time.perf_counter()
    return last, max(0.0, last_change - since)


@dataclass
class Target:
    """One server and the stream it is sent."""

    process: ServerProcess
    run: Run
    url: str
    make: Maker
    stats_url: str
    warmed: bool = False


async def one_round(target: Target, args: argparse.Namespace, offset: int) -> None:
    """Warm up (first round only), one measured run, then wait for the answers to go out."""
    run = target.run
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if not target.warmed:
            await drive(
                session,
                target.url,
                target.make,
                start=10**9,
                total=max(1, args.requests // 10),
                concurrency=args.concurrency,
                duration=args.duration,
            )
            target.warmed = True
        await wait_answers(session, target.stats_url, run.channel, time.perf_counter(), args.quiet)
        before = answers_of(await fake_counts(session, target.stats_url), run.channel)
        cpu_before = cpu_seconds(target.process.pid)
        began = time.perf_counter()
        latencies, statuses, seconds = await drive(
            session,
            target.url,
            target.make,
            start=offset,
            total=args.requests,
            concurrency=args.concurrency,
            duration=args.duration,
        )
        burst_cpu = sum(cpu_seconds(target.process.pid)) - sum(cpu_before)
        answered, last = await wait_answers(
            session, target.stats_url, run.channel, began, args.quiet
        )
        user_after, sys_after = cpu_seconds(target.process.pid)
        cpu = user_after + sys_after - sum(cpu_before)
        run.sys_s += sys_after - cpu_before[1]
    answers = answered - before
    run.requests += len(latencies)
    run.seconds += seconds
    run.latencies += latencies
    for status, n in statuses.items():
        run.statuses[status] = run.statuses.get(status, 0) + n
    run.answers += answers
    run.answer_seconds += last if answers else 0.0
    run.cpu_s += cpu
    run.burst_cpu_s += burst_cpu
    rps = len(latencies) / seconds if seconds else 0.0
    p99 = percentile(latencies, 0.99)
    run.rounds.append({"rps": round(rps, 1), "p99_ms": round(p99, 2)})
    print(
        f"  {run.channel:5} {run.server:15} {len(latencies):6,} req in {seconds:5.1f} s: "
        f"{rps:7.1f} req/s, p50 {percentile(latencies, 0.5):6.1f} ms, p99 {p99:6.1f} ms, "
        f"errors {sum(n for s, n in statuses.items() if not s.startswith('2'))}, "
        f"{answers} answers out"
        + (f" (the last {last:.1f} s after the start)" if answers else "")
        + f", server CPU {1000 * cpu / max(1, len(latencies)):.2f} ms/req"
        + f" ({1000 * (sys_after - cpu_before[1]) / max(1, len(latencies)):.2f} in the kernel"
        + f", {1000 * burst_cpu / max(1, len(latencies)):.2f} while the requests came)",
        file=sys.stderr,
        flush=True,
    )


# ---- the whole benchmark ----------------------------------------------------------


def base_env() -> dict[str, str]:
    """This environment without any real channel or Partner Center credentials."""
    drop = ("SLACK_", "MICROSOFT_", "PARTNER_CENTER_", "BOT_", "BILLING_BOT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def profiled(cmd: list[str], name: str, args: argparse.Namespace) -> list[str]:
    """``cmd`` under ``py-spy record`` when ``--profile`` names this server."""
    if not args.profile or args.profile_server != name:
        return cmd
    out = Path(args.profile).resolve()
    fmt = {".txt": "raw", ".json": "speedscope"}.get(out.suffix, "flamegraph")
    spy = Path(sys.executable).parent / "py-spy"
    return [str(spy) if spy.exists() else "py-spy", "record", "-r", "250", "-f", fmt] + [
        "-o",
        str(out),
        "--",
        *cmd,
    ]


async def run_all(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    slack_port, teams_port = free_port(), free_port()
    slack_url = f"http://{LOOPBACK}:{slack_port}"
    teams_url = f"http://{LOOPBACK}:{teams_port}"
    fakes = ServerProcess(
        "fakes",
        [sys.executable, str(BENCH / "fakes.py")]
        + ["--slack-port", str(slack_port), "--teams-port", str(teams_port)],
        port=slack_port,
        health_path="/bench/stats",
        env=base_env(),
        log=work / "fakes.log",
    )
    servers: list[ServerProcess] = []
    with fakes:
        if args.store:
            manifest = json.loads((Path(args.store) / MANIFEST_NAME).read_text())
        else:
            print(f"seeding {args.cases:,} cases ...", file=sys.stderr, flush=True)
            manifest = seed(work / "store", args.cases, service_url=f"{teams_url}/")
        traffic = Traffic(manifest, slack_url, teams_url)
        slack_env = {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": f"{slack_url}/api/",
        }
        port = free_port()
        serve = ServerProcess(
            "billing-bot serve",
            profiled(serve_command(), "serve", args),
            port=port,
            health_path="/healthz",
            env={
                **base_env(),
                **slack_env,
                "BOT_DB": manifest["store"],
                "BOT_CONFIG": manifest["config"],
                "HOST": LOOPBACK,
                "PORT": str(port),
            },
            cwd=work,
            log=work / "serve.log",
        )
        port = free_port()
        bolt = ServerProcess(
            "bare bolt",
            profiled(
                [sys.executable, str(BENCH / "baselines" / "bare_bolt.py"), "--port", str(port)],
                "bolt",
                args,
            ),
            port=port,
            health_path="/healthz",
            env={**base_env(), **slack_env},
            log=work / "bare_bolt.log",
        )
        port = free_port()
        echo = ServerProcess(
            "bare botbuilder",
            profiled(
                [sys.executable, str(BENCH / "baselines" / "bare_botbuilder.py")]
                + ["--port", str(port)],
                "botbuilder",
                args,
            ),
            port=port,
            health_path="/healthz",
            env=base_env(),
            log=work / "bare_botbuilder.log",
        )
        slack_stats, teams_stats = f"{slack_url}/bench/stats", f"{teams_url}/bench/stats"
        targets: list[Target] = []
        try:
            print("starting billing-bot serve and the baselines ...", file=sys.stderr, flush=True)
            for server in (serve, bolt, echo):
                if args.profile and server.cmd[0].endswith("py-spy"):
                    server.stop_signal = signal.SIGINT  # py-spy writes its file on ^C
                server.start()
                servers.append(server)
            if "slack" in args.channels:
                targets.append(
                    Target(
                        serve,
                        Run("slack", "billing-bot"),
                        serve.url + "/slack/events",
                        traffic.slack,
                        slack_stats,
                    )
                )
                targets.append(
                    Target(
                        bolt,
                        Run("slack", "bare bolt"),
                        bolt.url + "/slack/events",
                        traffic.slack,
                        slack_stats,
                    )
                )
            if "teams" in args.channels:
                targets.append(
                    Target(
                        serve,
                        Run("teams", "billing-bot"),
                        serve.url + "/api/messages",
                        traffic.teams,
                        teams_stats,
                    )
                )
                targets.append(
                    Target(
                        echo,
                        Run("teams", "bare botbuilder"),
                        echo.url + "/api/messages",
                        traffic.teams,
                        teams_stats,
                    )
                )
            # Rounds alternate ours and the baseline, so both see the same machine.
            for r in range(args.rounds):
                print(f"round {r + 1} of {args.rounds}", file=sys.stderr, flush=True)
                for target in targets:
                    await one_round(target, args, offset=r * args.requests)
            for target in targets:
                target.run.rss_peak_mb = target.process.peak_rss_mb()
        finally:
            for server in reversed(servers):
                server.stop()
    return {
        "machine": machine(),
        "command": " ".join(["bench/load.py", *sys.argv[1:]]),
        "cases": manifest["cases"],
        "live": len(manifest["live"]),
        "concurrency": args.concurrency,
        "requests": args.requests,
        "rounds": args.rounds,
        "serve_ready_s": round(serve.ready_s, 2),
        "runs": [t.run.summary() for t in targets],
    }


def machine() -> str:
    return (
        f"{os.cpu_count()} cpus, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def report(result: dict[str, Any]) -> bool:
    """Print the figures, ratios and verdicts; True when every target was met."""
    runs = result["runs"]
    print(f"machine: {result['machine']}")
    print(f"command: {result['command']}")
    print(
        f"store: {result['cases']:,} cases ({result['live']:,} live); concurrency "
        f"{result['concurrency']}; {result['rounds']} rounds of {result['requests']:,} "
        f"requests per server and channel; serve ready in {result['serve_ready_s']:.1f} s"
    )
    print()
    print(
        "| channel | server | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors "
        "| answers out | answers/s | server CPU ms/req: while sent / in all | peak RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        aps = f"{r['answers_per_s']:.0f}" if r["answers_per_s"] else "-"
        rss = f"{r['rss_peak_mb']:.0f}" if r["rss_peak_mb"] else "-"
        print(
            f"| {r['channel']} | {r['server']} | {r['requests']:,} | {r['rps']:.0f} "
            f"| {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.0f} "
            f"| {r['errors']} | {r['answers']:,} | {aps} "
            f"| {r['burst_cpu_ms_per_request']:.2f} / {r['cpu_ms_per_request']:.2f} | {rss} |"
        )
    ok = True
    print()
    for channel, baseline in (("slack", "bare bolt"), ("teams", "bare botbuilder")):
        ours = next(
            (r for r in runs if r["channel"] == channel and r["server"] == "billing-bot"), None
        )
        base = next((r for r in runs if r["channel"] == channel and r["server"] == baseline), None)
        if ours is None or base is None:
            continue
        ratio = ours["rps"] / base["rps"] if base["rps"] else 0.0
        p99_ratio = ours["p99_ms"] / base["p99_ms"] if base["p99_ms"] else 0.0
        cpu_ratio = (
            ours["burst_cpu_ms_per_request"] / base["burst_cpu_ms_per_request"]
            if base["burst_cpu_ms_per_request"]
            else 0.0
        )
        met = ratio >= 0.8 and ours["errors"] == 0
        ok &= met
        print(
            f"{channel}: billing-bot {ours['rps']:.0f} req/s vs {baseline} {base['rps']:.0f} "
            f"req/s: ratio {ratio:.2f} (>= 0.8): {'met' if met else 'MISSED'}; "
            f"p99 {ours['p99_ms']:.1f} vs {base['p99_ms']:.1f} ms (ratio {p99_ratio:.2f}); "
            f"server CPU per request while they were sent: ratio {cpu_ratio:.2f}"
        )
        if channel == "slack":
            met = ours["p99_ms"] <= 100
            ok &= met
            print(
                f"slack: billing-bot p99 {ours['p99_ms']:.1f} ms at concurrency "
                f"{result['concurrency']} with {result['cases']:,} cases (<= 100 ms): "
                f"{'met' if met else 'MISSED'}"
            )
    ours_rss = [r["rss_peak_mb"] for r in runs if r["server"] == "billing-bot" and r["rss_peak_mb"]]
    if ours_rss:
        met = ours_rss[0] <= 300
        ok &= met
        print(
            f"serve peak RSS after the runs, {result['cases']:,} cases: {ours_rss[0]:.0f} MB "
            f"(<= 300): {'met' if met else 'MISSED'}"
        )
    print()
    print("all targets met" if ok else "SOME TARGETS MISSED")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases in the seeded store")
    parser.add_argument("--store", help="a directory seeded before by bench/seed_store.py")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per measured run (+10%% warm-up)"
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, help="no new request after this many seconds"
    )
    parser.add_argument("--channels", default="slack,teams", help="slack, teams or both")
    parser.add_argument(
        "--quiet",
        type=float,
        default=QUIET_S,
        help="seconds without a new answer after which a server's answers count as all out",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="measured runs per server, ours and baselines in turn"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--profile",
        help="run a server under py-spy, writing this file (.svg flame graph, .txt collapsed "
        "stacks, .json speedscope)",
    )
    parser.add_argument(
        "--profile-server", default="serve", choices=("serve", "bolt", "botbuilder")
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if args.concurrency < 1 or args.requests < 1 or args.duration <= 0 or args.rounds < 1:
        parser.error("--concurrency, --requests, --duration and --rounds must be positive")
    args.channels = {c.strip() for c in args.channels.split(",") if c.strip()}
    if not args.channels or args.channels - {"slack", "teams"}:
        parser.error("--channels takes slack, teams or slack,teams")
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        result = asyncio.run(run_all(args, work))
    finally:
        if args.keep:
            print(f"(kept {work})", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    ok = report(result)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    raise SystemExit(main())
