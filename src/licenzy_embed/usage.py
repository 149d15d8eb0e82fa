"""Usage: atomic, idempotent spending of units, and holds (reservations).

Each operation runs as one store transaction that first locks the subject's entitlement rows
(``StoreTransaction.lock_for_usage``, which also reads what the operation looks at under that
lock); units then move only through the store's conditional,
relative ``adjust_units``. Two spends on one subject therefore serialise in every store, and a
spend can neither overdraw nor be applied twice — the idempotency record is written in the same
transaction, under a unique key.

The policy (which entitlements pay, in what order) is written once here and shared by every
store: soonest-expiring first, no expiry last, then oldest first; all or nothing. Each operation
spends one meter: only entitlements with units of that meter pay, and an idempotency key (or a
hold) remembers its meter, so the same key for another meter is a conflict, not a replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._ids import new_id
from .clock import iso
from .entitlement import REFUNDED, EntitlementRecord
from .errors import (
    IdempotencyConflict,
    InsufficientUsage,
    InvalidRequest,
    NothingToSpend,
    ReservationExpired,
    Upgrade,
)
from .events import ChangeEvent, usage_consumed
from .ledger import LedgerEntry
from .records import Allocation, HoldRecord, UsageRecord

if TYPE_CHECKING:
    from .stores.base import StoreTransaction

_FAR_FUTURE = datetime.max


@dataclass(frozen=True)
class UsageResult:
    ok: bool
    consumed: int
    usage_remaining: int  # the meter's units left across the subject's available entitlements
    replayed: bool = False
    meter: str = "units"

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "consumed": self.consumed, "usage_remaining": self.usage_remaining,
                "meter": self.meter}


@dataclass
class Reservation:
    """Units held for one piece of work. ``commit`` spends (possibly fewer) units, ``release``
    gives them all back; a hold not settled by ``expires_at`` is released automatically."""

    id: str
    subject_ref: str
    units: int
    expires_at: datetime
    status: str
    idempotency_key: str
    committed_units: int | None = None
    meter: str = "units"
    _commit: Callable[[Reservation, int | None], UsageResult] | None = field(
        default=None, repr=False, compare=False)
    _release: Callable[[Reservation], None] | None = field(
        default=None, repr=False, compare=False)

    def commit(self, units: int | None = None) -> UsageResult:
        assert self._commit is not None
        return self._commit(self, units)

    def release(self) -> None:
        assert self._release is not None
        self._release(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject_ref": self.subject_ref,
            "units": self.units,
            "status": self.status,
            "committed_units": self.committed_units,
            "meter": self.meter,
            "expires_at": iso(self.expires_at),
        }


def spend_order(records: list[EntitlementRecord], now: datetime,
                meter: str = "units") -> list[EntitlementRecord]:
    """The subject's entitlements that can pay ``meter`` now, in the order they pay (§4)."""
    spendable = [r for r in records if r.is_spendable(now, meter)]
    return sorted(
        spendable,
        key=lambda r: (
            r.expires_at is None,
            r.expires_at.replace(tzinfo=None) if r.expires_at else _FAR_FUTURE,
            r.created_at,
            r.id,
        ),
    )


def remaining(records: list[EntitlementRecord], now: datetime, meter: str = "units") -> int:
    return sum(r.remaining(meter) for r in records if r.is_spendable(now, meter))


def allocate(ordered: list[EntitlementRecord], units: int,
             meter: str = "units") -> Allocation | None:
    """Split ``units`` over entitlements in order; ``None`` when they cannot cover it."""
    plan: list[tuple[str, int]] = []
    left = units
    for record in ordered:
        if left == 0:
            break
        take = min(left, record.remaining(meter))
        if take > 0:
            plan.append((record.id, take))
            left -= take
    return None if left else tuple(plan)


