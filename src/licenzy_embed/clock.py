"""Time source. Every availability rule is evaluated against an injected clock so tests can
move time forward instead of sleeping; all datetimes are timezone-aware UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (what SQL drivers hand back), aware ones converted."""
    if value.tzinfo is timezone.utc:
        return value  # the system clock's own: every access check comes through here
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return None if value is None else aware(value).isoformat().replace("+00:00", "Z")
