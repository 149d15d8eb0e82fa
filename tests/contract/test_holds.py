"""Reservations (holds): they block concurrent spending until committed, released or expired."""

from __future__ import annotations

from datetime import timedelta

import pytest

from licenzy_embed import (
    ChangeEvent,
    IdempotencyConflict,
    InsufficientUsage,
    InvalidRequest,
    Licenzy,
    ReservationExpired,
)
from licenzy_embed.testing import FrozenClock

from ._support import remaining_by_id, snapshot, units_left


def test_a_hold_blocks_other_spending(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    hold = lz.reserve_usage(subject, 80, idempotency_key="job")
    assert (hold.units, hold.status, hold.subject_ref) == (80, "held", subject)
    assert units_left(lz, subject) == 20
    with pytest.raises(InsufficientUsage) as err:
        lz.consume_usage(subject, 21, idempotency_key="other")
    assert (err.value.requested, err.value.usage_remaining) == (21, 20)
    with pytest.raises(InsufficientUsage):
        lz.reserve_usage(subject, 21, idempotency_key="other-hold")
    assert lz.consume_usage(subject, 20, idempotency_key="fits").usage_remaining == 0


def test_commit_spends_the_held_units(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    events: list[ChangeEvent] = []
    lz.on("usage.consumed", events.append)
    hold = lz.reserve_usage(subject, 30, idempotency_key="job")
    assert events == []  # a hold is not a spend yet
    result = hold.commit()
    assert (result.ok, result.consumed, result.usage_remaining) == (True, 30, 70)
    assert (hold.status, hold.committed_units) == ("committed", 30)
    assert units_left(lz, subject) == 70
    assert [e.data["consumed"] for e in events] == [30]
    again = hold.commit()  # a retried commit is a replay
    assert (again.consumed, again.replayed) == (30, True)
    assert units_left(lz, subject) == 70 and len(events) == 1


def test_partial_commit_gives_the_rest_back(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    hold = lz.reserve_usage(subject, 30, idempotency_key="job")
    result = hold.commit(12)
    assert (result.consumed, result.usage_remaining) == (12, 88)
    assert hold.committed_units == 12
    assert units_left(lz, subject) == 88
    with pytest.raises(IdempotencyConflict):
        hold.commit(13)
    assert units_left(lz, subject) == 88


def test_partial_commit_gives_back_to_the_entitlement_spent_last(
        lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    soon = lz.grant(subject, "CREDITS_30D", reason="expires", units=20)
    clock.advance(minutes=1)
    later = lz.grant(subject, "CREDITS_100", reason="no expiry")
    hold = lz.reserve_usage(subject, 50, idempotency_key="job")  # soon 20 + later 30
    assert remaining_by_id(lz, subject) == {soon.id: 0, later.id: 70}
    hold.commit(25)
    # The expiring pack still paid first: the 25 unused units go back to the later one.
    assert remaining_by_id(lz, subject) == {soon.id: 0, later.id: 95}


def test_committing_more_than_held_is_refused(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    hold = lz.reserve_usage(subject, 10, idempotency_key="job")
    before = snapshot(lz, subject)
    with pytest.raises(InvalidRequest):
        hold.commit(11)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidRequest):
            hold.commit(bad)  # type: ignore[arg-type]
    assert snapshot(lz, subject) == before
    assert hold.commit(10).usage_remaining == 90


def test_release_gives_everything_back(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    hold = lz.reserve_usage(subject, 100, idempotency_key="job")
    assert not lz.check_access(subject)  # a fully held pack has nothing left to give
    hold.release()
    assert hold.status == "released"
    assert units_left(lz, subject) == 100
    assert lz.check_access(subject)
    hold.release()  # twice: nothing more comes back
    assert units_left(lz, subject) == 100
    with pytest.raises(ReservationExpired):
        hold.commit()
    assert units_left(lz, subject) == 100


def test_release_after_commit_changes_nothing(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    hold = lz.reserve_usage(subject, 40, idempotency_key="job")
    hold.commit()
    hold.release()
    assert hold.status == "committed"
    assert units_left(lz, subject) == 60


def test_a_stale_hold_expires_and_its_units_come_back(lz: Licenzy, clock: FrozenClock,
                                                      subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    hold = lz.reserve_usage(subject, 100, idempotency_key="job", ttl=timedelta(minutes=2))
    assert hold.expires_at == clock() + timedelta(minutes=2)
    assert not lz.check_access(subject)
    clock.advance(minutes=2)
    # check_access sees the pack again although nothing else touched it.
    assert lz.check_access(subject)
    assert units_left(lz, subject) == 100
    with pytest.raises(ReservationExpired) as err:
        hold.commit()
    assert (err.value.code, err.value.status) == ("reservation_expired", 409)
    assert hold.status == "expired"
    assert units_left(lz, subject) == 100


def test_committing_a_hold_past_its_ttl_gives_the_units_back(lz: Licenzy, clock: FrozenClock,
                                                             subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    hold = lz.reserve_usage(subject, 60, idempotency_key="job")
    clock.advance(lz.hold_ttl)
    with pytest.raises(ReservationExpired):
        hold.commit()  # the first thing to notice the expiry
    assert units_left(lz, subject) == 100
    assert [e.action for e in lz.ledger(subject)][-1] == "expired"


def test_expired_holds_are_swept_by_the_next_spend(lz: Licenzy, clock: FrozenClock,
                                                   subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.reserve_usage(subject, 90, idempotency_key="abandoned")
    clock.advance(minutes=10)
    assert lz.consume_usage(subject, 95, idempotency_key="k").usage_remaining == 5


def test_expired_holds_are_swept_before_an_adjustment(lz: Licenzy, clock: FrozenClock,
                                                      subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="a")
    lz.reserve_usage(subject, 100, idempotency_key="abandoned")
    clock.advance(lz.hold_ttl)
    assert lz.adjust_usage(ent.id, -50, reason="correction").usage_remaining == 50


def test_release_expired_holds_for_a_periodic_job(lz: Licenzy, clock: FrozenClock,
                                                  subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.reserve_usage(subject, 10, idempotency_key="a", ttl=timedelta(minutes=1))
    lz.reserve_usage(subject, 20, idempotency_key="b", ttl=timedelta(minutes=5))
    clock.advance(minutes=1)
    assert lz.release_expired_holds() >= 1
    assert sum(e.units_delta or 0 for e in lz.ledger(subject) if e.action == "expired") == 10
    assert units_left(lz, subject) == 80


def test_same_key_replays_the_hold(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    first = lz.reserve_usage(subject, 30, idempotency_key="req")
    again = lz.reserve_usage(subject, 30, idempotency_key="req")
    assert again.id == first.id and again.status == "held"
    assert units_left(lz, subject) == 70
    with pytest.raises(IdempotencyConflict):
        lz.reserve_usage(subject, 31, idempotency_key="req")
    first.commit()
    done = lz.reserve_usage(subject, 30, idempotency_key="req")  # a retried, finished request
    assert (done.id, done.status, done.committed_units) == (first.id, "committed", 30)
    assert done.commit().replayed
    assert units_left(lz, subject) == 70


def test_a_released_holds_key_can_hold_again(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    first = lz.reserve_usage(subject, 30, idempotency_key="req")
    first.release()
    again = lz.reserve_usage(subject, 30, idempotency_key="req")
    assert again.status == "held"
    assert units_left(lz, subject) == 70
    assert again.commit().usage_remaining == 70


def test_an_expired_holds_key_can_hold_again(lz: Licenzy, clock: FrozenClock,
                                             subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    first = lz.reserve_usage(subject, 30, idempotency_key="req")
    clock.advance(lz.hold_ttl + timedelta(seconds=1))
    again = lz.reserve_usage(subject, 30, idempotency_key="req")
    assert again.status == "held"
    assert again.expires_at == clock() + lz.hold_ttl
    assert units_left(lz, subject) == 70
    assert again.commit().usage_remaining == 70
    assert units_left(lz, subject) == 70
    # The same key is the same request: the first handle names the same hold and cannot
    # spend a second time.
    assert first.id == again.id
    assert first.commit().replayed
    assert units_left(lz, subject) == 70


def test_holding_more_than_is_left_holds_nothing(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    before = snapshot(lz, subject)
    with pytest.raises(InsufficientUsage) as err:
        lz.reserve_usage(subject, 101, idempotency_key="big")
    assert (err.value.requested, err.value.usage_remaining) == (101, 100)
    assert snapshot(lz, subject) == before


def test_bad_ttl_is_refused(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    before = snapshot(lz, subject)
    for ttl in (timedelta(0), timedelta(seconds=-1), 60):
        with pytest.raises(InvalidRequest):
            lz.reserve_usage(subject, 1, idempotency_key="k", ttl=ttl)  # type: ignore[arg-type]
    assert snapshot(lz, subject) == before


def test_get_reservation_finds_a_hold_by_id(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    hold = lz.reserve_usage(subject, 10, idempotency_key="req")
    found = lz.get_reservation(hold.id)
    assert found is not None and (found.id, found.units, found.status) == (hold.id, 10, "held")
    found.commit()
    assert units_left(lz, subject) == 90
    assert lz.get_reservation("hold_nope") is None
    assert hold.to_dict() == {"id": hold.id, "subject_ref": subject, "units": 10,
                              "status": "held", "committed_units": None, "meter": "units",
                              "expires_at": hold.to_dict()["expires_at"]}
    assert str(hold.to_dict()["expires_at"]).endswith("Z")
