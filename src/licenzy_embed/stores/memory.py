"""``InMemoryStore``: the store for tests and single-process apps.

One re-entrant lock serialises every transaction, which is what makes it trivially atomic;
writes inside a transaction append an undo action so that an exception rolls them all back.
Reads take the same lock so they never see a half-applied transaction. Each lookup the core
needs has its own dict index, so an access check is a dict lookup plus a walk over the
subject's few entitlements. Holds still ``held`` are indexed per (mode, subject) as well, so a
reserve or a spend looks at the subject's open holds only, never at every hold ever settled:
their cost stays flat however long the store has been running.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from ..entitlement import EntitlementRecord
from ..errors import StoreUnavailable
from ..ledger import LedgerEntry
from ..outbox import DELIVERED, PENDING, OutboxRecord
from ..records import (
    CheckoutAttempt,
    CustomerLink,
    HoldRecord,
    ProcessedEvent,
    UsageRecord,
    Watermark,
)
from ..retention import HOLDS, KINDS, OUTBOX, PROCESSED_EVENTS, SETTLED, USAGE_RECORDS
from .base import DuplicateKey, LockedSubject, UnitsConflict, sorted_oldest_first

K = TypeVar("K")
V = TypeVar("V")
_MISSING: Any = object()


class _Tables:
    def __init__(self) -> None:
        self.entitlements: dict[tuple[str, str], EntitlementRecord] = {}
        self.by_subject: dict[tuple[str, str], list[str]] = {}
        self.ledger: dict[tuple[str, str], list[LedgerEntry]] = {}
        self.usage: dict[tuple[str, str, str], UsageRecord] = {}
        self.holds: dict[tuple[str, str], HoldRecord] = {}
        self.holds_by_key: dict[tuple[str, str, str], str] = {}
        # (mode, subject) -> ids of its holds still "held", in insertion order; an entry is
        # dropped when its last open hold settles.
        self.open_holds: dict[tuple[str, str], dict[str, None]] = {}
        self.events: dict[tuple[str, str], ProcessedEvent] = {}
        self.watermarks: dict[tuple[str, str], Watermark] = {}
        self.attempts: dict[tuple[str, str], CheckoutAttempt] = {}
        self.attempts_by_key: dict[tuple[str, str], str] = {}
        self.attempts_by_session: dict[tuple[str, str], str] = {}
        self.customers: dict[tuple[str, str], CustomerLink] = {}
        self.customers_by_stripe: dict[tuple[str, str], str] = {}
        # (mode, event id) -> row, in insertion order; ids of pending rows kept apart so that
        # looking for due events does not walk the delivered ones.
        self.outbox: dict[tuple[str, str], OutboxRecord] = {}
        self.outbox_pending: dict[tuple[str, str], None] = {}


class _MemoryTransaction:
    def __init__(self, store: InMemoryStore, mode: str) -> None:
        self.mode = mode
        self._t = store._tables
        self._undo: list[Callable[[], object]] = []

    # -- write helpers that remember how to undo themselves
    def _put(self, table: dict[K, V], key: K, value: V) -> None:
        old = table.get(key, _MISSING)
        table[key] = value
        if old is _MISSING:
            self._undo.append(lambda: table.pop(key, None))
        else:
            self._undo.append(lambda: table.__setitem__(key, old))

    def _append(self, table: dict[K, list[V]], key: K, value: V) -> None:
        table.setdefault(key, []).append(value)
        self._undo.append(lambda: table[key].pop())

    def _index_hold(self, hold: HoldRecord) -> None:
        """Keep ``open_holds`` in step with the hold's status (undone with the rest)."""
        key = (self.mode, hold.subject_ref)
        ids = self._t.open_holds.get(key)
        is_open = hold.status == "held"
        if is_open == (ids is not None and hold.id in ids):
            return
        index = self._t.open_holds
        if is_open:
            index.setdefault(key, {})[hold.id] = None

            def undo_open() -> None:
                index[key].pop(hold.id, None)
                if not index[key]:
                    del index[key]
            self._undo.append(undo_open)
        else:
            assert ids is not None
            del ids[hold.id]
            if not ids:
                del index[key]

            def undo_close() -> None:
                index.setdefault(key, {})[hold.id] = None
            self._undo.append(undo_close)

    def _open(self, subject_ref: str) -> list[HoldRecord]:
        ids = self._t.open_holds.get((self.mode, subject_ref), ())
        return [self._t.holds[(self.mode, i)] for i in ids]

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()

    # -- entitlements
    def lock_subject(self, subject_ref: str) -> list[EntitlementRecord]:
        ids = self._t.by_subject.get((self.mode, subject_ref), [])
        return sorted_oldest_first([self._t.entitlements[(self.mode, i)] for i in ids])

    def lock_for_usage(self, subject_ref: str, now: datetime, *, usage_key: str | None = None,
                       hold_key: str | None = None,
                       hold_id: str | None = None) -> LockedSubject:
        hold = (self.get_hold(hold_id) if hold_id is not None else
                self.get_hold_by_key(subject_ref, hold_key) if hold_key is not None else None)
        return LockedSubject(
            self.lock_subject(subject_ref),
            None if usage_key is None else self.get_usage_record(subject_ref, usage_key),
            hold, any(h.expires_at <= now for h in self._open(subject_ref)))

    def get_entitlement(self, entitlement_id: str) -> EntitlementRecord | None:
        return self._t.entitlements.get((self.mode, entitlement_id))

    def find_entitlements(self, *, stripe_subscription_id: str | None = None,
                          stripe_checkout_session_id: str | None = None,
                          stripe_payment_intent_id: str | None = None
                          ) -> list[EntitlementRecord]:
        wanted = {
            "stripe_subscription_id": stripe_subscription_id,
            "stripe_checkout_session_id": stripe_checkout_session_id,
            "stripe_payment_intent_id": stripe_payment_intent_id,
        }
        wanted = {k: v for k, v in wanted.items() if v is not None}
        if not wanted:
            return []
        found = [
            r for (m, _), r in self._t.entitlements.items()
            if m == self.mode and all(getattr(r, k) == v for k, v in wanted.items())
        ]
        return sorted_oldest_first(found)

    def insert_entitlement(self, record: EntitlementRecord) -> None:
        key = (self.mode, record.id)
        if key in self._t.entitlements:
            raise DuplicateKey(record.id)
        self._put(self._t.entitlements, key, record)
        self._append(self._t.by_subject, (self.mode, record.subject_ref), record.id)

    def save_entitlement(self, record: EntitlementRecord) -> None:
        key = (self.mode, record.id)
        if key not in self._t.entitlements:
            raise KeyError(record.id)
        self._put(self._t.entitlements, key, record)

    def adjust_units(self, entitlement_id: str, delta: int, now: datetime,
                     meter: str = "units") -> int:
        key = (self.mode, entitlement_id)
        record = self._t.entitlements[key]
        if meter not in record.balances or record.balances[meter] + delta < 0:
            raise UnitsConflict(entitlement_id)
        balances = {**record.balances, meter: record.balances[meter] + delta}
        updated = dataclasses.replace(record, balances=balances, updated_at=now)
        self._put(self._t.entitlements, key, updated)
        return balances[meter]

    def add_ledger(self, entry: LedgerEntry) -> None:
        self._append(self._t.ledger, (self.mode, entry.subject_ref), entry)

    # -- usage
    def get_usage_record(self, subject_ref: str, idempotency_key: str) -> UsageRecord | None:
        return self._t.usage.get((self.mode, subject_ref, idempotency_key))

    def insert_usage_record(self, record: UsageRecord) -> None:
        key = (self.mode, record.subject_ref, record.idempotency_key)
        if key in self._t.usage:
            raise DuplicateKey(record.idempotency_key)
        self._put(self._t.usage, key, record)

    def get_hold(self, hold_id: str) -> HoldRecord | None:
        return self._t.holds.get((self.mode, hold_id))

    def get_hold_by_key(self, subject_ref: str, idempotency_key: str) -> HoldRecord | None:
        hold_id = self._t.holds_by_key.get((self.mode, subject_ref, idempotency_key))
        return None if hold_id is None else self._t.holds[(self.mode, hold_id)]

    def insert_hold(self, hold: HoldRecord) -> None:
        by_key = (self.mode, hold.subject_ref, hold.idempotency_key)
        if by_key in self._t.holds_by_key:
            raise DuplicateKey(hold.idempotency_key)
        self._put(self._t.holds, (self.mode, hold.id), hold)
        self._put(self._t.holds_by_key, by_key, hold.id)
        self._index_hold(hold)

    def save_hold(self, hold: HoldRecord) -> None:
        key = (self.mode, hold.id)
        old = self._t.holds.get(key)
        if old is not None and old.subject_ref != hold.subject_ref:
            # A hold never changes subject in the core; should a caller do it, the index
            # must not keep the id under the old subject.
            self._index_hold(dataclasses.replace(old, status="settled"))
        self._put(self._t.holds, key, hold)
        self._index_hold(hold)

    def open_holds(self, subject_ref: str) -> list[HoldRecord]:
        return sorted(self._open(subject_ref), key=lambda h: (h.created_at, h.id))

    def expired_holds(self, subject_ref: str | None, now: datetime) -> list[HoldRecord]:
        if subject_ref is not None:
            candidates = self._open(subject_ref)
        else:
            candidates = [self._t.holds[(self.mode, i)]
                          for (m, _), ids in self._t.open_holds.items() if m == self.mode
                          for i in ids]
        return sorted((h for h in candidates if h.expires_at <= now),
                      key=lambda h: (h.created_at, h.id))

    # -- webhooks
    def get_processed_event(self, event_id: str) -> ProcessedEvent | None:
        return self._t.events.get((self.mode, event_id))

    def insert_processed_event(self, event: ProcessedEvent) -> None:
        key = (self.mode, event.event_id)
        if key in self._t.events:
            raise DuplicateKey(event.event_id)
        self._put(self._t.events, key, event)

    def get_watermark(self, object_id: str) -> Watermark | None:
        return self._t.watermarks.get((self.mode, object_id))

    def save_watermark(self, watermark: Watermark) -> None:
        self._put(self._t.watermarks, (self.mode, watermark.object_id), watermark)

    # -- checkout attempts and customers
    def get_attempt_by_key(self, idempotency_key: str) -> CheckoutAttempt | None:
        attempt_id = self._t.attempts_by_key.get((self.mode, idempotency_key))
        return None if attempt_id is None else self._t.attempts[(self.mode, attempt_id)]

    def get_attempt_by_session(self, stripe_session_id: str) -> CheckoutAttempt | None:
        attempt_id = self._t.attempts_by_session.get((self.mode, stripe_session_id))
        return None if attempt_id is None else self._t.attempts[(self.mode, attempt_id)]

    def insert_attempt(self, attempt: CheckoutAttempt) -> None:
        if (self.mode, attempt.idempotency_key) in self._t.attempts_by_key:
            raise DuplicateKey(attempt.idempotency_key)
        self._put(self._t.attempts, (self.mode, attempt.id), attempt)
        self._put(self._t.attempts_by_key, (self.mode, attempt.idempotency_key), attempt.id)
        self._put(self._t.attempts_by_session, (self.mode, attempt.stripe_session_id),
                  attempt.id)

    def save_attempt(self, attempt: CheckoutAttempt) -> None:
        self._put(self._t.attempts, (self.mode, attempt.id), attempt)

    def get_customer(self, subject_ref: str) -> CustomerLink | None:
        return self._t.customers.get((self.mode, subject_ref))

    def get_customer_by_stripe_id(self, stripe_customer_id: str) -> CustomerLink | None:
        subject = self._t.customers_by_stripe.get((self.mode, stripe_customer_id))
        return None if subject is None else self._t.customers[(self.mode, subject)]

    def insert_customer(self, link: CustomerLink) -> None:
        if (self.mode, link.subject_ref) in self._t.customers or (
            (self.mode, link.stripe_customer_id) in self._t.customers_by_stripe
        ):
            raise DuplicateKey(link.subject_ref)
        self._put(self._t.customers, (self.mode, link.subject_ref), link)
        self._put(self._t.customers_by_stripe, (self.mode, link.stripe_customer_id),
                  link.subject_ref)

    # -- the outbox
    def add_outbox(self, records: list[OutboxRecord]) -> None:
        for record in records:
            key = (self.mode, record.id)
            if key in self._t.outbox:
                raise DuplicateKey(record.id)
            self._put(self._t.outbox, key, record)
            self._put(self._t.outbox_pending, key, None)


