"""``Licenzy`` runs a transaction again when the database aborted it to break a deadlock
(``StoreUnavailable(retryable=True)``): it wrote nothing, so a re-run is the whole answer. Any
other outage is not retried, and a nested block never retries on its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from licenzy_embed import InMemoryStore, Licenzy, StoreUnavailable

from .conftest import catalog


class DeadlockingStore(InMemoryStore):
    """Aborts the next ``failures`` transactions the way a database breaks a deadlock: after
    the work ran, so its writes must be rolled back."""

    def __init__(self, failures: int, *, retryable: bool = True) -> None:
        super().__init__()
        self.failures = failures
        self.retryable = retryable
        self.opened = 0

    @contextmanager
    def transaction(self, mode: str) -> Iterator[Any]:
        with super().transaction(mode) as tx:
            self.opened += 1
            yield tx
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("deadlock detected", retryable=self.retryable)


def make(failures: int, *, retryable: bool = True) -> tuple[Licenzy, DeadlockingStore]:
    store = DeadlockingStore(0, retryable=retryable)
    lz = Licenzy(store=store, products=catalog())
    lz.grant("user_1", "CREDITS_100", reason="retry tests")
    store.failures, store.opened = failures, 0
    return lz, store


def test_a_deadlocked_spend_is_run_again_and_spends_once() -> None:
    lz, store = make(failures=2)
    seen: list[object] = []
    lz.on("usage.consumed", seen.append)
    result = lz.consume_usage("user_1", 30, idempotency_key="k")
    assert (result.consumed, result.usage_remaining, result.replayed) == (30, 70, False)
    assert store.opened == 3
    assert len(seen) == 1  # events of the aborted attempts were never dispatched
    assert [e.units_delta for e in lz.ledger("user_1")] == [100, -30]


def test_a_spend_that_keeps_deadlocking_fails_closed_after_three_attempts() -> None:
    lz, store = make(failures=5)
    with pytest.raises(StoreUnavailable):
        lz.consume_usage("user_1", 30, idempotency_key="k")
    assert store.opened == 3
    store.failures = 0
    assert lz.customer_access("user_1").entitlements[0].usage_remaining == 100


def test_an_outage_that_is_not_a_deadlock_is_not_retried() -> None:
    lz, store = make(failures=1, retryable=False)
    with pytest.raises(StoreUnavailable):
        lz.consume_usage("user_1", 30, idempotency_key="k")
    assert store.opened == 1


def test_a_nested_block_leaves_the_retry_to_the_outermost_transaction() -> None:
    lz, _ = make(failures=0)
    inner_attempts = outer_attempts = 0

    def inner(tx: Any) -> tuple[int, list[Any]]:
        nonlocal inner_attempts
        inner_attempts += 1
        raise StoreUnavailable("deadlock detected", retryable=True)

    def outer(tx: Any) -> tuple[int, list[Any]]:
        nonlocal outer_attempts
        outer_attempts += 1
        return lz.unit_of_work.run(inner), []

    with pytest.raises(StoreUnavailable):
        lz.unit_of_work.run(outer)
    # the outer transaction ran three times; each time its nested block ran once
    assert (outer_attempts, inner_attempts) == (3, 3)
