"""The one unit of work: a race for a unique key is re-run like a deadlock, under the same
budget of attempts, and the services share it (no retry loop nested in another)."""

from __future__ import annotations

from typing import Any

import pytest

from licenzy_embed import StoreUnavailable
from licenzy_embed.events import ChangeEvent
from licenzy_embed.stores import DuplicateKey
from licenzy_embed.unit_of_work import ATTEMPTS

from .test_core_retry import make


def test_a_lost_race_for_a_unique_key_is_run_again_and_answers_the_winner() -> None:
    lz, store = make(failures=0)
    attempts: list[int] = []
    seen: list[ChangeEvent] = []
    lz.on("*", seen.append)

    def work(tx: Any) -> tuple[str, list[ChangeEvent]]:
        attempts.append(1)
        if len(attempts) == 1:  # another transaction inserted the row first
            raise DuplicateKey("k")
        return "winner", [ChangeEvent("usage.consumed", {"attempt": len(attempts)})]

    assert lz.unit_of_work.run(work) == "winner"
    assert len(attempts) == store.opened == 2
    assert [e.data for e in seen] == [{"attempt": 2}]


def test_deadlocks_and_key_races_share_one_budget_of_attempts() -> None:
    lz, store = make(failures=1)  # the first attempt deadlocks
    attempts: list[int] = []

    def work(tx: Any) -> tuple[None, list[ChangeEvent]]:
        attempts.append(1)
        raise DuplicateKey("k")

    with pytest.raises(DuplicateKey):
        lz.unit_of_work.run(work)
    assert len(attempts) == store.opened == ATTEMPTS == 3


def test_a_webhook_runs_in_the_shared_unit_of_work_once_per_attempt() -> None:
    lz, store = make(failures=ATTEMPTS)  # every attempt deadlocks
    from licenzy_embed.testing import StripeSimulator

    sim = StripeSimulator.for_licenzy(lz)
    event = sim.event("customer.created", {"id": "cus_1", "object": "customer"})
    store.opened = 0
    with pytest.raises(StoreUnavailable):
        sim.deliver(event)
    assert store.opened == ATTEMPTS  # not attempts x attempts: one loop, not two nested
