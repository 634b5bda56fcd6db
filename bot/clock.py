"""An injectable clock: real time in production, fake time in tests and simulations.

``BILLING_BOT_FAKE_CLOCK="2026-11-24T09:00:00+00:00[@SPEED]"`` (test-only) makes a
``serve`` subprocess start at that instant and run at SPEED× real time, so
restart tests can run on fake time.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand (``advance``) or that runs at ``speed``× from ``start``."""

    def __init__(self, start: datetime, speed: float = 0.0) -> None:
        self._start = start.astimezone(UTC)
        self._offset = timedelta(0)
        self._speed = speed
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._t0) * self._speed
        return self._start + self._offset + timedelta(seconds=elapsed)

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    def set(self, when: datetime) -> None:
        self._offset += when.astimezone(UTC) - self.now()


def clock_from_env() -> Clock:
    spec = os.environ.get("BILLING_BOT_FAKE_CLOCK")
    if not spec:
        return SystemClock()
    instant, _, speed = spec.partition("@")
    return FakeClock(datetime.fromisoformat(instant), float(speed or 1.0))
