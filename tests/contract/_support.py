"""Helpers of the store contract suite.

Everything here goes through the public API or the :class:`~licenzy_embed.stores.Store`
protocol, never a store's internals, so every store in ``tests/_stores.py`` runs the very
same tests. Subject refs are fresh per test because SQL stores may share one database.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from licenzy_embed import Licenzy
from licenzy_embed.entitlement import EntitlementRecord, derive_access


def new_subject(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def insert_entitlement(lz: Licenzy, subject_ref: str, product_code: str, *, status: str,
                       source: str = "stripe", created_at: datetime | None = None,
                       **fields: Any) -> EntitlementRecord:
    """Store an entitlement the way the Stripe side would have left it (any status), through
    one store transaction."""
    product = lz.catalog.get(product_code)
    now = created_at or lz.now()
    units = fields.pop("usage_remaining", product.units)
    record = derive_access(EntitlementRecord(
        id=f"ent_{uuid.uuid4().hex}", mode=lz.mode, subject_ref=subject_ref,
        product_code=product.code, kind=product.kind, status=status, source=source,
        created_at=now, updated_at=now, usage_remaining=units,
        units_granted=fields.pop("units_granted", product.units), **fields,
    ))
    with lz.store.transaction(lz.mode) as tx:
        tx.insert_entitlement(record)
    return record


def snapshot(lz: Licenzy, subject_ref: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Everything a subject has, to compare before and after a call that must change nothing."""
    return ([e.to_dict() for e in lz.entitlements(subject_ref)],
            [entry.to_dict() for entry in lz.ledger(subject_ref)])


def remaining_by_id(lz: Licenzy, subject_ref: str) -> dict[str, int | None]:
    return {e.id: e.usage_remaining for e in lz.entitlements(subject_ref)}


def units_left(lz: Licenzy, subject_ref: str) -> int:
    """Units the subject could spend now."""
    return sum(e.usage_remaining or 0 for e in lz.entitlements(subject_ref) if e.available)
