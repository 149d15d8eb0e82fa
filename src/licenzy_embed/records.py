"""Rows the store keeps besides entitlements and the ledger: usage idempotency records, holds,
processed webhook events, per-object event high-water marks, checkout attempts and customers.

Plain frozen dataclasses with no behaviour, shared by every store implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

Allocation = tuple[tuple[str, int], ...]  # (entitlement_id, units) in spend order


@dataclass(frozen=True)
class UsageRecord:
    """The first result of a consume under an idempotency key (unique per mode+subject+key)."""

    mode: str
    subject_ref: str
    idempotency_key: str
    units: int
    allocations: Allocation
    usage_remaining: int  # what the first call answered
    created_at: datetime
    meter: str = "units"  # the one meter the key spent: the same key for another is a conflict


@dataclass(frozen=True)
class HoldRecord:
    """Units taken out of ``usage_remaining`` until committed, released or expired.
    Unique per mode+subject+idempotency key."""

    id: str
    mode: str
    subject_ref: str
    idempotency_key: str
    units: int
    allocations: Allocation
    status: str  # held | committed | released | expired
    created_at: datetime
    expires_at: datetime
    committed_units: int | None = None
    settled_at: datetime | None = None
    meter: str = "units"  # the meter every allocation of the hold is of


@dataclass(frozen=True)
class ProcessedEvent:
    """A Stripe event that was applied (or acknowledged): unique per mode+event id."""

    mode: str
    event_id: str
    event_type: str
    outcome: str  # processed | ignored
    object_id: str | None
    event_created: int
    processed_at: datetime
    subject_ref: str | None = None


@dataclass(frozen=True)
class Watermark:
    """One row the webhook rules keep about a Stripe object, keyed ``<stripe id>#<part>``.

    What ``event_created`` and ``event_id`` hold depends on the kind of key: the newest
    ``(created, event id)`` applied to that part for an order mark, but an id another object
    named for a link (an invoice's subscription or payment intent), a period's past-due key
    for the kept grace. The stored column keeps its name; ``licenzy_embed.webhooks.keys`` gives
    each kind its own key type, and the rules read a row only through its kind's accessor."""

    mode: str
    object_id: str
    event_created: int
    event_id: str


@dataclass(frozen=True)
class CheckoutAttempt:
    """A checkout session created for a subject; unique per mode+idempotency key."""

    id: str
    mode: str
    subject_ref: str
    product_code: str
    idempotency_key: str
    fingerprint: str  # hash of the arguments, to tell a retry from a conflicting reuse
    status: str  # created | finalized | failed
    stripe_session_id: str
    checkout_url: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CustomerLink:
    """One Stripe customer per subject per mode, created once and reused."""

    mode: str
    subject_ref: str
    stripe_customer_id: str
    created_at: datetime
