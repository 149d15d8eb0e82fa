"""The outbox: change events as rows, delivered to ``Licenzy.on`` callbacks at least once.

Why rows: an event kept in memory until its change committed is lost when the process dies in
between. Each change event is therefore written to the store *in the transaction of its
change* (one more insert, of all its events at once), which gives it its stable ``lzev_…``
id; only once that commits is it delivered.

How delivery works, and what it promises:

* **Right after commit** the committing process delivers its own events to its callbacks and
  marks them delivered (one update for all of them). The row was written already *claimed*
  by that process for :data:`DELIVERY_LEASE`, so a periodic ``deliver_pending_events``
  elsewhere does not deliver it a second time meanwhile.
* **A callback that raises** is logged, its error recorded on the row, and the event retried
  later with exponential backoff on the ``Licenzy`` clock (:func:`backoff`). Callbacks that
  already received it are remembered on the row by name (module and qualified name, per
  registered type) and are not called again on a retry.
* **Pending events** — of a process that died before delivering, or whose callback raised —
  are delivered by ``Licenzy.deliver_pending_events()``: one indexed read when nothing is
  due, so a periodic job may call it often. Each due row is *claimed* by a conditional update
  (``… WHERE next_attempt_at <= now``) before its callbacks run, so two processes sweeping at
  once deliver each event to each callback once per claim; a claim lasts
  :data:`DELIVERY_LEASE`, after which a process that died mid-delivery is taken over.
* **Only to someone.** A ``Licenzy`` with no callbacks registered delivers nothing and marks
  nothing: its events stay pending until a process with callbacks delivers them. An event
  whose type no registered callback (nor ``*``) listens to is marked delivered with nobody
  called.

So delivery is at least once: a process dying after a callback returned and before the row
was marked, or a lease running out under a very slow callback, calls it again with the same
event id, on which receivers dedupe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._ids import new_id
from .clock import iso
from .events import ChangeEvent, EventBus

if TYPE_CHECKING:
    from .stores.base import Store

logger = logging.getLogger("licenzy_embed")

ID_PREFIX = "lzev"
PENDING, DELIVERED = "pending", "delivered"
DELIVERY_LEASE = timedelta(seconds=30)
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=6)
BATCH = 100
ERROR_LENGTH = 2000


def backoff(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failed delivery an event is tried again:
    30 s, 1 min, 2 min, … doubling up to 6 h."""
    delay: timedelta = FIRST_RETRY * (2 ** min(max(attempts - 1, 0), 20))
    return min(delay, LAST_RETRY)


@dataclass(frozen=True)
class OutboxRecord:
    """One change event as the store keeps it. ``next_attempt_at`` is when it is due (or
    until when a deliverer holds it); None once delivered. ``delivered_to``: the callbacks
    that already received it."""

    id: str
    mode: str
    type: str
    data: dict[str, Any]
    created_at: datetime
    status: str = PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_to: tuple[str, ...] = ()
    delivered_at: datetime | None = None

    @property
    def event(self) -> ChangeEvent:
        return ChangeEvent(self.type, self.data, id=self.id, created_at=iso(self.created_at))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type, "status": self.status,
            "created_at": iso(self.created_at), "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "last_error": self.last_error, "delivered_to": list(self.delivered_to),
            "delivered_at": iso(self.delivered_at),
            "data": self.data,
        }


def data_json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def stamp(events: list[ChangeEvent], mode: str, now: datetime) -> list[OutboxRecord]:
    """The rows of a change's events, claimed by the committing process for the lease."""
    return [OutboxRecord(id=new_id(ID_PREFIX), mode=mode, type=e.type, data=e.data,
                         created_at=now, next_attempt_at=now + DELIVERY_LEASE)
            for e in events]


@dataclass(frozen=True)
class Delivery:
    """What one delivery pass did: events delivered, events that failed (to be retried)."""

    delivered: int = 0
    failed: int = 0

    def __add__(self, other: Delivery) -> Delivery:
        return Delivery(self.delivered + other.delivered, self.failed + other.failed)

    def to_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed}


class Outbox:
    """Delivers the rows of one store and mode to the callbacks of one ``EventBus``."""

    def __init__(self, store: Store, mode: str, bus: EventBus,
                 now: Callable[[], datetime]) -> None:
        self.store = store
        self.mode = mode
        self.bus = bus
        self.now = now
        self._swept = False  # pending rows of earlier processes looked at once already

    def after_commit(self, records: list[OutboxRecord]) -> None:
        """Deliver a committed change's own events; the first time callbacks exist, also
        what earlier processes left pending (the "next start" case)."""
        if not self.bus:
            return  # nobody to deliver to: the rows wait, pending, for a process that has
        # The change committed: nothing here may raise into the call that made it. A store
        # failing now leaves the rows pending (claimed for the lease), delivered again later.
        try:
            self.deliver(records)
            if not self._swept:
                self._swept = True
                self.deliver_pending(BATCH)  # one batch; a periodic job does the rest
        except Exception:
            logger.exception("licenzy-embed: delivering change events failed; they stay "
                             "pending and are delivered later")

    def deliver_pending(self, limit: int | None = None) -> Delivery:
        """Claim and deliver the events due now, oldest first, at most ``limit``."""
        if not self.bus:
            return Delivery()
        self._swept = True
        total = Delivery()
        while limit is None or total.delivered + total.failed < limit:
            now = self.now()
            size = BATCH if limit is None else min(BATCH, limit - total.delivered - total.failed)
            due = self.store.pending_events(self.mode, now, size)
            if not due:
                break
            mine = [r for r in due if self.store.claim_event(
                self.mode, r.id, now, now + DELIVERY_LEASE)]
            if not mine and len(due) < size:
                break
            total += self.deliver(mine)
            if len(due) < size:
                break
        return total

    def replay(self, record: OutboxRecord) -> Delivery:
        """Deliver one event again to every callback, whatever its state (``events
        replay``); it is marked delivered when they all succeed. With no callbacks
        registered it does nothing, as a sweep would: never delivered to no one."""
        if not self.bus:
            return Delivery()
        return self.deliver([replace(record, delivered_to=())])

    def deliver(self, records: list[OutboxRecord]) -> Delivery:
        """Call each record's callbacks (skipping those it already reached), then mark the
        ones every callback took delivered, in one update."""
        delivered: list[str] = []
        failed = 0
        for record in records:
            event = record.event
            done = list(record.delivered_to)
            error: str | None = None
            for name, callback in self.bus.receivers(record.type):
                if name in done:
                    continue
                try:
                    callback(event)
                except Exception as exc:
                    logger.exception("licenzy-embed: %s callback failed (%s, event %s); it is "
                                     "retried later", record.type, name, record.id)
                    error = f"{name}: {type(exc).__name__}: {exc}"[:ERROR_LENGTH]
                    continue
                done.append(name)
            if error is None:
                delivered.append(record.id)
                continue
            failed += 1
            attempts = record.attempts + 1
            self.store.record_event_failure(
                self.mode, record.id, error=error, attempts=attempts,
                next_attempt_at=self.now() + backoff(attempts), delivered_to=tuple(done))
        if delivered:
            self.store.mark_events_delivered(self.mode, delivered, self.now())
        return Delivery(len(delivered), failed)
