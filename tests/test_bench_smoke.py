"""Smoke test of the benchmarks at tiny sizes: they run end to end and report (no thresholds).

The figures themselves come from ``make bench`` (docs/benchmarks.md), never from a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.seed_store import CONFIG_NAME, MANIFEST_NAME, seed
from bot.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_seed_store_writes_a_store_its_config_and_a_manifest(tmp_path: Path) -> None:
    manifest = seed(tmp_path / "s", 1000, service_url="http://127.0.0.1:9/")
    assert manifest["cases"] == 1000
    assert len(manifest["live"]) == 10
    assert {"number", "state", "owner", "stage"} <= set(manifest["live"][0])
    assert (tmp_path / "s" / MANIFEST_NAME).exists()
    settings = load_settings({"BOT_CONFIG": str(tmp_path / "s" / CONFIG_NAME)})
    slack_ids = {u.slack for u in settings.users}
    assert {a["slack"] for a in manifest["agents"]} <= slack_ids
    assert settings.slack_team_id == manifest["slack_team"]


def test_load_runs_ours_and_both_baselines_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(ROOT / "bench" / "load.py"), "--cases", "500"]
    cmd += ["--requests", "20", "--rounds", "1", "--concurrency", "4", "--quiet", "0.3"]
    cmd += ["--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    servers = {(r["channel"], r["server"]) for r in result["runs"]}
    assert servers == {
        ("slack", "billing-bot"),
        ("slack", "bare bolt"),
        ("teams", "billing-bot"),
        ("teams", "bare botbuilder"),
    }
    for run in result["runs"]:
        assert run["requests"] == 20 and run["errors"] == 0, run
    ours = [r for r in result["runs"] if r["server"] == "billing-bot"]
    assert all(r["answers"] > 0 for r in ours)  # the bot really did the work after its acks
    assert "slack: billing-bot" in done.stdout and "ratio" in done.stdout


def test_storage_benchmark_runs_with_the_sweep_and_the_serve(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "storage.py"), "--sizes", "500", "--samples", "20"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Scheduler sweep" in done.stdout
    assert "peak RSS MB" in done.stdout
