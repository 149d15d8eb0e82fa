"""A store that cannot be reached makes every call fail closed with StoreUnavailable (503),
and nothing is half written (the in-memory store's outage switch stands in for a database)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from licenzy_embed import InMemoryStore, Licenzy, StoreUnavailable

from .conftest import catalog


def test_every_call_fails_closed_while_the_store_is_down() -> None:
    store = InMemoryStore()
    lz = Licenzy(store=store, products=catalog())
    pack = lz.grant("u1", "CREDITS_100", reason="x")
    hold = lz.reserve_usage("u1", 10, idempotency_key="h")
    before = ([e.to_dict() for e in lz.entitlements("u1")], lz.ledger("u1"))
    calls: list[Callable[[], object]] = [
        lambda: lz.check_access("u1"),
        lambda: lz.customer_access("u1"),
        lambda: lz.entitlements("u1"),
        lambda: lz.ledger("u1"),
        lambda: lz.consume_usage("u1", 1, idempotency_key="k"),
        lambda: lz.reserve_usage("u1", 1, idempotency_key="k"),
        lambda: lz.grant("u1", "CREDITS_100", reason="x"),
        lambda: lz.revoke(pack.id, reason="x"),
        lambda: lz.adjust_usage(pack.id, 5, reason="x"),
        hold.commit,
        hold.release,
        lz.release_expired_holds,
    ]
    with store.unavailable():
        for call in calls:
            with pytest.raises(StoreUnavailable) as err:
                call()
            assert (err.value.code, err.value.status) == ("entitlements_unavailable", 503)
    assert ([e.to_dict() for e in lz.entitlements("u1")], lz.ledger("u1")) == before
    assert lz.check_access("u1")
    assert hold.commit().usage_remaining == 90
