"""The ledger: an append-only record of every change to a subject's entitlements and units.

Written in the same store transaction as the change it describes, so the ledger and the state
can never disagree; it is what support reads when a customer asks where their credits went.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ._ids import new_id
from .clock import iso

Source = Literal["stripe", "admin", "runtime"]


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    mode: str
    subject_ref: str
    action: str  # granted, updated, consumed, held, committed, released, expired, revoked, ...
    source: str
    reason: str
    at: datetime
    entitlement_id: str | None = None
    units_delta: int | None = None
    status: str | None = None  # entitlement status after the change
    reference: str | None = None  # Stripe event id, idempotency key or hold id
    # The meter whose units the entry is about (its ``units_delta``, or a hold's commit);
    # None for an entry about no units (a status change, a pass paid for).
    meter: str | None = None

    @classmethod
    def new(cls, *, mode: str, subject_ref: str, action: str, source: str, reason: str,
            at: datetime, entitlement_id: str | None = None, units_delta: int | None = None,
            status: str | None = None, reference: str | None = None,
            meter: str | None = None) -> LedgerEntry:
        return cls(new_id("led"), mode, subject_ref, action, source, reason, at,
                   entitlement_id, units_delta, status, reference, meter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject_ref": self.subject_ref,
            "entitlement_id": self.entitlement_id,
            "action": self.action,
            "units_delta": self.units_delta,
            "status": self.status,
            "source": self.source,
            "reason": self.reason,
            "reference": self.reference,
            "meter": self.meter,
            "at": iso(self.at),
        }
