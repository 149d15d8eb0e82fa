"""Manual grants, revocations and unit adjustments, and the change events they send."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from licenzy_embed import (
    ChangeEvent,
    EntitlementNotFound,
    InvalidRequest,
    Licenzy,
    UnknownProduct,
)
from licenzy_embed.testing import FrozenClock

from ._support import snapshot, units_left


def test_grant_is_an_admin_change_with_its_reason(lz: Licenzy, clock: FrozenClock,
                                                  subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_1K", reason="support ticket 42")
    assert (ent.source, ent.status, ent.usage_remaining) == ("admin", "active", 1000)
    (entry,) = lz.ledger(subject)
    assert (entry.action, entry.source, entry.reason) == ("granted", "admin", "support ticket 42")
    assert (entry.entitlement_id, entry.units_delta, entry.status) == (ent.id, 1000, "active")
    assert entry.at == clock()


def test_grant_with_other_units(lz: Licenzy, subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_1K", reason="goodwill", units=250)
    assert ent.usage_remaining == 250
    assert lz.ledger(subject)[0].units_delta == 250


def test_granting_units_to_a_time_pass_is_refused(lz: Licenzy, subject: str) -> None:
    with pytest.raises(InvalidRequest):
        lz.grant(subject, "WEEK_PASS", reason="x", units=5)
    assert snapshot(lz, subject) == ([], [])


def test_unknown_product_is_refused(lz: Licenzy, subject: str) -> None:
    with pytest.raises(UnknownProduct) as err:
        lz.grant(subject, "NOT_IN_CATALOG", reason="x")
    assert (err.value.code, err.value.status) == ("unknown_product", 404)
    assert err.value.to_dict()["product_code"] == "NOT_IN_CATALOG"
    assert snapshot(lz, subject) == ([], [])


@pytest.mark.parametrize("reason", ["", "   ", None, 42, "x" * 1001])
def test_a_grant_needs_a_reason(lz: Licenzy, subject: str, reason: Any) -> None:
    with pytest.raises(InvalidRequest):
        lz.grant(subject, "CREDITS_1K", reason=reason)
    assert snapshot(lz, subject) == ([], [])


@pytest.mark.parametrize("expires_at", ["2026-04-01", 1774353600, timedelta(days=1)])
def test_expires_at_must_be_a_datetime(lz: Licenzy, subject: str, expires_at: Any) -> None:
    with pytest.raises(InvalidRequest):
        lz.grant(subject, "CREDITS_1K", reason="x", expires_at=expires_at)
    assert snapshot(lz, subject) == ([], [])


def test_revoke_ends_access(lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_1K", reason="trial")
    clock.advance(hours=1)
    revoked = lz.revoke(ent.id, reason="chargeback abuse")
    assert (revoked.status, revoked.available, revoked.availability_reason) == (
        "revoked", False, "revoked")
    assert revoked.updated_at == clock()
    assert not lz.check_access(subject)
    assert lz.customer_access(subject).status == "revoked"
    entry = lz.ledger(subject)[-1]
    assert (entry.action, entry.source, entry.reason, entry.status) == (
        "revoked", "admin", "chargeback abuse", "revoked")
    assert entry.entitlement_id == ent.id


def test_revoking_twice_changes_nothing_more(lz: Licenzy, subject: str) -> None:
    ent = lz.grant(subject, "WEEK_PASS", reason="x")
    lz.revoke(ent.id, reason="first")
    events: list[ChangeEvent] = []
    lz.on("entitlement.updated", events.append)
    before = snapshot(lz, subject)
    again = lz.revoke(ent.id, reason="second")
    assert again.status == "revoked"
    assert snapshot(lz, subject) == before
    assert events == []


def test_adjust_adds_and_removes_units(lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="x")
    clock.advance(minutes=1)
    assert lz.adjust_usage(ent.id, 50, reason="bonus").usage_remaining == 150
    assert lz.adjust_usage(ent.id, -120, reason="correction").usage_remaining == 30
    assert units_left(lz, subject) == 30
    entries = [(e.action, e.source, e.reason, e.units_delta) for e in lz.ledger(subject)]
    assert entries == [("granted", "admin", "x", 100), ("adjusted", "admin", "bonus", 50),
                       ("adjusted", "admin", "correction", -120)]


def test_adjust_brings_an_exhausted_pack_back(lz: Licenzy, subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="x")
    lz.consume_usage(subject, 100, idempotency_key="all")
    assert not lz.check_access(subject)
    back = lz.adjust_usage(ent.id, 5, reason="sorry")
    assert (back.available, back.availability_reason) == (True, "usage_available")
    assert lz.check_access(subject)


def test_adjust_below_zero_is_refused(lz: Licenzy, subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="x")
    lz.consume_usage(subject, 60, idempotency_key="k")
    events: list[ChangeEvent] = []
    lz.on("*", events.append)
    before = snapshot(lz, subject)
    with pytest.raises(InvalidRequest) as err:
        lz.adjust_usage(ent.id, -41, reason="too much")
    assert "40" in err.value.message
    assert snapshot(lz, subject) == before
    assert events == []
    assert lz.adjust_usage(ent.id, -40, reason="exactly").usage_remaining == 0


def test_adjusting_held_units_away_is_refused(lz: Licenzy, subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="x")
    hold = lz.reserve_usage(subject, 70, idempotency_key="job")
    with pytest.raises(InvalidRequest):
        lz.adjust_usage(ent.id, -31, reason="x")
    assert hold.commit().usage_remaining == 30


def test_adjusting_an_unmetered_entitlement_is_refused(lz: Licenzy, subject: str) -> None:
    ent = lz.grant(subject, "WEEK_PASS", reason="x")
    before = snapshot(lz, subject)
    with pytest.raises(InvalidRequest):
        lz.adjust_usage(ent.id, 10, reason="x")
    assert snapshot(lz, subject) == before


@pytest.mark.parametrize("delta", [0, True, 1.5, "5", None, 10**12 + 1, -(10**13)])
def test_bad_delta_is_refused(lz: Licenzy, subject: str, delta: Any) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="x")
    before = snapshot(lz, subject)
    with pytest.raises(InvalidRequest):
        lz.adjust_usage(ent.id, delta, reason="x")
    assert snapshot(lz, subject) == before


def test_unknown_entitlement_ids(lz: Licenzy) -> None:
    calls: list[Callable[[], object]] = [lambda: lz.revoke("ent_missing", reason="x"),
                                         lambda: lz.adjust_usage("ent_missing", 5, reason="x")]
    for call in calls:
        with pytest.raises(EntitlementNotFound) as err:
            call()
        assert (err.value.code, err.value.status) == ("entitlement_not_found", 404)
    for bad in ("", None, 42):
        with pytest.raises(InvalidRequest):
            lz.revoke(bad, reason="x")  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest):
            lz.adjust_usage(bad, 5, reason="x")  # type: ignore[arg-type]


def test_admin_calls_need_a_reason(lz: Licenzy, subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="x")
    before = snapshot(lz, subject)
    with pytest.raises(InvalidRequest):
        lz.revoke(ent.id, reason="")
    with pytest.raises(InvalidRequest):
        lz.adjust_usage(ent.id, 5, reason=" ")
    assert snapshot(lz, subject) == before


def test_change_events_arrive_after_commit(lz: Licenzy, subject: str) -> None:
    seen: list[tuple[str, dict[str, Any], list[str]]] = []

    def record(event: ChangeEvent) -> None:
        # What the callback reads is already stored: the change it announces was committed.
        seen.append((event.type, event.data, [e.status for e in lz.entitlements(subject)]))

    lz.on("entitlement.updated", record)
    ent = lz.grant(subject, "CREDITS_100", reason="x")
    lz.adjust_usage(ent.id, 5, reason="y")
    lz.revoke(ent.id, reason="z")
    assert [(t, d["entitlement"]["status"], d["entitlement"]["usage_remaining"], statuses)
            for t, d, statuses in seen] == [
        ("entitlement.updated", "active", 100, ["active"]),
        ("entitlement.updated", "active", 105, ["active"]),
        ("entitlement.updated", "revoked", 105, ["revoked"]),
    ]
    assert seen[0][1]["entitlement"]["id"] == ent.id


def test_no_event_when_the_change_fails(lz: Licenzy, subject: str) -> None:
    events: list[ChangeEvent] = []
    lz.on("*", events.append)
    with pytest.raises(UnknownProduct):
        lz.grant(subject, "NOPE", reason="x")
    with pytest.raises(EntitlementNotFound):
        lz.revoke("ent_missing", reason="x")
    assert events == []


def test_on_refuses_unknown_event_types_and_non_callables(lz: Licenzy) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        lz.on("usage.consumd", print)
    with pytest.raises(ValueError, match="callable"):
        lz.on("usage.consumed", "not a function")  # type: ignore[arg-type]
