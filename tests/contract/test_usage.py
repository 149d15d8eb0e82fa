"""SPEC §4 consumption: order across entitlements, all or nothing, idempotent replays."""

from __future__ import annotations

from datetime import timedelta

import pytest

from licenzy_embed import ChangeEvent, IdempotencyConflict, InsufficientUsage, Licenzy
from licenzy_embed.testing import FrozenClock

from ._support import insert_entitlement, new_subject, remaining_by_id, snapshot, units_left


def test_consume_spends_and_reports_what_is_left(lz: Licenzy, subject: str) -> None:
    pack = lz.grant(subject, "CREDITS_100", reason="a")
    result = lz.consume_usage(subject, 30, idempotency_key="req-1")
    assert result and (result.ok, result.consumed, result.usage_remaining) == (True, 30, 70)
    assert not result.replayed
    assert remaining_by_id(lz, subject) == {pack.id: 70}


def test_soonest_expiring_first_then_no_expiry_oldest_first(lz: Licenzy, clock: FrozenClock,
                                                             subject: str) -> None:
    start = clock()
    old_pack = lz.grant(subject, "CREDITS_100", reason="oldest, never expires")
    clock.advance(minutes=1)
    sub = lz.grant(subject, "PRO_MONTHLY", reason="second oldest, never expires", units=50)
    clock.advance(minutes=1)
    late = lz.grant(subject, "CREDITS_100", reason="expires later", units=10,
                    expires_at=start + timedelta(days=60))
    clock.advance(minutes=1)
    soon = lz.grant(subject, "CREDITS_30D", reason="expires first", units=20)
    clock.advance(minutes=1)
    pass_ = lz.grant(subject, "WEEK_PASS", reason="not metered: never pays")
    assert soon.expires_at is not None and late.expires_at is not None
    assert soon.expires_at < late.expires_at

    lz.consume_usage(subject, 25, idempotency_key="1")  # soon 20, then late 5
    assert remaining_by_id(lz, subject) == {old_pack.id: 100, sub.id: 50, late.id: 5,
                                            soon.id: 0, pass_.id: None}
    lz.consume_usage(subject, 10, idempotency_key="2")  # late 5, then the oldest no-expiry
    assert remaining_by_id(lz, subject) == {old_pack.id: 95, sub.id: 50, late.id: 0,
                                            soon.id: 0, pass_.id: None}
    result = lz.consume_usage(subject, 100, idempotency_key="3")  # old pack 95, then sub 5
    assert result.usage_remaining == 45
    assert remaining_by_id(lz, subject) == {old_pack.id: 0, sub.id: 45, late.id: 0,
                                            soon.id: 0, pass_.id: None}


def test_among_equal_expiries_the_oldest_pays_first(lz: Licenzy, clock: FrozenClock,
                                                    subject: str) -> None:
    end = clock() + timedelta(days=10)
    first = lz.grant(subject, "CREDITS_100", reason="a", expires_at=end)
    clock.advance(seconds=1)
    second = lz.grant(subject, "CREDITS_100", reason="b", expires_at=end)
    lz.consume_usage(subject, 101, idempotency_key="k")
    assert remaining_by_id(lz, subject) == {first.id: 0, second.id: 99}


def test_unavailable_entitlements_never_pay(lz: Licenzy, clock: FrozenClock,
                                            subject: str) -> None:
    expired = lz.grant(subject, "CREDITS_100", reason="a", expires_at=clock() + timedelta(hours=1))
    revoked = lz.grant(subject, "CREDITS_100", reason="b")
    lz.revoke(revoked.id, reason="fraud")
    pending = insert_entitlement(lz, subject, "CREDITS_1K", status="pending")
    canceled = insert_entitlement(lz, subject, "PRO_MONTHLY", status="canceled")
    good = lz.grant(subject, "CREDITS_100", reason="c")
    clock.advance(hours=1)
    with pytest.raises(InsufficientUsage) as err:
        lz.consume_usage(subject, 101, idempotency_key="k")
    assert (err.value.requested, err.value.usage_remaining) == (101, 100)
    lz.consume_usage(subject, 100, idempotency_key="k2")
    assert remaining_by_id(lz, subject) == {expired.id: 100, revoked.id: 100, pending.id: 1000,
                                            canceled.id: 1000, good.id: 0}


