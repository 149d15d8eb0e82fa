"""Mode isolation (SPEC §4): test and live rows share a store but never see each other."""

from __future__ import annotations

import pytest

from licenzy_embed import EntitlementNotFound, InsufficientUsage, Licenzy
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock

from ..conftest import catalog
from ._support import snapshot


@pytest.fixture
def live(store: Store, clock: FrozenClock) -> Licenzy:
    return Licenzy(store=store, products=catalog(), clock=clock, stripe_api_key="sk_live_x")


def test_modes_come_from_the_key(lz: Licenzy, live: Licenzy) -> None:
    assert (lz.mode, live.mode) == ("test", "live")


def test_live_sees_none_of_test_modes_rows(lz: Licenzy, live: Licenzy, subject: str) -> None:
    pack = lz.grant(subject, "CREDITS_100", reason="test grant")
    lz.consume_usage(subject, 10, idempotency_key="k")
    lz.reserve_usage(subject, 5, idempotency_key="h")
    assert pack.mode == "test"

    assert not live.check_access(subject)
    assert live.entitlements(subject) == []
    assert live.ledger(subject) == []
    assert live.customer_access(subject).to_dict()["status"] == "none"
    with pytest.raises(EntitlementNotFound):
        live.revoke(pack.id, reason="x")
    with pytest.raises(EntitlementNotFound):
        live.adjust_usage(pack.id, 5, reason="x")
    with pytest.raises(InsufficientUsage) as err:
        live.consume_usage(subject, 1, idempotency_key="k")
    assert err.value.usage_remaining == 0
    assert live.release_expired_holds() >= 0
    # and test mode is untouched by all of that
    (ent,) = lz.entitlements(subject)
    assert (ent.usage_remaining, ent.status, ent.available) == (85, "active", True)


def test_test_mode_sees_none_of_live_modes_rows(lz: Licenzy, live: Licenzy,
                                                subject: str) -> None:
    pack = live.grant(subject, "CREDITS_100", reason="live grant")
    hold = live.reserve_usage(subject, 5, idempotency_key="h")
    assert pack.mode == "live"
    assert snapshot(lz, subject) == ([], [])
    assert not lz.check_access(subject)
    assert lz.get_reservation(hold.id) is None
    with pytest.raises(EntitlementNotFound):
        lz.revoke(pack.id, reason="x")
    assert live.get_reservation(hold.id) is not None
    assert live.check_access(subject)


def test_the_same_keys_and_subject_are_independent_per_mode(lz: Licenzy, live: Licenzy,
                                                            subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="t")
    live.grant(subject, "CREDITS_1K", reason="l")
    assert lz.consume_usage(subject, 10, idempotency_key="same").usage_remaining == 90
    # Another mode, another key space: 20 units is no conflict and spends live units.
    assert live.consume_usage(subject, 20, idempotency_key="same").usage_remaining == 980
    assert lz.reserve_usage(subject, 7, idempotency_key="hold").units == 7
    assert live.reserve_usage(subject, 9, idempotency_key="hold").units == 9
    assert [e.usage_remaining for e in lz.entitlements(subject)] == [83]
    assert [e.usage_remaining for e in live.entitlements(subject)] == [971]
    assert {e.mode for e in lz.ledger(subject)} == {"test"}
    assert {e.mode for e in live.ledger(subject)} == {"live"}


def test_restricted_keys_select_the_mode_too(store: Store, clock: FrozenClock,
                                             subject: str) -> None:
    rk_live = Licenzy(store=store, products=catalog(), clock=clock,
                      stripe_api_key="rk_live_x")
    rk_test = Licenzy(store=store, products=catalog(), clock=clock,
                      stripe_api_key="rk_test_x")
    rk_live.grant(subject, "LIFETIME", reason="x")
    assert rk_live.check_access(subject)
    assert not rk_test.check_access(subject)
