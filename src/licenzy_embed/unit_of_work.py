"""One unit of work: a store transaction whose change events are written to the outbox inside
it and delivered once it committed, run again under one retry policy when it lost a race that
wrote nothing.

Two races end a transaction without anything written, so running the very same work again is
the whole answer rather than a 5xx for a request that did nothing wrong:

* the database broke a deadlock or a serialization conflict (``StoreUnavailable`` with
  ``retryable=True``);
* a unique key another transaction committed first (``DuplicateKey``): two webhooks creating
  the same entitlement, two first checkouts with one key. The re-run reads what the winner
  committed.

``Licenzy``, checkout and webhooks all run their work here, so there is one loop and one
budget of attempts for a request, never a retry loop nested in another. Only the outermost
unit of work retries: a nested ``run`` joins its caller, which is the one that must start over
— and delivers nothing itself: its events are delivered when the outermost one committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from .clock import Clock, aware
from .errors import StoreUnavailable
from .events import ChangeEvent
from .outbox import Outbox, OutboxRecord, stamp
from .stores.base import DuplicateKey, Store, StoreTransaction

logger = logging.getLogger("licenzy_embed")
T = TypeVar("T")

Work = Callable[[StoreTransaction], tuple[T, list[ChangeEvent]]]
ATTEMPTS = 3


class UnitOfWork:
    """Runs work in one transaction of ``store`` in ``mode``, writes its change events to the
    outbox in that transaction, and hands them to ``outbox`` after commit (never for an
    attempt that rolled back)."""

    def __init__(self, store: Store, mode: str, outbox: Outbox, clock: Clock, *,
                 attempts: int = ATTEMPTS) -> None:
        self.store = store
        self.mode = mode
        self.outbox = outbox
        self.clock = clock
        self.attempts = attempts
        self._nesting = threading.local()

    def run(self, work: Work[T]) -> T:
        """``work(tx)`` returns ``(result, change events)``; ``run`` returns the result."""
        outermost = not getattr(self._nesting, "depth", 0)
        attempts = self.attempts if outermost else 1
        for attempt in range(1, attempts + 1):
            self._nesting.depth = getattr(self._nesting, "depth", 0) + 1
            if outermost:
                self._nesting.written = []
            try:
                with self.store.transaction(self.mode) as tx:
                    result, events = work(tx)
                    if events:
                        records = stamp(events, self.mode, aware(self.clock()))
                        tx.add_outbox(records)  # one insert for all of them
                        self._nesting.written.extend(records)
                break
            except StoreUnavailable as exc:
                if not exc.retryable or attempt == attempts:
                    raise
                logger.info("licenzy-embed: retrying a transaction after a deadlock (%s)", exc)
            except DuplicateKey as exc:
                if attempt == attempts:
                    raise
                logger.info("licenzy-embed: retrying a transaction that lost the race for "
                            "a unique key (%s)", exc)
            finally:
                self._nesting.depth -= 1
        if outermost:
            written: list[OutboxRecord] = self._nesting.written
            self._nesting.written = []
            self.outbox.after_commit(written)
        return result
