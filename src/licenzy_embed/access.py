"""Access answers: the hot yes/no (``AccessDecision``) and the full picture (``CustomerAccess``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .entitlement import SUBSCRIPTION_OPEN, Entitlement

_OPEN_STATUSES = SUBSCRIPTION_OPEN | {"active"}


class AccessDecision(NamedTuple):
    """The answer of ``check_access``: truthy iff allowed. Immutable; a named tuple rather
    than a frozen dataclass because it is built on every check, and a frozen dataclass's
    constructor cost a quarter of an in-memory check."""

    subject_ref: str
    allowed: bool

    def __bool__(self) -> bool:
        return self.allowed

    def to_dict(self) -> dict[str, Any]:
        return {"subject_ref": self.subject_ref, "allowed": self.allowed}


@dataclass(frozen=True)
class CustomerAccess:
    subject_ref: str
    has_access: bool
    status: str
    entitlements: list[Entitlement] = field(default_factory=list)
    # What ``check_access(subject_ref, feature)`` grants now: the features its available
    # entitlements' products list, and the meters they have units of (sorted).
    features: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.has_access

    @classmethod
    def from_entitlements(cls, subject_ref: str, entitlements: list[Entitlement]) -> CustomerAccess:
        has_access = any(e.available for e in entitlements)
        if has_access:
            status = "active"
        elif entitlements:
            # SPEC §4: the status of the most recently changed entitlement. An "active" one
            # that is not available (an exhausted pack, an expired pass) would read as access
            # granted, so it says why instead: "usage_exhausted" or "expired".
            latest = max(entitlements, key=lambda e: (e.updated_at, e.created_at, e.id))
            status = (latest.availability_reason if latest.status in _OPEN_STATUSES
                      else latest.status)
        else:
            status = "none"
        features: set[str] = set()
        for e in entitlements:
            if e.available:
                features.update(e.features)
                features.update(meter for meter, left in e.meters.items() if left > 0)
        return cls(subject_ref, has_access, status, entitlements, sorted(features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject_ref": self.subject_ref,
            "has_access": self.has_access,
            "status": self.status,
            "features": list(self.features),
            "entitlements": [e.to_dict() for e in self.entitlements],
        }