def test_shortfall_consumes_nothing(lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.grant(subject, "CREDITS_30D", reason="b", units=50)
    events: list[ChangeEvent] = []
    lz.on("usage.consumed", events.append)
    before = snapshot(lz, subject)
    with pytest.raises(InsufficientUsage) as err:
        lz.consume_usage(subject, 151, idempotency_key="too-much")
    assert (err.value.requested, err.value.usage_remaining) == (151, 150)
    assert (err.value.code, err.value.status) == ("insufficient_usage", 409)
    assert err.value.to_dict() == {"error": "insufficient_usage", "message": str(err.value),
                                   "requested": 151, "usage_remaining": 150, "meter": "units",
                                   "upgrade": [{"product_code": p.code, "kind": p.kind}
                                               for p in lz.catalog if p.units is not None]}
    assert snapshot(lz, subject) == before
    assert events == []


def test_spending_exactly_everything_then_one_more(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    assert lz.consume_usage(subject, 100, idempotency_key="all").usage_remaining == 0
    with pytest.raises(InsufficientUsage) as err:
        lz.consume_usage(subject, 1, idempotency_key="one more")
    assert (err.value.requested, err.value.usage_remaining) == (1, 0)


def test_subject_without_metered_entitlements_has_zero_units(lz: Licenzy,
                                                             subject: str) -> None:
    lz.grant(subject, "LIFETIME", reason="a")
    lz.grant(subject, "BASIC_MONTHLY", reason="b")
    with pytest.raises(InsufficientUsage) as err:
        lz.consume_usage(subject, 1, idempotency_key="k")
    assert err.value.usage_remaining == 0
    assert lz.check_access(subject)  # access without units is still access


def test_a_failed_consume_does_not_burn_its_key(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a", units=5)
    with pytest.raises(InsufficientUsage):
        lz.consume_usage(subject, 10, idempotency_key="job-1")
    lz.grant(subject, "CREDITS_100", reason="top-up", units=5)
    result = lz.consume_usage(subject, 10, idempotency_key="job-1")
    assert (result.consumed, result.usage_remaining, result.replayed) == (10, 0, False)


# ---------------------------------------------------------------- idempotency
def test_replay_returns_the_first_result_and_spends_nothing(lz: Licenzy,
                                                            subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    first = lz.consume_usage(subject, 10, idempotency_key="req-1")
    lz.consume_usage(subject, 5, idempotency_key="req-2")
    before = snapshot(lz, subject)
    again = lz.consume_usage(subject, 10, idempotency_key="req-1")
    assert (again.ok, again.consumed, again.usage_remaining) == (True, 10, 90)
    assert again.to_dict() == first.to_dict()
    assert again.replayed
    assert snapshot(lz, subject) == before
    assert units_left(lz, subject) == 85


def test_replay_answers_even_when_nothing_is_left(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.consume_usage(subject, 100, idempotency_key="all")
    assert lz.consume_usage(subject, 100, idempotency_key="all").to_dict() == {
        "ok": True, "consumed": 100, "usage_remaining": 0, "meter": "units"}


def test_same_key_other_units_is_a_conflict(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.consume_usage(subject, 10, idempotency_key="req-1")
    before = snapshot(lz, subject)
    with pytest.raises(IdempotencyConflict) as err:
        lz.consume_usage(subject, 11, idempotency_key="req-1")
    assert (err.value.code, err.value.status) == ("idempotency_conflict", 422)
    assert snapshot(lz, subject) == before


def test_keys_are_scoped_per_subject(lz: Licenzy, subject: str) -> None:
    other = new_subject()
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.grant(other, "CREDITS_100", reason="a")
    assert lz.consume_usage(subject, 10, idempotency_key="shared").usage_remaining == 90
    second = lz.consume_usage(other, 20, idempotency_key="shared")  # other units: no conflict
    assert (second.usage_remaining, second.replayed) == (80, False)
    assert units_left(lz, subject) == 90


def test_consumed_event_is_sent_once_after_commit(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    seen: list[tuple[ChangeEvent, int]] = []
    # The callback reads the store: the spend it announces is already committed.
    lz.on("usage.consumed", lambda e: seen.append((e, units_left(lz, subject))))
    lz.consume_usage(subject, 10, idempotency_key="req-1")
    lz.consume_usage(subject, 10, idempotency_key="req-1")
    with pytest.raises(InsufficientUsage):
        lz.consume_usage(subject, 1000, idempotency_key="req-2")
    assert len(seen) == 1
    event, left_then = seen[0]
    assert event.type == "usage.consumed"
    assert event.data == {"subject_ref": subject, "consumed": 10, "usage_remaining": 90,
                          "idempotency_key": "req-1", "meter": "units"}
    assert left_then == 90


def test_a_failing_callback_does_not_undo_the_spend(lz: Licenzy, subject: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")

    def broken(event: ChangeEvent) -> None:
        raise RuntimeError("webhook relay down")

    lz.on("usage.consumed", broken)
    with caplog.at_level("ERROR", logger="licenzy_embed"):
        result = lz.consume_usage(subject, 10, idempotency_key="req")
    assert result.usage_remaining == 90
    assert units_left(lz, subject) == 90
    assert "usage.consumed callback failed" in caplog.text