class UsageEngine:
    """The usage operations, each given an open store transaction by ``Licenzy``."""

    def __init__(self, mode: str, upgrade: Callable[[str], Upgrade] = lambda meter: ()) -> None:
        self.mode = mode
        # meter -> the products that carry it: what a refusal offers to buy.
        self.upgrade = upgrade

    def _ledger(self, tx: StoreTransaction, subject_ref: str, action: str, now: datetime,
                entitlement_id: str, delta: int, reference: str, reason: str,
                meter: str) -> None:
        tx.add_ledger(LedgerEntry.new(
            mode=self.mode, subject_ref=subject_ref, action=action, source="runtime",
            reason=reason, at=now, entitlement_id=entitlement_id, units_delta=delta,
            reference=reference, meter=meter,
        ))

    def _give_back(self, tx: StoreTransaction, hold: HoldRecord, allocations: Allocation,
                   action: str, now: datetime,
                   locked: list[EntitlementRecord] | None = None) -> dict[str, int]:
        """Give ``allocations`` back to their entitlements; returns each one's new balance of
        the hold's meter. ``locked``: the subject's rows as this transaction locked them,
        whose statuses stand for the entitlements' own (a row not among them is read and
        locked here)."""
        by_id = {r.id: r for r in locked or ()}
        balances: dict[str, int] = {}
        for entitlement_id, units in allocations:
            record = by_id.get(entitlement_id) or tx.get_entitlement(entitlement_id)
            # A refunded pack stays at zero: its units were paid back with the money.
            if record is None or record.status == REFUNDED or units == 0:
                continue
            balances[entitlement_id] = tx.adjust_units(entitlement_id, units, now, hold.meter)
            self._ledger(tx, hold.subject_ref, action, now, entitlement_id, units, hold.id,
                         f"hold {action}", hold.meter)
        return balances

    def expire_holds(self, tx: StoreTransaction, subject_ref: str, now: datetime,
                     locked: list[EntitlementRecord] | None = None) -> int:
        """Release the subject's holds past their expiry. The caller must already hold the
        subject's row locks (``tx.lock_subject``, whose rows it may pass as ``locked``): they
        are what stops two concurrent sweeps from both seeing a hold as still held and giving
        its units back twice."""
        expired = tx.expired_holds(subject_ref, now)
        for hold in expired:
            self._give_back(tx, hold, hold.allocations, "expired", now, locked)
            tx.save_hold(_settled(hold, "expired", None, now))
        return len(expired)

    def _take(self, tx: StoreTransaction, subject_ref: str, units: int, now: datetime,
              action: str, reference: str, meter: str,
              records: list[EntitlementRecord]) -> tuple[Allocation, int]:
        """Take ``units`` of ``meter`` all-or-nothing from ``records``: the subject's rows as
        this transaction locked them, its expired holds already swept (as ``consume``
        does) and nothing changed since. Returns the allocation and what is left of that meter."""
        ordered = spend_order(records, now, meter)
        plan = allocate(ordered, units, meter)
        if plan is None:
            if not any(meter in r.balances for r in records):
                # Nothing of the subject's carries the meter: buy something (402), rather
                # than "not enough left" (409).
                raise NothingToSpend(units, 0, meter=meter, upgrade=self.upgrade(meter))
            raise InsufficientUsage(units, remaining(records, now, meter), meter=meter,
                                    upgrade=self.upgrade(meter))
        for entitlement_id, take in plan:
            tx.adjust_units(entitlement_id, -take, now, meter)
            self._ledger(tx, subject_ref, action, now, entitlement_id, -take, reference,
                         "usage " + action, meter)
        return plan, remaining(records, now, meter) - units

    def consume(self, tx: StoreTransaction, subject_ref: str, units: int, key: str,
                now: datetime, meter: str = "units") -> tuple[UsageResult, list[ChangeEvent]]:
        locked = tx.lock_for_usage(subject_ref, now, usage_key=key)
        if locked.usage is not None:
            return _replay(locked.usage, units, meter), []
        records = locked.entitlements
        if locked.expired_holds and self.expire_holds(tx, subject_ref, now, records):
            records = tx.lock_subject(subject_ref)  # the rows as the sweep left them
        plan, left = self._take(tx, subject_ref, units, now, "consumed", key, meter, records)
        tx.insert_usage_record(UsageRecord(self.mode, subject_ref, key, units, plan, left, now,
                                           meter))
        result = UsageResult(True, units, left, meter=meter)
        return result, [_consumed_event(subject_ref, units, left, key, meter)]

    def reserve(self, tx: StoreTransaction, subject_ref: str, units: int, key: str,
                now: datetime, ttl: timedelta, meter: str = "units") -> HoldRecord:
        # Sweep first: a hold of this key that is past its expiry must be seen as expired
        # (units given back, key free to hold again), not replayed as if it still held.
        locked = tx.lock_for_usage(subject_ref, now, hold_key=key)
        records, previous = locked.entitlements, locked.hold
        if locked.expired_holds and self.expire_holds(tx, subject_ref, now, records):
            # The rows, and this key's hold (the sweep may have settled it), as it left them.
            records, previous = tx.lock_subject(subject_ref), tx.get_hold_by_key(subject_ref, key)
        if previous is not None:
            if previous.units != units or previous.meter != meter:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was used to hold {previous.units} units"
                    + ("" if previous.meter == "units" else f" of {previous.meter!r}")
                )
            if previous.status in ("held", "committed"):
                return previous
            # Released or expired: nothing was charged, so a retry may hold again.
            plan, _ = self._take(tx, subject_ref, units, now, "held", previous.id, meter,
                                 records)
            renewed = replace(previous, allocations=plan, status="held", created_at=now,
                              expires_at=now + ttl, committed_units=None, settled_at=None)
            tx.save_hold(renewed)
            return renewed
        hold_id = new_id("hold")
        plan, _ = self._take(tx, subject_ref, units, now, "held", hold_id, meter, records)
        hold = HoldRecord(hold_id, self.mode, subject_ref, key, units, plan, "held", now,
                          now + ttl, meter=meter)
        tx.insert_hold(hold)
        return hold

    def commit(self, tx: StoreTransaction, hold_id: str, subject_ref: str, units: int | None,
               now: datetime) -> tuple[HoldRecord, UsageResult | None, list[ChangeEvent]]:
        """Settle a hold for ``units`` (all when None). Returns the result, or None when the
        hold had expired — the caller raises after the expiry is committed."""
        locked = tx.lock_for_usage(subject_ref, now, hold_id=hold_id)
        records, hold = locked.entitlements, locked.hold
        if hold is None:
            raise ReservationExpired(f"no hold {hold_id}")
        wanted = hold.units if units is None else units
        if wanted > hold.units:
            # A caller error (400), not a reused key: a hold caps what its commit may spend.
            raise InvalidRequest(f"cannot commit {wanted} units of a {hold.units}-unit hold")
        if hold.status == "committed":
            if hold.committed_units != wanted:
                raise IdempotencyConflict(f"hold {hold_id} was committed for "
                                          f"{hold.committed_units} units")
            return hold, UsageResult(True, wanted, remaining(records, now, hold.meter),
                                     replayed=True, meter=hold.meter), []
        if hold.status != "held":
            return hold, None, []
        if hold.expires_at <= now:
            self.expire_holds(tx, subject_ref, now, records)
            return tx.get_hold(hold_id) or hold, None, []
        giveback = _tail(hold.allocations, hold.units - wanted)
        given = self._give_back(tx, hold, giveback, "released", now, records)
        settled = _settled(hold, "committed", wanted, now)
        tx.save_hold(settled)
        self._ledger(tx, subject_ref, "committed", now, hold.allocations[0][0], 0, hold.id,
                     f"hold committed for {wanted} units", hold.meter)
        # What is left: the locked rows with the balances the give-back set (nothing else
        # changed them since the lock), instead of reading them all again.
        left = remaining([_with_balance(r, hold.meter, given[r.id]) if r.id in given else r
                          for r in records], now, hold.meter)
        return settled, UsageResult(True, wanted, left, meter=hold.meter), [
            _consumed_event(subject_ref, wanted, left, hold.idempotency_key, hold.meter)]

    def release(self, tx: StoreTransaction, hold_id: str, subject_ref: str,
                now: datetime) -> HoldRecord | None:
        locked = tx.lock_for_usage(subject_ref, now, hold_id=hold_id)
        hold = locked.hold
        if hold is None or hold.status != "held":
            return hold  # releasing twice, or after commit/expiry, changes nothing
        self._give_back(tx, hold, hold.allocations, "released", now, locked.entitlements)
        settled = _settled(hold, "released", None, now)
        tx.save_hold(settled)
        return settled


