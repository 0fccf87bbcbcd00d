"""Time, injected: every rule asks the app's clock, so tests move time instead of sleeping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """The system clock (UTC, aware)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock(Clock):
    """A clock that only moves when told to: for tests and `--test-clock`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("the test clock needs an aware time (with a UTC offset)")
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, minutes: float) -> None:
        with self._lock:
            self._now += timedelta(minutes=minutes)
