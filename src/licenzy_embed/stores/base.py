"""The storage Protocol every store implements.

Two levels:

* :class:`Store` — the object an app constructs. Its reads (``has_access``,
  ``list_entitlements``…) run outside any explicit transaction; ``has_access`` is the hot path
  and must be one indexed lookup.
* :class:`StoreTransaction` — what ``Store.transaction(mode)`` yields: an all-or-nothing unit
  of work scoped to one mode. Every change the core makes (a usage spend, a webhook's effects
  together with its event id, a grant with its ledger entry) happens inside exactly one of
  these, so a failure leaves nothing half written.

Concurrency contract, which the shared contract suite (``tests/contract``) checks for every
store:

* ``lock_subject`` locks every entitlement row of the subject for the rest of the
  transaction (``SELECT … FOR UPDATE`` in SQL), so two spends on one subject serialise;
* ``adjust_units`` is a *relative, conditional* update (``SET usage_remaining =
  usage_remaining + :delta WHERE usage_remaining + :delta >= 0``), never a blind overwrite of a
  value read earlier; it raises :class:`UnitsConflict` when the row would go negative;
* ``insert_*`` of a row whose unique key exists raises :class:`DuplicateKey` (the race of two
  concurrent inserts included), which the core turns into "duplicate"/"replay" answers;
* any failure to reach the database raises :class:`~licenzy_embed.errors.StoreUnavailable`.

A store may also set ``blocking = False`` when none of its calls ever waits on I/O or on
another process (``InMemoryStore``); the async adapters then call it on the event loop instead
of in a worker thread. Without the attribute a store is taken to block.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..entitlement import EntitlementRecord
from ..ledger import LedgerEntry
from ..outbox import OutboxRecord
from ..records import (
    CheckoutAttempt,
    CustomerLink,
    HoldRecord,
    ProcessedEvent,
    UsageRecord,
    Watermark,
)


class DuplicateKey(Exception):
    """A unique key (event id, idempotency key, customer) already exists."""


class UnitsConflict(Exception):
    """A conditional units update found fewer units than the change needs."""


@dataclass(frozen=True)
class LockedSubject:
    """What ``StoreTransaction.lock_for_usage`` read: the subject's entitlements as
    ``lock_subject`` returns them, the usage record or hold asked for (None when there is
    none, or none was asked for), and whether the subject has holds still ``held`` past their
    expiry (what ``expired_holds`` would list)."""

    entitlements: list[EntitlementRecord]
    usage: UsageRecord | None = None
    hold: HoldRecord | None = None
    expired_holds: bool = False


class StoreTransaction(Protocol):
    mode: str

    # entitlements
    def lock_subject(self, subject_ref: str) -> list[EntitlementRecord]:
        """Lock and return all the subject's entitlements, oldest first (created_at, id).

        A later call in the same transaction returns the same rows, re-read (plus rows this
        transaction inserted) — not rows another transaction committed meanwhile: waiting on
        those after already holding locks is how two spends deadlock."""

    def lock_for_usage(self, subject_ref: str, now: datetime, *, usage_key: str | None = None,
                       hold_key: str | None = None,
                       hold_id: str | None = None) -> LockedSubject:
        """``lock_subject``, then what a usage operation reads under that lock, all read after
        the lock was granted: the usage record of ``usage_key``, the hold of ``hold_key`` (of
        this subject) or of ``hold_id``, and whether the subject has expired holds.

        The same as calling ``lock_subject``, ``get_usage_record`` / ``get_hold_by_key`` /
        ``get_hold`` and ``expired_holds`` in turn; a SQL store does it in two statements (the
        locking SELECT, then one plain read), so the spend path pays one round trip for what
        were three."""

    def get_entitlement(self, entitlement_id: str) -> EntitlementRecord | None:
        """Lock and return one entitlement."""

    def find_entitlements(
        self,
        *,
        stripe_subscription_id: str | None = None,
        stripe_checkout_session_id: str | None = None,
        stripe_payment_intent_id: str | None = None,
    ) -> list[EntitlementRecord]:
        """Lock and return entitlements matching every given Stripe reference."""

    def insert_entitlement(self, record: EntitlementRecord) -> None: ...

    def save_entitlement(self, record: EntitlementRecord) -> None:
        """Write every column of an existing entitlement (matched by id)."""

    def adjust_units(self, entitlement_id: str, delta: int, now: datetime,
                     meter: str = "units") -> int:
        """Add ``delta`` to the entitlement's balance of ``meter`` (and so to its
        usage_remaining, their sum), conditionally; return the meter's new balance. A meter
        the entitlement does not carry is a ``UnitsConflict``."""

    def add_ledger(self, entry: LedgerEntry) -> None: ...

    # usage idempotency and holds
    def get_usage_record(self, subject_ref: str, idempotency_key: str) -> UsageRecord | None: ...

    def insert_usage_record(self, record: UsageRecord) -> None: ...

    def get_hold(self, hold_id: str) -> HoldRecord | None: ...

    def get_hold_by_key(self, subject_ref: str, idempotency_key: str) -> HoldRecord | None: ...

    def insert_hold(self, hold: HoldRecord) -> None: ...

    def save_hold(self, hold: HoldRecord) -> None: ...

    def open_holds(self, subject_ref: str) -> list[HoldRecord]:
        """The subject's holds still ``held`` (expired or not): units that will come back to
        their entitlements when released, which a period's unit reset must not hand out
        again."""

    def expired_holds(self, subject_ref: str | None, now: datetime) -> list[HoldRecord]:
        """Holds still ``held`` whose ``expires_at`` <= now (of one subject, or all)."""

    # webhooks
    def get_processed_event(self, event_id: str) -> ProcessedEvent | None: ...

    def insert_processed_event(self, event: ProcessedEvent) -> None: ...

    def get_watermark(self, object_id: str) -> Watermark | None: ...

    def save_watermark(self, watermark: Watermark) -> None:
        """Insert or replace the high-water mark of one Stripe object."""

    # checkout attempts and customers
    def get_attempt_by_key(self, idempotency_key: str) -> CheckoutAttempt | None: ...

    def get_attempt_by_session(self, stripe_session_id: str) -> CheckoutAttempt | None: ...

    def insert_attempt(self, attempt: CheckoutAttempt) -> None: ...

    def save_attempt(self, attempt: CheckoutAttempt) -> None: ...

    def get_customer(self, subject_ref: str) -> CustomerLink | None: ...

    def get_customer_by_stripe_id(self, stripe_customer_id: str) -> CustomerLink | None: ...

    def insert_customer(self, link: CustomerLink) -> None: ...

    # the outbox
    def add_outbox(self, records: list[OutboxRecord]) -> None:
        """Write a change's events in its transaction (one statement for all of them)."""


