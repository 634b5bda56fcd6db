"""``billing-bot chat`` when its server stops mid-session (issue 19, item 4).

A real ``serve`` and a real ``billing-bot chat`` talking to it; the server is
stopped between two lines. The chat must say the server stopped and whether
the last line was saved, and exit 1 — never print a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import ROOT, Serve, bot_env

pytestmark = pytest.mark.slow


def test_chat_says_the_server_stopped_and_that_the_line_was_not_saved(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    serve = Serve(db)
    serve.start()
    chat = subprocess.Popen(
        [sys.executable, "-m", "bot", "chat", "--as", "lena"],
        env=bot_env(db),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert chat.stdin is not None and chat.stdout is not None
        chat.stdin.write("resources\n")
        chat.stdin.flush()
        deadline = time.monotonic() + 30
        seen = ""
        while "vKB" not in seen and time.monotonic() < deadline:
            seen += chat.stdout.readline()
        assert "vKB" in seen, seen  # the first line was answered by the server
        code, _err = serve.stop()
        assert code == 0
        out, err = chat.communicate("note BILL-1 after the stop\n", timeout=60)
    finally:
        if chat.poll() is None:
            chat.kill()
        if serve.proc and serve.proc.poll() is None:
            serve.stop()
    assert chat.returncode == 1
    assert "has stopped" in out and "“note BILL-1 after the stop” was not saved" in out
    assert "Traceback" not in out + err and "ClientConnectorError" not in out + err