class InMemoryStore:
    """Thread-safe, single-process store. State lives as long as the object."""

    # Every call returns without waiting on I/O (its lock is held for microseconds), so the
    # async adapters call it on the event loop rather than in a worker thread.
    blocking = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tables = _Tables()
        self._outage = False
        self._active: threading.local = threading.local()

    def _check(self) -> None:
        if self._outage:
            raise StoreUnavailable("the in-memory store is simulating an outage")

    @contextmanager
    def unavailable(self) -> Iterator[None]:
        """Make every operation raise ``StoreUnavailable`` inside the block: for testing that
        an app fails closed when its database is down."""
        self._outage = True
        try:
            yield
        finally:
            self._outage = False

    @contextmanager
    def transaction(self, mode: str) -> Iterator[_MemoryTransaction]:
        self._check()
        outer: _MemoryTransaction | None = getattr(self._active, "tx", None)
        if outer is not None:
            # A nested block joins the outer unit of work, as SQL savepoint-free code would.
            yield outer
            return
        with self._lock:
            tx = _MemoryTransaction(self, mode)
            self._active.tx = tx
            try:
                yield tx
            except BaseException:
                tx.rollback()
                raise
            finally:
                self._active.tx = None

    def has_access(self, mode: str, subject_ref: str, now: datetime) -> bool:
        if self._outage:  # _check(), inlined on the hot path
            self._check()
        with self._lock:
            ids = self._tables.by_subject.get((mode, subject_ref))
            if ids:
                ents = self._tables.entitlements
                for i in ids:  # a plain loop: a generator costs more than the walk itself
                    if ents[(mode, i)].is_available(now):
                        return True
            return False

    def has_feature(self, mode: str, subject_ref: str, now: datetime,
                    product_codes: Collection[str], meter: str | None) -> bool:
        self._check()
        with self._lock:
            ents = self._tables.entitlements
            for i in self._tables.by_subject.get((mode, subject_ref), ()):
                record = ents[(mode, i)]
                if record.is_available(now) and (
                    record.product_code in product_codes
                    or (meter is not None and record.balances.get(meter, 0) > 0)
                ):
                    return True
            return False

    def list_entitlements(self, mode: str, subject_ref: str) -> list[EntitlementRecord]:
        self._check()
        with self._lock:
            ids = self._tables.by_subject.get((mode, subject_ref), [])
            return sorted_oldest_first([self._tables.entitlements[(mode, i)] for i in ids])

    def get_entitlement(self, mode: str, entitlement_id: str) -> EntitlementRecord | None:
        self._check()
        with self._lock:
            return self._tables.entitlements.get((mode, entitlement_id))

    def list_ledger(self, mode: str, subject_ref: str) -> list[LedgerEntry]:
        self._check()
        with self._lock:
            return list(self._tables.ledger.get((mode, subject_ref), []))

    def get_processed_event(self, mode: str, event_id: str) -> ProcessedEvent | None:
        self._check()
        with self._lock:
            return self._tables.events.get((mode, event_id))

    def get_attempt(self, mode: str, attempt_id: str) -> CheckoutAttempt | None:
        self._check()
        with self._lock:
            return self._tables.attempts.get((mode, attempt_id))

    def has_expired_holds(self, mode: str, subject_ref: str, now: datetime) -> bool:
        self._check()
        with self._lock:
            holds = self._tables.holds
            return any(holds[(mode, i)].expires_at <= now
                       for i in self._tables.open_holds.get((mode, subject_ref), ()))

    # -- the outbox
    def _outbox_update(self, mode: str, event_id: str, **changes: Any) -> OutboxRecord | None:
        key = (mode, event_id)
        record = self._tables.outbox.get(key)
        if record is None:
            return None
        record = dataclasses.replace(record, **changes)
        self._tables.outbox[key] = record
        if record.status == PENDING:
            self._tables.outbox_pending[key] = None
        else:
            self._tables.outbox_pending.pop(key, None)
        return record

    def pending_events(self, mode: str, now: datetime, limit: int) -> list[OutboxRecord]:
        self._check()
        with self._lock:
            rows = self._tables.outbox
            due = [rows[key] for key in self._tables.outbox_pending
                   if key[0] == mode and (rows[key].next_attempt_at or now) <= now]
            return sorted(due, key=lambda r: (r.next_attempt_at or now))[:limit]

    def claim_event(self, mode: str, event_id: str, now: datetime, until: datetime) -> bool:
        self._check()
        with self._lock:
            record = self._tables.outbox.get((mode, event_id))
            if record is None or record.status != PENDING or (
                    record.next_attempt_at is not None and record.next_attempt_at > now):
                return False
            self._outbox_update(mode, event_id, next_attempt_at=until)
            return True

    def mark_events_delivered(self, mode: str, event_ids: list[str], now: datetime) -> None:
        self._check()
        with self._lock:
            for event_id in event_ids:
                self._outbox_update(mode, event_id, status=DELIVERED, next_attempt_at=None,
                                    delivered_at=now)

    def record_event_failure(self, mode: str, event_id: str, *, error: str, attempts: int,
                             next_attempt_at: datetime, delivered_to: tuple[str, ...]) -> None:
        self._check()
        with self._lock:
            self._outbox_update(mode, event_id, status=PENDING, attempts=attempts,
                                last_error=error, next_attempt_at=next_attempt_at,
                                delivered_to=delivered_to)

    def get_event(self, mode: str, event_id: str) -> OutboxRecord | None:
        self._check()
        with self._lock:
            return self._tables.outbox.get((mode, event_id))

    def list_events(self, mode: str, *, pending: bool = False,
                    limit: int = 100) -> list[OutboxRecord]:
        self._check()
        with self._lock:
            keys = self._tables.outbox_pending if pending else self._tables.outbox
            found = [self._tables.outbox[k] for k in keys if k[0] == mode]
            return found[::-1][:limit]

    def known_purchases(self, mode: str) -> list[EntitlementRecord]:
        self._check()
        with self._lock:
            return sorted_oldest_first(
                r for (m, _), r in self._tables.entitlements.items()
                if m == mode and r.source == "stripe")

    def close(self) -> None:
        pass

    # -- retention
    def _prunable(self, mode: str, kind: str, before: datetime) -> list[Any]:
        t = self._tables
        if kind == HOLDS:
            return [k for k, h in t.holds.items() if k[0] == mode and h.status in SETTLED
                    and h.settled_at is not None and h.settled_at < before]
        if kind == USAGE_RECORDS:
            return [k for k, u in t.usage.items() if k[0] == mode and u.created_at < before]
        if kind == PROCESSED_EVENTS:
            return [k for k, e in t.events.items() if k[0] == mode and e.processed_at < before]
        if kind == OUTBOX:
            return [k for k, o in t.outbox.items() if k[0] == mode and o.status == DELIVERED
                    and o.delivered_at is not None and o.delivered_at < before]
        raise ValueError(f"cannot prune {kind!r}: one of {', '.join(KINDS)}")

    def _delete(self, kind: str, key: Any) -> None:
        t = self._tables
        if kind == HOLDS:
            hold = t.holds.pop(key)
            t.holds_by_key.pop((hold.mode, hold.subject_ref, hold.idempotency_key), None)
            # A settled hold is in no subject's open-hold index: nothing to drop there.
        elif kind == USAGE_RECORDS:
            del t.usage[key]
        elif kind == PROCESSED_EVENTS:
            del t.events[key]
        else:
            del t.outbox[key]
            t.outbox_pending.pop(key, None)

    def prune(self, mode: str, kind: str, before: datetime, *, batch: int,
              dry_run: bool = False) -> int:
        self._check()
        done = 0
        while True:
            with self._lock:  # one batch at a time: other threads get the lock in between
                found = self._prunable(mode, kind, before)
                if dry_run:
                    return len(found)
                for key in found[:batch]:
                    self._delete(kind, key)
                done += min(len(found), batch)
            if len(found) <= batch:
                return done
