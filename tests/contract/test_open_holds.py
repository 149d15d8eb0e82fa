"""The open-hold queries (``open_holds``, ``expired_holds``, ``has_expired_holds``) answer from
the holds still ``held`` only, and follow every status change, rollback and re-reservation:
stores may index the open holds apart from the settled history (InMemoryStore does, SQL has
an index on status), and an index that missed a change would hand out or hide units."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.records import HoldRecord
from licenzy_embed.stores.base import Store

from ._support import new_subject


class Boom(Exception):
    pass


def _hold(lz: Licenzy, subject: str, key: str, entitlement_id: str, *, status: str = "held",
          ttl: timedelta = timedelta(minutes=5)) -> HoldRecord:
    now = lz.now()
    return HoldRecord(f"hold_{new_subject()}", lz.mode, subject, key, 1,
                      ((entitlement_id, 1),), status, now, now + ttl)


def _open_ids(store: Store, lz: Licenzy, subject: str) -> list[str]:
    with store.transaction(lz.mode) as tx:
        return [h.idempotency_key for h in tx.open_holds(subject)]


def test_only_held_holds_are_open_whatever_the_history(lz: Licenzy, store: Store,
                                                       subject: str) -> None:
    pack = lz.grant(subject, "CREDITS_100", reason="a")
    other = new_subject()
    with store.transaction(lz.mode) as tx:
        for n in range(50):
            tx.insert_hold(_hold(lz, subject, f"settled-{n}", pack.id, status="committed"))
        tx.insert_hold(_hold(lz, subject, "open-late", pack.id, ttl=timedelta(hours=1)))
        tx.insert_hold(_hold(lz, subject, "open-expired", pack.id, ttl=timedelta(0)))
        tx.insert_hold(_hold(lz, other, "elsewhere", pack.id, ttl=timedelta(0)))
    assert sorted(_open_ids(store, lz, subject)) == ["open-expired", "open-late"]
    now = lz.now()
    with store.transaction(lz.mode) as tx:
        assert [h.idempotency_key for h in tx.expired_holds(subject, now)] == ["open-expired"]
        assert sorted(h.idempotency_key for h in tx.expired_holds(None, now)) == [
            "elsewhere", "open-expired"]
    assert store.has_expired_holds(lz.mode, subject, now)
    assert not store.has_expired_holds(lz.mode, new_subject(), now)


def test_settling_rolling_back_and_renewing_move_a_hold_in_and_out(
        lz: Licenzy, store: Store, subject: str) -> None:
    pack = lz.grant(subject, "CREDITS_100", reason="a")
    hold = _hold(lz, subject, "k", pack.id, ttl=timedelta(0))
    with store.transaction(lz.mode) as tx:
        tx.insert_hold(hold)
    settled = replace(hold, status="released", settled_at=lz.now())

    # A settlement that is rolled back leaves the hold open.
    with pytest.raises(Boom), store.transaction(lz.mode) as tx:
        tx.save_hold(settled)
        assert tx.open_holds(subject) == []
        raise Boom
    assert _open_ids(store, lz, subject) == ["k"]
    assert store.has_expired_holds(lz.mode, subject, lz.now())

    with store.transaction(lz.mode) as tx:
        tx.save_hold(settled)
    assert _open_ids(store, lz, subject) == []
    assert not store.has_expired_holds(lz.mode, subject, lz.now())
    with store.transaction(lz.mode) as tx:
        assert tx.expired_holds(subject, lz.now()) == []

    # Renewed under the same key (a retry after a release): open again.
    with store.transaction(lz.mode) as tx:
        tx.save_hold(replace(settled, status="held", settled_at=None))
    assert _open_ids(store, lz, subject) == ["k"]

    # An insert that is rolled back leaves nothing open.
    with pytest.raises(Boom), store.transaction(lz.mode) as tx:
        tx.insert_hold(_hold(lz, subject, "never", pack.id))
        raise Boom
    assert _open_ids(store, lz, subject) == ["k"]


def test_a_reservation_after_many_settled_ones_sees_only_its_own(lz: Licenzy,
                                                                 subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    for n in range(30):
        lz.reserve_usage(subject, 1, idempotency_key=f"r{n}").commit()
    open_hold = lz.reserve_usage(subject, 5, idempotency_key="open")
    assert lz.entitlements(subject)[0].usage_remaining == 100 - 30 - 5
    open_hold.release()
    assert lz.entitlements(subject)[0].usage_remaining == 70
