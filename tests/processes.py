"""Running billing-bot as real subprocesses: ``serve`` on a free port, piped ``chat``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(db: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "MICROSOFT_APP", "PARTNER_CENTER"))
    }
    env.update({"BOT_DB": str(db), "BOT_CONFIG": "", "PYTHONUNBUFFERED": "1"})
    env.pop("BOT_CONFIG")
    env.update(extra)
    return env


def chat(db: Path, script: str, user: str = "alice", timeout: float = 60) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--as", user],
        input=script,
        capture_output=True,
        text=True,
        env=bot_env(db),
        cwd=ROOT,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class Serve:
    def __init__(self, db: Path, **env: str) -> None:
        self.db = db
        self.env = env
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> subprocess.Popen[str]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(self.port)],
            env=bot_env(self.db, **self.env),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self.proc
            except OSError as exc:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        self.proc.stderr.read() if self.proc.stderr else "serve died"
                    ) from exc
                time.sleep(0.05)
        raise AssertionError("serve did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.communicate(timeout=30)

    def stop(self) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err
