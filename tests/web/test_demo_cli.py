"""``billing-bot demo-data`` as a command: on the store, through a running serve, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT, Serve, bot_env


def demo(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "demo-data"],
        env=bot_env(db),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_data_on_the_store_then_refused(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    first = demo(db)
    assert first.returncode == 0, first.stderr
    assert "Demo data is in" in first.stdout and "24 cases" in first.stdout
    second = demo(db)
    assert second.returncode == 1
    assert "already holds data (24 cases, 6 customers" in second.stderr
    assert "only fills an empty store" in second.stderr


def test_demo_data_through_a_running_serve(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    serve = Serve(db)
    serve.start()
    try:
        first = demo(db)
        assert first.returncode == 0, first.stderr
        assert f"the serve at http://127.0.0.1:{serve.port}" in first.stdout
        # The dashboard of the server it filled, on that server's port (issue 19, item 5).
        assert f"Open http://127.0.0.1:{serve.port}/dashboard" in first.stdout
        assert ":3978/" not in first.stdout
        second = demo(db)
        assert second.returncode == 1 and "already holds data" in second.stderr
        import urllib.request

        with urllib.request.urlopen(f"{serve.url}/healthz", timeout=10) as resp:
            health = json.load(resp)
        assert health["cases"]["total"] == 24
        assert health["cases"]["by_state"]["closed"] == 4
    finally:
        code, err = serve.stop()
    assert code == 0, err
