"""The Store protocol itself (stores/base.py): what the core relies on from every store —
rollback of a failed transaction, unique keys, conditional unit updates, mode scoping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.ledger import LedgerEntry
from licenzy_embed.records import HoldRecord, UsageRecord
from licenzy_embed.stores.base import DuplicateKey, Store, UnitsConflict

from ._support import insert_entitlement, new_subject, snapshot


class Boom(Exception):
    pass


def test_a_failed_transaction_leaves_nothing(lz: Licenzy, store: Store, subject: str) -> None:
    pack = lz.grant(subject, "CREDITS_100", reason="a")
    before = snapshot(lz, subject)
    with pytest.raises(Boom), store.transaction(lz.mode) as tx:
        tx.lock_subject(subject)
        tx.adjust_units(pack.id, -40, lz.now())
        tx.add_ledger(LedgerEntry.new(mode=lz.mode, subject_ref=subject, action="consumed",
                                      source="runtime", reason="x", at=lz.now(),
                                      entitlement_id=pack.id, units_delta=-40))
        tx.insert_usage_record(UsageRecord(lz.mode, subject, "k", 40, ((pack.id, 40),), 60,
                                           lz.now()))
        raise Boom
    assert snapshot(lz, subject) == before
    # and the idempotency record was rolled back too: the key is free
    assert lz.consume_usage(subject, 40, idempotency_key="k").replayed is False


def test_adjust_units_is_conditional(lz: Licenzy, store: Store, subject: str) -> None:
    pack = lz.grant(subject, "CREDITS_100", reason="a")
    with store.transaction(lz.mode) as tx:
        tx.lock_subject(subject)
        assert tx.adjust_units(pack.id, -100, lz.now()) == 0
    with pytest.raises(UnitsConflict), store.transaction(lz.mode) as tx:
        tx.lock_subject(subject)
        tx.adjust_units(pack.id, -1, lz.now())
    (ent,) = lz.entitlements(subject)
    assert ent.usage_remaining == 0


def test_unique_keys_raise_duplicate_key(lz: Licenzy, store: Store, subject: str) -> None:
    pack = lz.grant(subject, "CREDITS_100", reason="a")
    now = lz.now()
    usage = UsageRecord(lz.mode, subject, "key", 1, ((pack.id, 1),), 99, now)
    hold = HoldRecord("hold_" + new_subject(), lz.mode, subject, "hkey", 1, ((pack.id, 1),),
                      "held", now, now + timedelta(minutes=5))
    with store.transaction(lz.mode) as tx:
        tx.insert_usage_record(usage)
        tx.insert_hold(hold)
    same_key = HoldRecord("hold_" + new_subject(), lz.mode, subject, "hkey", 2,
                          ((pack.id, 2),), "held", now, now + timedelta(minutes=5))
    with pytest.raises(DuplicateKey), store.transaction(lz.mode) as tx:
        tx.insert_usage_record(usage)
    with pytest.raises(DuplicateKey), store.transaction(lz.mode) as tx:
        tx.insert_hold(same_key)
    with pytest.raises(DuplicateKey), store.transaction(lz.mode) as tx:
        tx.insert_entitlement(store.get_entitlement(lz.mode, pack.id))  # type: ignore[arg-type]


def test_reads_are_scoped_to_a_mode(lz: Licenzy, store: Store, subject: str) -> None:
    rec = insert_entitlement(lz, subject, "LIFETIME", status="active")
    now = lz.now()
    assert store.has_access("test", subject, now)
    assert not store.has_access("live", subject, now)
    assert [r.id for r in store.list_entitlements("test", subject)] == [rec.id]
    assert store.list_entitlements("live", subject) == []
    assert store.get_entitlement("live", rec.id) is None
    got = store.get_entitlement("test", rec.id)
    assert got is not None and got.id == rec.id


def test_records_round_trip(lz: Licenzy, store: Store, subject: str) -> None:
    rec = insert_entitlement(lz, subject, "PRO_MONTHLY", status="past_due",
                             grace_until=lz.now() + timedelta(days=3),
                             expires_at=lz.now() + timedelta(days=20),
                             stripe_subscription_id="sub_" + subject, quantity=2,
                             prior_status="active", period_key="2026-03")
    got = store.get_entitlement(lz.mode, rec.id)
    assert got == rec
    assert store.has_access(lz.mode, subject, lz.now())
    assert not store.has_access(lz.mode, subject, lz.now() + timedelta(days=3))
