"""Seed a realistic billing-bot store of N cases for the load benchmark.

Run ``.venv/bin/python bench/seed_store.py --cases 100000 --out DIR``.

The store is written by the storage benchmark's builder
(:func:`bench.storage.build_store`, the engine's own file format, about 10 s
for 100,000 cases): 1% of the cases live, the rest closed or cancelled in the
archive; customers with owners; about 10 live cases per agent; audit trails of
2-7 entries; a fifth disputes with exact money; each agent's Slack DM and
Teams personal-chat references; a scheduled reminder for every live case (the
close-the-loop reminder of a resolved case, else its first-response/idle
watch), 5 of them due now and the rest over the next week.

``DIR`` then holds:

``bench.json`` (+ archive, index)  the store, for ``BOT_DB``;
``billing-bot.toml``               the config for ``BOT_CONFIG``: the partner's
                                   Slack workspace and Teams tenant, a lead and
                                   every agent with their Slack and Teams ids;
``seed.json``                      what the load generator needs to send
                                   requests that make sense: the agents' ids
                                   and each live case's number, state, owner
                                   and card stage.

The store's "now" is the real time by default (``--now`` to pin it), so a
``serve`` on it finds only the reminders that are due now, not a year of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.storage import (  # noqa: E402
    LEAD_ID,
    LEAD_SLACK,
    LIVE_PER_AGENT,
    PARTNER_TEAM,
    PARTNER_TENANT,
    agent_id,
    build_store,
    slack_user,
    teams_aad,
)
from bot.domain import Case  # noqa: E402

CONFIG_NAME = "billing-bot.toml"
MANIFEST_NAME = "seed.json"


def config_toml(agents: int) -> str:
    """The config of the seeded desk: workspace, tenant, a lead and every agent."""
    lines = [
        "# Written by bench/seed_store.py for the load benchmark.",
        "[desk]",
        'time_zone = "UTC"',
        "",
        "[slack]",
        f'team_id = "{PARTNER_TEAM}"',
        "",
        "[teams]",
        f'tenant_id = "{PARTNER_TENANT}"',
        "",
        "[[users]]",
        f'name = "{LEAD_ID}"',
        'role = "lead"',
        'display_name = "Lena Lead"',
        f'slack = "{LEAD_SLACK}"',
    ]
    for i in range(agents):
        lines += [
            "",
            "[[users]]",
            f'name = "{agent_id(i)}"',
            'role = "agent"',
            f'display_name = "Agent {i}"',
            f'slack = "{slack_user(i)}"',
            f'teams = "{teams_aad(i)}"',
        ]
    return "\n".join(lines) + "\n"


def live_cases(store: Path) -> list[dict[str, Any]]:
    """Number, state, owner and card stage of every live case in the built snapshot."""
    snapshot = json.loads(store.read_bytes())
    out = []
    for doc in snapshot["cases"].values():
        doc = {k: v for k, v in doc.items() if k != "_key"}
        case = Case.from_doc(doc)
        out.append(
            {
                "number": case.number,
                "state": case.state.value,
                "owner": case.owner,
                "stage": case.stage,
            }
        )
    out.sort(key=lambda c: int(c["number"] or 0))
    return out


def seed(
    out: Path,
    cases: int,
    *,
    seed_value: int = 7,
    now: datetime | None = None,
    service_url: str | None = None,
) -> dict[str, Any]:
    """Build the store, its config and the manifest in ``out``; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    if any(out.glob("bench.*")):
        raise SystemExit(f"{out} already holds a store; pick an empty directory")
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    started = time.perf_counter()
    store = build_store(out, cases, seed_value, now=at, service_url=service_url)
    live = live_cases(store)
    agents = max(1, max(1, cases // 100) // LIVE_PER_AGENT)
    (out / CONFIG_NAME).write_text(config_toml(agents), encoding="utf-8")
    manifest: dict[str, Any] = {
        "store": str(store),
        "config": str(out / CONFIG_NAME),
        "cases": cases,
        "now": at.isoformat(),
        "seed": seed_value,
        "service_url": service_url,
        "slack_team": PARTNER_TEAM,
        "teams_tenant": PARTNER_TENANT,
        "agents": [
            {"id": agent_id(i), "slack": slack_user(i), "teams": teams_aad(i)}
            for i in range(agents)
        ],
        "live": live,
        "build_s": round(time.perf_counter() - started, 2),
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, required=True, help="how many cases (1%% live)")
    parser.add_argument("--out", type=Path, required=True, help="an empty directory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--now", help="the store's present, ISO time with offset (default: now)")
    parser.add_argument(
        "--service-url", help="Bot Connector URL of the agents' Teams references (none if unset)"
    )
    args = parser.parse_args()
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    now = datetime.fromisoformat(args.now) if args.now else None
    if now is not None and now.tzinfo is None:
        parser.error("--now needs an offset, e.g. 2026-11-24T09:00:00+00:00")
    manifest = seed(
        args.out, args.cases, seed_value=args.seed, now=now, service_url=args.service_url
    )
    print(
        f"seeded {args.cases:,} cases ({len(manifest['live']):,} live, "
        f"{len(manifest['agents'])} agents) in {manifest['build_s']:.1f} s: "
        f"BOT_DB={manifest['store']} BOT_CONFIG={manifest['config']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
