"""Concurrent spending through the store fixture: never overdrawn, never spent twice.

Threads start together on a Barrier; nothing here sleeps or measures time. Every
``InsufficientUsage`` must report a balance the subject really had at some point: the spends
serialise, so the balances they leave form one chain from the start down to the end.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from licenzy_embed import InsufficientUsage, Licenzy, UsageResult
from licenzy_embed.usage import Reservation

from ._support import units_left

T = TypeVar("T")


def run_together(workers: list[Callable[[], T]]) -> list[T]:
    """Run each worker in its own thread, all released at once; re-raise the first error."""
    barrier = threading.Barrier(len(workers))
    results: list[T | None] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(i: int, work: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


def check_chain(start: int, successes: list[UsageResult],
                failures: list[InsufficientUsage]) -> int:
    """Successful spends leave distinct balances, each the previous minus what it spent;
    a refused spend saw one of those balances, and it was smaller than what it asked."""
    ordered = sorted(successes, key=lambda r: -r.usage_remaining)
    balances = [start]
    for result in ordered:
        assert result.usage_remaining == balances[-1] - result.consumed, (balances, result)
        balances.append(result.usage_remaining)
    for failure in failures:
        assert failure.usage_remaining in balances, (failure.usage_remaining, balances)
        assert failure.usage_remaining < failure.requested
    return balances[-1]


def test_sixteen_threads_spend_exactly_the_balance(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a", units=200)
    lz.grant(subject, "CREDITS_30D", reason="b", units=100)
    balance = 300
    rng = random.Random(7)
    plans = [[rng.randint(1, 6) for _ in range(12)] for _ in range(16)]  # ~16*12*3.5 > 300
    assert sum(map(sum, plans)) > balance

    def spender(n: int) -> Callable[[], tuple[list[UsageResult], list[InsufficientUsage]]]:
        def work() -> tuple[list[UsageResult], list[InsufficientUsage]]:
            ok: list[UsageResult] = []
            refused: list[InsufficientUsage] = []
            for i, units in enumerate(plans[n]):
                try:
                    ok.append(lz.consume_usage(subject, units, idempotency_key=f"t{n}-{i}"))
                except InsufficientUsage as exc:
                    refused.append(exc)
            return ok, refused
        return work

    outcomes = run_together([spender(n) for n in range(16)])
    successes = [r for ok, _ in outcomes for r in ok]
    failures = [f for _, refused in outcomes for f in refused]
    assert failures, "the plans ask for more than the balance"
    final = check_chain(balance, successes, failures)
    spent = sum(r.consumed for r in successes)
    assert final == balance - spent == units_left(lz, subject)
    assert final >= 0
    assert all(e.usage_remaining is not None and e.usage_remaining >= 0
               for e in lz.entitlements(subject))
    # once nothing fits, the leftover is smaller than the smallest refused request
    assert final < min(f.requested for f in failures)
    consumed_in_ledger = -sum(e.units_delta or 0 for e in lz.ledger(subject)
                              if e.action == "consumed")
    assert consumed_in_ledger == spent


def test_sixteen_threads_drain_the_balance_exactly(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")  # 100 units, 16 x 7 = 112 asked

    def work(n: int) -> Callable[[], UsageResult | InsufficientUsage]:
        def spend() -> UsageResult | InsufficientUsage:
            try:
                return lz.consume_usage(subject, 7, idempotency_key=f"k{n}")
            except InsufficientUsage as exc:
                return exc
        return spend

    outcomes = run_together([work(n) for n in range(16)])
    successes = [o for o in outcomes if isinstance(o, UsageResult)]
    failures = [o for o in outcomes if isinstance(o, InsufficientUsage)]
    assert (len(successes), len(failures)) == (14, 2)
    assert sorted(r.usage_remaining for r in successes) == [100 - 7 * i for i in range(14, 0, -1)]
    assert [(f.requested, f.usage_remaining) for f in failures] == [(7, 2), (7, 2)]
    assert units_left(lz, subject) == 2


def test_the_same_key_from_eight_threads_spends_once(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    outcomes = run_together(
        [lambda: lz.consume_usage(subject, 30, idempotency_key="one-request")] * 8)
    assert {(r.ok, r.consumed, r.usage_remaining) for r in outcomes} == {(True, 30, 70)}
    assert sum(not r.replayed for r in outcomes) == 1
    assert units_left(lz, subject) == 70
    assert [e.units_delta for e in lz.ledger(subject) if e.action == "consumed"] == [-30]


def test_concurrent_reserves_never_hold_more_than_the_balance(lz: Licenzy,
                                                              subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")

    def work(n: int) -> Callable[[], Reservation | InsufficientUsage]:
        def hold() -> Reservation | InsufficientUsage:
            try:
                return lz.reserve_usage(subject, 15, idempotency_key=f"h{n}")
            except InsufficientUsage as exc:
                return exc
        return hold

    outcomes = run_together([work(n) for n in range(16)])
    holds = [o for o in outcomes if isinstance(o, Reservation)]
    refused = [o for o in outcomes if isinstance(o, InsufficientUsage)]
    assert (len(holds), len(refused)) == (6, 10)  # 6 x 15 = 90 of 100
    assert {(f.requested, f.usage_remaining) for f in refused} == {(15, 10)}
    assert units_left(lz, subject) == 10

    # settle them concurrently too: half commit 5 units, half release
    settle: list[Callable[[], object]] = [
        partial(h.commit, 5) if i % 2 == 0 else h.release for i, h in enumerate(holds)]
    run_together(settle)
    assert units_left(lz, subject) == 100 - 3 * 5
    assert sorted(h.status for h in holds) == ["committed"] * 3 + ["released"] * 3


def test_the_same_hold_key_from_eight_threads_holds_once(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    outcomes = run_together(
        [lambda: lz.reserve_usage(subject, 40, idempotency_key="one-request")] * 8)
    assert len({h.id for h in outcomes}) == 1
    assert units_left(lz, subject) == 60
    results = run_together([h.commit for h in outcomes])
    assert sum(not r.replayed for r in results) == 1
    assert units_left(lz, subject) == 60


def test_spends_on_different_subjects_do_not_interfere(lz: Licenzy, subject: str) -> None:
    subjects = [f"{subject}-{n}" for n in range(8)]
    for s in subjects:
        lz.grant(s, "CREDITS_100", reason="a")

    def drain(s: str) -> Callable[[], int]:
        def work() -> int:
            for i in range(10):
                lz.consume_usage(s, 10, idempotency_key=f"k{i}")
            return units_left(lz, s)
        return work

    assert run_together([drain(s) for s in subjects]) == [0] * 8


def test_concurrent_sweeps_give_expired_holds_back_once(lz: Licenzy, subject: str,
                                                        clock: object) -> None:
    """Periodic sweeps from several workers, racing the subject's own lazy sweep, release each
    expired hold exactly once: the balance comes back to what was granted, not above it."""
    from datetime import timedelta

    from licenzy_embed.testing import FrozenClock

    assert isinstance(clock, FrozenClock)
    lz.grant(subject, "CREDITS_100", reason="sweep race")
    for i in range(5):
        lz.reserve_usage(subject, 20, idempotency_key=f"h{i}", ttl=timedelta(seconds=30))
    assert units_left(lz, subject) == 0
    clock.advance(minutes=1)
    results = run_together([lz.release_expired_holds for _ in range(4)]
                           + [partial(lz.customer_access, subject) for _ in range(2)])
    assert sum(r for r in results if isinstance(r, int)) <= 5
    assert units_left(lz, subject) == 100
    assert lz.consume_usage(subject, 100, idempotency_key="all").usage_remaining == 0
