"""Property-based (hypothesis) and concurrent spending of several meters of one subject, on
every store: each meter's balance is never negative and never above what was granted, a
replay never spends twice, and spending one meter never moves another."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from licenzy_embed import IdempotencyConflict, InsufficientUsage, Licenzy, UsageResult
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock

from ._meters import metered_licenzy
from ._support import new_subject
from .test_concurrency import run_together

METERS = ("api_calls", "exports")
GRANTED = {"api_calls": 1000 + 100, "exports": 50 + 10}  # TEAM_MONTHLY + BUNDLE_PACK

operation = st.tuples(st.sampled_from(["consume", "hold", "commit", "release"]),
                      st.sampled_from(METERS), st.integers(1, 70),
                      st.sampled_from([f"k{i}" for i in range(5)]))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(operation, min_size=1, max_size=14))
def test_balances_per_meter_follow_a_model(store: Store, ops: list[tuple[str, str, int, str]]
                                           ) -> None:
    lz = metered_licenzy(store, FrozenClock())
    subject = new_subject()
    lz.grant(subject, "TEAM_MONTHLY", reason="a")
    lz.grant(subject, "BUNDLE_PACK", reason="b")
    left = dict(GRANTED)
    spent_keys: dict[str, tuple[str, int]] = {}  # consume key -> (meter, units)
    holds: dict[str, tuple[str, int, object]] = {}  # hold key -> (meter, units, reservation)
    for kind, meter, units, key in ops:
        if kind == "consume":
            try:
                result = lz.consume_usage(subject, units, idempotency_key=key, meter=meter)
            except IdempotencyConflict:
                assert spent_keys[key] != (meter, units)
                continue
            except InsufficientUsage as refused:
                assert key not in spent_keys and units > left[meter]
                assert refused.usage_remaining == left[meter]
                continue
            if key in spent_keys:
                assert result.replayed and spent_keys[key] == (meter, units)
            else:
                assert not result.replayed
                spent_keys[key] = (meter, units)
                left[meter] -= units
                assert result.usage_remaining == left[meter]
        elif kind == "hold":
            try:
                hold = lz.reserve_usage(subject, units, idempotency_key=key, meter=meter,
                                        ttl=timedelta(hours=1))
            except IdempotencyConflict:
                assert holds[key][:2] != (meter, units)
                continue
            except InsufficientUsage:
                assert units > left[meter]
                continue
            if key not in holds or holds[key][2].status == "released":  # type: ignore[attr-defined]
                left[meter] -= units  # new, or held again after a release
                holds[key] = (meter, units, hold)
        elif holds:
            hkey = sorted(holds)[units % len(holds)]
            hmeter, hunits, reservation = holds[hkey]
            if reservation.status != "held":  # type: ignore[attr-defined]
                continue
            if kind == "commit":
                reservation.commit(max(hunits - 1, 1))  # type: ignore[attr-defined]
                left[hmeter] += hunits - max(hunits - 1, 1)
            else:
                reservation.release()  # type: ignore[attr-defined]
                left[hmeter] += hunits
        balances = {m: sum(e.meters.get(m, 0) for e in lz.entitlements(subject))
                    for m in METERS}
        assert balances == left
        for m in METERS:
            assert 0 <= balances[m] <= GRANTED[m]
        for e in lz.entitlements(subject):
            assert all(v >= 0 for v in e.meters.values())
            assert e.usage_remaining == sum(e.meters.values())
    # The ledger adds up to the balances, meter by meter.
    for m in METERS:
        moved = sum(e.units_delta or 0 for e in lz.ledger(subject) if e.meter == m)
        assert moved == left[m]


def test_two_meters_spent_at_once_by_threads(store: Store) -> None:
    lz: Licenzy = metered_licenzy(store, FrozenClock())
    subject = new_subject()
    lz.grant(subject, "TEAM_MONTHLY", reason="a")  # 1000 api_calls, 50 exports
    work = ([lambda i=i: lz.consume_usage(subject, 7, idempotency_key=f"a{i}",
                                          meter="api_calls") for i in range(8)]
            + [lambda i=i: _try(lambda: lz.consume_usage(subject, 9, idempotency_key=f"e{i}",
                                                         meter="exports")) for i in range(8)]
            + [lambda i=i: lz.consume_usage(subject, 7, idempotency_key="a0",
                                            meter="api_calls") for i in range(2)])
    results = run_together(work)
    spent_exports = [r for r in results[8:16] if isinstance(r, UsageResult)]
    assert len(spent_exports) == 5  # 5 x 9 = 45 of 50; the other three were refused
    (view,) = lz.entitlements(subject)
    assert view.meters == {"api_calls": 1000 - 8 * 7, "exports": 50 - 45}
    # Key a0 ran three times at once: one spend, two replays of it.
    same_key = [results[0], *results[16:]]
    assert sorted(r.replayed for r in same_key) == [False, True, True]  # type: ignore[union-attr]


def _try(call: object) -> object:
    try:
        return call()  # type: ignore[operator]
    except InsufficientUsage as refused:
        assert refused.meter == "exports"
        return refused
