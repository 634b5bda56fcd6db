"""Server subprocesses for the benchmarks: start on a free loopback port, wait, measure, stop.

``ServerProcess`` runs one command (``billing-bot serve``, a baseline, the fake
Slack and Bot Connector servers) with its own environment, waits until a
health URL answers, reads the process's peak resident set size from
``/proc/PID/status`` (``VmHWM``), and stops it with SIGTERM (SIGKILL after a
grace period). Everything binds to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def proc_status_kb(pid: int, field: str) -> int | None:
    """A ``/proc/PID/status`` field in kB (``VmHWM``: peak RSS, ``VmRSS``: current)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def serve_command() -> list[str]:
    """``billing-bot serve`` as the console script runs it (``python -m bot serve``)."""
    return [sys.executable, "-m", "bot", "serve"]


class ServerProcess:
    """One server subprocess on loopback; use as a context manager."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        *,
        port: int,
        health_path: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.port = port
        self.health_path = health_path
        self.env = env
        self.cwd = cwd
        self.log_path = log
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.ready_s = 0.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 180.0) -> ServerProcess:
        """Start the command and wait until its health URL answers 2xx."""
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        self._log = self.log_path.open("ab") if self.log_path else None
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd,
            env=env,
            cwd=self.cwd or ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready"
                    + (f" (log: {self.log_path})" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(self.url + self.health_path, timeout=5) as resp:
                    if 200 <= resp.status < 300:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s")
            time.sleep(0.1)
        self.ready_s = time.perf_counter() - started
        return self

    def peak_rss_mb(self) -> float | None:
        kb = proc_status_kb(self.pid, "VmHWM") if self.proc else None
        return kb / 1024 if kb is not None else None

    def rss_mb(self) -> float | None:
        kb = proc_status_kb(self.pid, "VmRSS") if self.proc else None
        return kb / 1024 if kb is not None else None

    def stop(self, grace: float = 60.0) -> int | None:
        """``stop_signal`` (SIGTERM), up to ``grace`` s to exit (a serve flushes), then SIGKILL."""
        proc, self.proc = self.proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(self.stop_signal)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["LOOPBACK", "ServerProcess", "free_port", "proc_status_kb", "serve_command"]
