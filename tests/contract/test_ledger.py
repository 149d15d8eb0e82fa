"""The ledger: every change to a subject's entitlements and units, with source and reason."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

from licenzy_embed import Licenzy
from licenzy_embed.testing import FrozenClock

from ._support import new_subject, remaining_by_id


def ledger_sums(lz: Licenzy, subject_ref: str) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for entry in lz.ledger(subject_ref):
        if entry.entitlement_id is not None and entry.units_delta is not None:
            sums[entry.entitlement_id] += entry.units_delta
    return dict(sums)


def test_every_change_is_recorded_in_order(lz: Licenzy, clock: FrozenClock,
                                           subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="welcome")
    clock.advance(minutes=1)
    lz.consume_usage(subject, 10, idempotency_key="req-1")
    lz.consume_usage(subject, 10, idempotency_key="req-1")  # a replay writes nothing
    clock.advance(minutes=1)
    hold = lz.reserve_usage(subject, 30, idempotency_key="job-1")
    hold.commit(20)
    lz.reserve_usage(subject, 5, idempotency_key="job-2").release()
    lz.reserve_usage(subject, 7, idempotency_key="job-3", ttl=timedelta(minutes=1))
    clock.advance(minutes=2)
    lz.adjust_usage(ent.id, 3, reason="goodwill")
    lz.revoke(ent.id, reason="closed account")

    rows = [(e.action, e.source, e.units_delta) for e in lz.ledger(subject)]
    assert rows == [
        ("granted", "admin", 100),
        ("consumed", "runtime", -10),
        ("held", "runtime", -30),
        ("released", "runtime", 10),  # the unused part of the partial commit
        ("committed", "runtime", 0),
        ("held", "runtime", -5),
        ("released", "runtime", 5),
        ("held", "runtime", -7),
        ("expired", "runtime", 7),  # swept by the adjust, before its own entry
        ("adjusted", "admin", 3),
        ("revoked", "admin", None),
    ]
    entries = lz.ledger(subject)
    assert entries[1].reference == "req-1"
    assert entries[2].reference == hold.id
    assert [e.reason for e in entries if e.source == "admin"] == [
        "welcome", "goodwill", "closed account"]
    assert all(e.reason for e in entries)
    times = [e.at for e in entries]
    assert times == sorted(times) and times[0] == clock() - timedelta(minutes=4)
    (units,) = remaining_by_id(lz, subject).values()
    assert units == 100 - 10 - 20 + 3
    assert ledger_sums(lz, subject) == {ent.id: units}


def test_a_spend_over_several_entitlements_is_one_entry_each(lz: Licenzy, clock: FrozenClock,
                                                             subject: str) -> None:
    first = lz.grant(subject, "CREDITS_100", reason="a", units=10)
    clock.advance(seconds=1)
    second = lz.grant(subject, "CREDITS_100", reason="b", units=10)
    lz.consume_usage(subject, 15, idempotency_key="big")
    spent = [(e.entitlement_id, e.units_delta, e.reference) for e in lz.ledger(subject)
             if e.action == "consumed"]
    assert spent == [(first.id, -10, "big"), (second.id, -5, "big")]
    assert ledger_sums(lz, subject) == remaining_by_id(lz, subject) == {first.id: 0,
                                                                         second.id: 5}


def test_ledger_sums_match_usage_remaining_after_mixed_activity(
        lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    a = lz.grant(subject, "CREDITS_30D", reason="a", units=40)
    b = lz.grant(subject, "PRO_MONTHLY", reason="b", units=60)
    c = lz.grant(subject, "CREDITS_100", reason="c")
    for i in range(7):
        lz.consume_usage(subject, 9 + i, idempotency_key=f"c{i}")
        hold = lz.reserve_usage(subject, 5 + i, idempotency_key=f"h{i}")
        if i % 3 == 0:
            hold.commit(i + 1)
        elif i % 3 == 1:
            hold.release()
        clock.advance(minutes=3)
    lz.adjust_usage(c.id, -10, reason="fix")
    remaining = remaining_by_id(lz, subject)
    assert ledger_sums(lz, subject) == remaining
    assert set(remaining) == {a.id, b.id, c.id}
    granted = 40 + 60 + 100 - 10
    spent = sum(9 + i for i in range(7)) + sum(i + 1 for i in range(0, 7, 3))
    assert sum(v or 0 for v in remaining.values()) == granted - spent


def test_ledger_is_per_subject_and_serialisable(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "WEEK_PASS", reason="x")
    assert lz.ledger(new_subject()) == []
    (entry,) = lz.ledger(subject)
    body = entry.to_dict()
    assert json.loads(json.dumps(body)) == body
    assert set(body) == {"id", "subject_ref", "entitlement_id", "action", "units_delta",
                         "status", "source", "reason", "reference", "meter", "at"}
    assert body["at"] == "2026-03-01T12:00:00Z"
    assert (body["units_delta"], body["source"]) == (None, "admin")