@runtime_checkable
class Store(Protocol):
    def transaction(self, mode: str) -> AbstractContextManager[StoreTransaction]:
        """An all-or-nothing unit of work: committed when the block exits normally, rolled
        back (every write undone) when it raises."""

    def has_access(self, mode: str, subject_ref: str, now: datetime) -> bool:
        """Is any of the subject's entitlements available at ``now``? One indexed lookup."""

    def has_feature(self, mode: str, subject_ref: str, now: datetime,
                    product_codes: Collection[str], meter: str | None) -> bool:
        """Is one of the subject's entitlements available at ``now`` whose product is one of
        ``product_codes`` (those listing the feature), or which has units left of ``meter``?
        One indexed lookup, like ``has_access``."""

    def list_entitlements(self, mode: str, subject_ref: str) -> list[EntitlementRecord]:
        """The subject's entitlements, oldest first (created_at, id)."""

    def get_entitlement(self, mode: str, entitlement_id: str) -> EntitlementRecord | None: ...

    def list_ledger(self, mode: str, subject_ref: str) -> list[LedgerEntry]:
        """The subject's ledger, oldest first."""

    def get_processed_event(self, mode: str, event_id: str) -> ProcessedEvent | None: ...

    def get_attempt(self, mode: str, attempt_id: str) -> CheckoutAttempt | None: ...

    def has_expired_holds(self, mode: str, subject_ref: str, now: datetime) -> bool:
        """Does the subject have a hold still ``held`` past its expiry? A plain read, so the
        usual answer (no) costs no write transaction (on SQLite, no wait behind writers)."""

    # the outbox (see licenzy_embed.outbox); each call is its own short transaction
    def pending_events(self, mode: str, now: datetime, limit: int) -> list[OutboxRecord]:
        """Pending events due at ``now`` (``next_attempt_at <= now``), oldest first: one
        indexed read, which finds nothing in the usual case."""

    def claim_event(self, mode: str, event_id: str, now: datetime, until: datetime) -> bool:
        """Take a due pending event for delivery until ``until``: a conditional update that
        exactly one of several concurrent callers wins."""

    def mark_events_delivered(self, mode: str, event_ids: list[str], now: datetime) -> None:
        ...

    def record_event_failure(self, mode: str, event_id: str, *, error: str, attempts: int,
                             next_attempt_at: datetime, delivered_to: tuple[str, ...]) -> None:
        """A callback raised: keep the error and the callbacks that did receive it, and
        make it due again at ``next_attempt_at``."""

    def get_event(self, mode: str, event_id: str) -> OutboxRecord | None: ...

    def list_events(self, mode: str, *, pending: bool = False,
                    limit: int = 100) -> list[OutboxRecord]:
        """The newest events (only pending ones with ``pending``), newest first."""

    # reconciliation
    def known_purchases(self, mode: str) -> list[EntitlementRecord]:
        """Every entitlement that came from Stripe (its subscription or payment), for
        ``reconcile`` to re-read from Stripe; oldest first."""

    def close(self) -> None: ...

    # retention (see licenzy_embed.retention)
    def prune(self, mode: str, kind: str, before: datetime, *, batch: int,
              dry_run: bool = False) -> int:
        """Delete the rows of ``kind`` (one of ``retention.KINDS``) dated before ``before``:
        holds settled (never ``held`` ones), usage records, processed events, change events
        delivered (never pending ones). At most ``batch`` rows per transaction, each of which
        re-checks the row's status and date, so a hold revived by a retry meanwhile stays.
        Return how many went (with ``dry_run``: how many would, deleting nothing)."""


def sorted_oldest_first(records: Iterable[EntitlementRecord]) -> list[EntitlementRecord]:
    """The order every store returns a subject's entitlements in: (created_at, id)."""
    return sorted(records, key=lambda r: (r.created_at, r.id))
