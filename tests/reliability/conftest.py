"""Fixtures of the reliability tests, and their figures at the end of the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.reliability import figures as figs
from tests.reliability.inproc import LiveBot, running_bot


@pytest.fixture
def figures() -> list[str]:
    """Lines for the summary (see ``tests/reliability/figures.py``)."""
    return figs.FIGURES


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveBot]:
    """The bot in this process with every dependency faked (``tests/reliability/inproc.py``)."""
    async with running_bot(tmp_path, monkeypatch) as bot:
        yield bot


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = figs.summary()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
