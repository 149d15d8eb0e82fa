"""A clock that only moves when told to: availability rules (grace periods, expiries, hold
TTLs) are tested by moving time forward, never by sleeping."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from ..clock import aware


class FrozenClock:
    """Callable clock for ``Licenzy(clock=...)``; thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = aware(start) if start else datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or ``timedelta(**kwargs)``; returns the new now."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = aware(when)

    def timestamp(self) -> int:
        return int(self().timestamp())
