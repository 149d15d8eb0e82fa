"""``Licenzy.prune_history``: delete the settled history nothing reads any more, and only that.

Every hot-path lookup is indexed, so history costs disk, not time (BENCHMARKS.md, "Retention");
this is for when disk space calls for it, e.g. from a nightly job. What goes, in the Licenzy's
mode only:

* **settled holds** (``committed``, ``released``, ``expired``) settled before the idempotency
  window (24 hours by default) — a retry of the same ``Idempotency-Key`` within it must still
  find its hold and answer it again rather than hold again;
* **usage records** (a ``consume_usage``'s idempotency record) created before the same window,
  for the same reason;
* **processed webhook event ids** processed before the event window (35 days by default):
  Stripe retries a delivery for 3 days, but ``reconcile`` replays up to 30 days of Stripe's
  Events API through the same exactly-once path, so an id must outlive any event a replay can
  still bring (an event is processed after it is created, so one processed 35 days ago was
  created earlier still);
* **delivered change events** (outbox rows ``delivered`` before the same event window); never a
  pending one, whose delivery is still owed.

Never: a hold still ``held`` however old, the ledger (the audit trail), watermarks,
entitlements, checkout attempts, customers.

A window shorter than what keeps exactly-once (an idempotency window under 1 hour, an event
window under 31 days: the 30 a replay reaches, plus a day) is a ``ValueError`` before anything
is touched. Rows go in batches of :data:`BATCH`, each deleted in its own short transaction that
re-checks the row's age and status, so a prune never holds long locks on a busy table, and a
hold revived or settled meanwhile (by a retry) is not deleted. ``dry_run`` counts what a run
would delete and deletes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .clock import aware, iso

if TYPE_CHECKING:
    from .stores.base import Store

IDEMPOTENCY_WINDOW = timedelta(hours=24)  # the window Stripe gives its own idempotency keys
MIN_IDEMPOTENCY_WINDOW = timedelta(hours=1)
EVENT_WINDOW = timedelta(days=35)
REPLAY_WINDOW = timedelta(days=30)  # reconcile.EVENT_WINDOW (a test keeps them equal)
MIN_EVENT_WINDOW = REPLAY_WINDOW + timedelta(days=1)
BATCH = 1000

# What a store can prune (Store.prune), and the column that dates each.
HOLDS = "holds"  # settled holds, by settled_at
USAGE_RECORDS = "usage_records"  # by created_at
PROCESSED_EVENTS = "processed_events"  # by processed_at
OUTBOX = "outbox"  # delivered rows, by delivered_at
KINDS = (HOLDS, USAGE_RECORDS, PROCESSED_EVENTS, OUTBOX)
SETTLED = ("committed", "released", "expired")


@dataclass
class PruneReport:
    """How many rows of each kind a prune deleted (with ``dry_run``: would delete)."""

    dry_run: bool
    settled_before: datetime  # holds and usage records older than this went
    processed_before: datetime  # processed events and delivered change events
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "settled_before": iso(self.settled_before),
                "processed_before": iso(self.processed_before),
                "counts": {kind: self.counts.get(kind, 0) for kind in KINDS},
                "total": self.total}


def _window(name: str, value: object, minimum: timedelta, why: str) -> timedelta:
    if not isinstance(value, timedelta):
        raise ValueError(f"{name} must be a timedelta, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} ({why}); got {value}")
    return value


def cutoffs(now: datetime, idempotency_window: object,
            event_window: object) -> tuple[datetime, datetime]:
    """(settled_before, processed_before), or a ValueError for a window too short to keep
    exactly-once."""
    idem = _window("idempotency_window", idempotency_window, MIN_IDEMPOTENCY_WINDOW,
                   "a retried Idempotency-Key must still find its spend or hold")
    events = _window("event_window", event_window, MIN_EVENT_WINDOW,
                     "reconcile replays 30 days of Stripe events through the exactly-once "
                     "path, so an event id must be remembered longer")
    return now - idem, now - events


def prune(store: Store, mode: str, now: datetime, *, idempotency_window: object,
          event_window: object, dry_run: bool, batch: int = BATCH) -> PruneReport:
    if not isinstance(now, datetime):
        raise ValueError(f"now must be a datetime, got {type(now).__name__}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError("batch must be a positive int")
    settled_before, processed_before = cutoffs(aware(now), idempotency_window, event_window)
    report = PruneReport(dry_run=dry_run, settled_before=settled_before,
                         processed_before=processed_before)
    for kind, before in ((HOLDS, settled_before), (USAGE_RECORDS, settled_before),
                         (PROCESSED_EVENTS, processed_before), (OUTBOX, processed_before)):
        report.counts[kind] = store.prune(mode, kind, before, batch=batch, dry_run=dry_run)
    return report
