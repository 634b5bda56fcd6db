"""Working hours in each person's own time zone: when a reminder may go out, and when next.

All instants are timezone-aware UTC datetimes; the calendar math happens in
the person's zone (so daylight-saving changes are handled by zoneinfo).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=256)
def zone_or_utc(tz: str) -> ZoneInfo:
    """The time zone named ``tz``; UTC for a name this system does not know."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """A person's working week: days (Mon=0) and daily start/end, in their time zone."""

    tz: str = "UTC"
    start: time = time(9, 0)
    end: time = time(17, 0)
    days: frozenset[int] = frozenset({0, 1, 2, 3, 4})

    @property
    def zone(self) -> ZoneInfo:
        return zone_or_utc(self.tz)

    @classmethod
    def parse(
        cls, tz: str, hours: tuple[str, str] | None = None, days: frozenset[int] | None = None
    ) -> WorkingHours:
        start, end = hours or ("09:00", "17:00")
        return cls(
            tz,
            time.fromisoformat(start),
            time.fromisoformat(end),
            days or frozenset({0, 1, 2, 3, 4}),
        )

    def is_working(self, when: datetime) -> bool:
        local = when.astimezone(self.zone)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_working(self, when: datetime) -> datetime:
        """``when`` if it is inside working hours, else the start of the next working period."""
        if self.is_working(when):
            return when
        local = when.astimezone(self.zone)
        day = local.date()
        if local.time() >= self.end or local.weekday() not in self.days:
            day += timedelta(days=1)
        elif local.time() < self.start:
            pass
        for _ in range(8):
            if day.weekday() in self.days:
                candidate = datetime.combine(day, self.start, tzinfo=self.zone)
                if candidate >= when:
                    return candidate.astimezone(UTC)
            day += timedelta(days=1)
        return when  # no working days configured: never block

    def add_working(self, when: datetime, delta: timedelta) -> datetime:
        """``when`` plus ``delta`` of working time (skips nights and weekends)."""
        remaining = delta
        cursor = self.next_working(when)
        for _ in range(1000):
            local = cursor.astimezone(self.zone)
            end_today = datetime.combine(local.date(), self.end, tzinfo=self.zone).astimezone(UTC)
            available = end_today - cursor
            if remaining < available:
                return cursor + remaining  # landing on the end of the day means next morning
            remaining -= available
            cursor = self.next_working(end_today)
        return cursor

    def next_morning(self, when: datetime) -> datetime:
        """The start of the next working day after today (for "snooze until tomorrow")."""
        local = when.astimezone(self.zone)
        day = local.date() + timedelta(days=1)
        for _ in range(8):
            if day.weekday() in self.days:
                return datetime.combine(day, self.start, tzinfo=self.zone).astimezone(UTC)
            day += timedelta(days=1)
        return when + timedelta(days=1)
