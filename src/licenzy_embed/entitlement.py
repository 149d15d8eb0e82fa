"""Entitlements: the stored record, and the view of it at a given instant.

A record stores *state* (status, units, dates). Whether it grants access *now* depends on the
clock, so the availability rules live here, in one place, and every store answers the hot
"has access?" question from three derived columns written with each record
(``access_open``, ``access_until``, ``requires_units``):

    available = access_open and (access_until is None or now < access_until)
                and (not requires_units or usage_remaining > 0)

That keeps an access check one indexed query in SQL and a dict walk in memory, while the
rules themselves are written once, in Python, by :func:`derive_access`.

Units live per meter: ``balances`` (meter -> units left) and ``grants`` (meter -> units per
period or per purchase). ``usage_remaining`` and ``units_granted`` are their sums, kept with the
record (and as columns in SQL) so that "a pack is available while any of its meters has units
left" stays the single ``usage_remaining > 0`` above. A record built the old way, with
``usage_remaining`` and no balances, has them as its ``units`` meter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .catalog import Kind
from .clock import iso

# Stripe subscription statuses, plus ours for manual revocation.
SUBSCRIPTION_OPEN = frozenset({"active", "trialing"})
# One-off purchases (packs, passes): their lifecycle as Licenzy names it.
PURCHASE_ACTIVE = "active"
PENDING = "pending"  # async payment (bank debit) not settled yet
FAILED = "failed"
REFUNDED = "refunded"
DISPUTED = "disputed"
REVOKED = "revoked"
PAST_DUE = "past_due"

_STATUS_REASONS = {
    REVOKED: "revoked",
    REFUNDED: "refunded",
    DISPUTED: "disputed",
    PENDING: "payment_pending",
    FAILED: "payment_failed",
}


@dataclass(frozen=True)
class EntitlementRecord:
    """One stored entitlement. Frozen: changes go through :meth:`evolve`, which recomputes the
    derived access columns so they can never drift from the status they summarise."""

    id: str
    mode: str
    subject_ref: str
    product_code: str
    kind: Kind
    status: str
    source: str  # "stripe" | "admin"
    created_at: datetime
    updated_at: datetime
    usage_remaining: int | None = None  # None: not metered
    units_granted: int | None = None  # per period (subscription) or per purchase (pack)
    expires_at: datetime | None = None
    grace_until: datetime | None = None  # set while past_due
    prior_status: str | None = None  # what a dispute or revocation replaced
    period_key: str | None = None  # the billing period whose units were last granted
    quantity: int = 1
    stripe_customer_id: str | None = None
    stripe_subscription_id: str | None = None
    stripe_checkout_session_id: str | None = None
    stripe_payment_intent_id: str | None = None
    access_open: bool = False
    access_until: datetime | None = None
    requires_units: bool = False
    balances: Mapping[str, int] = field(default_factory=dict, hash=False)
    grants: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        balances, grants = dict(self.balances), dict(self.grants)
        if not balances and not grants:
            # The shorthand of one ``units`` meter (records written before meters). So a
            # change that drops every meter (a plan without any) sets usage_remaining and
            # units_granted to None with them, or this would bring a ``units`` meter back.
            if self.usage_remaining is not None:
                balances = {"units": self.usage_remaining}
            if self.units_granted is not None:
                grants = {"units": self.units_granted}
            if not balances and grants:
                balances = dict.fromkeys(grants, 0)
        object.__setattr__(self, "balances", balances)
        object.__setattr__(self, "grants", grants)
        if balances or grants:
            object.__setattr__(self, "usage_remaining", sum(balances.values()))
            object.__setattr__(self, "units_granted",
                               sum(grants.values()) if grants else None)
        else:
            object.__setattr__(self, "usage_remaining", None)
            object.__setattr__(self, "units_granted", None)

    def remaining(self, meter: str) -> int:
        return self.balances.get(meter, 0)

    def evolve(self, now: datetime, **changes: Any) -> EntitlementRecord:
        """A copy with ``changes`` applied, ``updated_at`` set and access columns re-derived."""
        changed = dataclasses.replace(self, updated_at=now, **changes)
        return derive_access(changed)

    def is_available(self, now: datetime) -> bool:
        if not self.access_open:
            return False
        if self.access_until is not None and now >= self.access_until:
            return False
        return not (self.requires_units and (self.usage_remaining or 0) <= 0)

    def is_spendable(self, now: datetime, meter: str = "units") -> bool:
        """May units of ``meter`` be taken from this entitlement now?"""
        return self.balances.get(meter, 0) > 0 and self.is_available(now)


def derive_access(record: EntitlementRecord) -> EntitlementRecord:
    """Compute the derived access columns from status, kind and dates (SPEC §4)."""
    open_ = False
    until: datetime | None = None
    if record.kind == "subscription":
        if record.status in SUBSCRIPTION_OPEN:
            # Stripe keeps a paid subscription's status in step with its period, so its
            # period end alone never cuts access; a manual grant has no Stripe behind it, so
            # the expires_at given to ``grant`` (a 30-day comp) is when it ends.
            open_ = True
            until = record.expires_at if record.source == "admin" else None
        elif record.status == PAST_DUE and record.grace_until is not None:
            open_, until = True, record.grace_until
    elif record.status == PURCHASE_ACTIVE:
        open_, until = True, record.expires_at
    return dataclasses.replace(
        record,
        access_open=open_,
        access_until=until,
        requires_units=record.kind == "usage_pack",
    )


def availability_reason(record: EntitlementRecord, now: datetime) -> str:
    """The stable code that says why an entitlement is or is not available now."""
    if record.status in _STATUS_REASONS:
        return _STATUS_REASONS[record.status]
    if record.kind == "subscription":
        if record.status == PAST_DUE:
            if record.is_available(now):
                return "past_due_grace"
            return "subscription_past_due"
        if record.status in SUBSCRIPTION_OPEN and not record.is_available(now):
            return "expired"
        return f"subscription_{record.status}"
    if record.expires_at is not None and now >= record.expires_at:
        return "expired"
    if record.kind == "usage_pack":
        return "usage_available" if (record.usage_remaining or 0) > 0 else "usage_exhausted"
    return "pass_active"


@dataclass(frozen=True)
class Entitlement:
    """An entitlement as seen at one instant: the record plus its availability then."""

    id: str
    subject_ref: str
    product_code: str
    kind: Kind
    status: str
    available: bool
    usage_remaining: int | None
    availability_reason: str
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    source: str
    mode: str
    features: tuple[str, ...] = ()
    meters: Mapping[str, int] = field(default_factory=dict, hash=False)

    @classmethod
    def at(cls, record: EntitlementRecord, now: datetime,
           features: tuple[str, ...] = ()) -> Entitlement:
        """``features``: what the record's product lists in the catalog (the record stores
        none, so that a catalog change applies to what was already sold)."""
        return cls(
            id=record.id,
            subject_ref=record.subject_ref,
            product_code=record.product_code,
            kind=record.kind,
            status=record.status,
            available=record.is_available(now),
            usage_remaining=record.usage_remaining,
            availability_reason=availability_reason(record, now),
            expires_at=record.expires_at,
            created_at=record.created_at,
            updated_at=record.updated_at,
            source=record.source,
            mode=record.mode,
            features=tuple(features),
            meters=dict(record.balances),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject_ref": self.subject_ref,
            "product_code": self.product_code,
            "kind": self.kind,
            "status": self.status,
            "available": self.available,
            "usage_remaining": self.usage_remaining,
            "availability_reason": self.availability_reason,
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "source": self.source,
            "mode": self.mode,
            "features": list(self.features),
            "meters": dict(self.meters),
        }