def _replay(previous: UsageRecord, units: int, meter: str) -> UsageResult:
    if previous.units != units or previous.meter != meter:
        raise IdempotencyConflict(
            f"idempotency key {previous.idempotency_key!r} was used for {previous.units} units"
            + ("" if previous.meter == "units" else f" of {previous.meter!r}")
        )
    return UsageResult(True, previous.units, previous.usage_remaining, replayed=True,
                       meter=previous.meter)


def _settled(hold: HoldRecord, status: str, committed: int | None, now: datetime) -> HoldRecord:
    return replace(hold, status=status, committed_units=committed, settled_at=now)


def _with_balance(record: EntitlementRecord, meter: str, balance: int) -> EntitlementRecord:
    return replace(record, balances={**record.balances, meter: balance})


def _tail(allocations: Allocation, units: int) -> Allocation:
    """The last ``units`` of an allocation: what a partial commit gives back, so the
    soonest-expiring entitlement stays the one that paid."""
    back: list[tuple[str, int]] = []
    for entitlement_id, taken in reversed(allocations):
        if units == 0:
            break
        give = min(units, taken)
        back.append((entitlement_id, give))
        units -= give
    return tuple(back)


def _consumed_event(subject_ref: str, units: int, left: int, key: str,
                    meter: str) -> ChangeEvent:
    return usage_consumed(subject_ref=subject_ref, consumed=units, usage_remaining=left,
                          idempotency_key=key, meter=meter)
