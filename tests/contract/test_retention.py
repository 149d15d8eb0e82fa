"""``Licenzy.prune_history`` on every store (see ``licenzy_embed.retention``): it deletes what
the retention rules allow and nothing else; what is younger than its window still answers
``duplicate`` or ``replayed``; open holds survive however old; dry runs and bad windows change
nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from licenzy_embed import ChangeEvent, Licenzy, retention
from licenzy_embed import reconcile as reconcile_module
from licenzy_embed.outbox import OutboxRecord
from licenzy_embed.records import ProcessedEvent, UsageRecord
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock, StripeSimulator

from ._support import new_subject, snapshot
from .test_concurrency import run_together

DAY = timedelta(days=1)


def _state(lz: Licenzy, store: Store, subjects: list[str]) -> dict[str, Any]:
    """What the prune may never touch, plus every outbox row of the mode."""
    return {"subjects": [snapshot(lz, s) for s in subjects],
            "outbox": sorted(r.id for r in store.list_events(lz.mode, limit=10_000))}


def _history(lz: Licenzy, clock: FrozenClock, subject: str) -> dict[str, Any]:
    """A day's worth of history: a spend, a committed and a released hold, an open hold, a
    paid checkout's webhooks and their delivered change events."""
    sim = StripeSimulator.for_licenzy(lz)
    lz.grant(subject, "CREDITS_1K", reason="support")
    spent = lz.consume_usage(subject, 5, idempotency_key="spend")
    committed = lz.reserve_usage(subject, 7, idempotency_key="commit")
    committed.commit()
    released = lz.reserve_usage(subject, 3, idempotency_key="release")
    released.release()
    held = lz.reserve_usage(subject, 2, idempotency_key="open", ttl=timedelta(days=60))
    session = lz.create_checkout_session(subject, "CREDITS_100", idempotency_key=f"buy-{subject}")
    first = len(sim.deliveries)
    sim.complete_checkout(session)
    return {"sim": sim, "spent": spent, "committed": committed, "released": released,
            "held": held, "events": [d.event for d in sim.deliveries[first:]]}


@pytest.fixture
def delivered(lz: Licenzy) -> list[ChangeEvent]:
    seen: list[ChangeEvent] = []
    lz.on("*", seen.append)  # with a callback, change events are delivered (and prunable)
    return seen


def test_prune_deletes_what_the_rules_allow_and_nothing_else(
        lz: Licenzy, store: Store, clock: FrozenClock, delivered: list[ChangeEvent]) -> None:
    old_subject, young_subject = new_subject(), new_subject()
    old = _history(lz, clock, old_subject)
    old_outbox = [r.id for r in store.list_events(lz.mode, limit=10_000)]
    # A change event never delivered (no callback took it): owed, however old.
    pending = OutboxRecord(id="lzev_pending_" + new_subject(), mode=lz.mode, type="x.y",
                           data={}, created_at=lz.now())
    # The other mode's history, as old: not this Licenzy's to prune.
    other = "live" if lz.mode == "test" else "test"
    with store.transaction(lz.mode) as tx:
        tx.add_outbox([pending])
    with store.transaction(other) as tx:
        tx.insert_usage_record(UsageRecord(other, old_subject, "spend", 1, (), 0, lz.now()))
        tx.insert_processed_event(ProcessedEvent(other, "evt_other", "x.y", "processed",
                                                 None, 0, lz.now()))
    clock.advance(days=36)
    young = _history(lz, clock, young_subject)
    clock.advance(hours=2)
    before = _state(lz, store, [old_subject, young_subject])

    report = lz.prune_history()

    assert report.counts == {retention.HOLDS: 2, retention.USAGE_RECORDS: 1,
                             retention.PROCESSED_EVENTS: len(old["events"]),
                             retention.OUTBOX: len(old_outbox)}
    assert report.to_dict()["total"] == report.total > 0 and not report.dry_run
    after = _state(lz, store, [old_subject, young_subject])
    assert after["subjects"] == before["subjects"]  # entitlements and ledgers untouched
    assert after["outbox"] == sorted(set(before["outbox"]) - set(old_outbox))
    assert pending.id in after["outbox"]
    # Old: forgotten. The settled holds are gone, the open one stays, however old.
    assert lz.get_reservation(old["committed"].id) is None
    assert lz.get_reservation(old["released"].id) is None
    assert lz.get_reservation(old["held"].id).status == "held"  # type: ignore[union-attr]
    for event in old["events"]:
        assert store.get_processed_event(lz.mode, event["id"]) is None
    # The other mode's rows are still there.
    assert store.get_processed_event(other, "evt_other") is not None
    with store.transaction(other) as tx:
        assert tx.get_usage_record(old_subject, "spend") is not None
    # Young: still exactly once.
    sim: StripeSimulator = young["sim"]
    assert [r.outcome for r in sim.deliver(young["events"])] == (  # type: ignore[attr-defined]
        ["duplicate"] * len(young["events"]))
    again = lz.consume_usage(young_subject, 5, idempotency_key="spend")
    assert again.replayed and again.usage_remaining == young["spent"].usage_remaining
    assert lz.reserve_usage(young_subject, 7, idempotency_key="commit").id == (
        young["committed"].id)
    assert lz.reserve_usage(young_subject, 3, idempotency_key="release").id == (
        young["released"].id)  # revived, not a second hold
    # A second run finds nothing left to delete.
    assert lz.prune_history().total == 0


def test_a_dry_run_counts_and_deletes_nothing(lz: Licenzy, store: Store, clock: FrozenClock,
                                              delivered: list[ChangeEvent]) -> None:
    subject = new_subject()
    old = _history(lz, clock, subject)
    clock.advance(days=40)
    before = _state(lz, store, [subject])
    dry = lz.prune_history(dry_run=True)
    assert dry.dry_run and dry.counts[retention.HOLDS] == 2 and dry.total > 0
    assert _state(lz, store, [subject]) == before
    assert lz.get_reservation(old["committed"].id) is not None
    assert lz.prune_history().counts == dry.counts


def test_the_windows_are_parameters(lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.consume_usage(subject, 1, idempotency_key="k")
    clock.advance(hours=3)
    assert lz.prune_history(dry_run=True).counts[retention.USAGE_RECORDS] == 0
    report = lz.prune_history(idempotency_window=timedelta(hours=2))
    assert report.counts[retention.USAGE_RECORDS] == 1
    assert not lz.consume_usage(subject, 1, idempotency_key="k").replayed
    # now= moves the cut-off: nothing is older than the window at the start of time
    assert lz.prune_history(now=clock() - 10 * DAY, dry_run=True).total == 0


@pytest.mark.parametrize("windows", [
    {"idempotency_window": timedelta(minutes=59)},
    {"idempotency_window": timedelta(0)},
    {"event_window": timedelta(days=30)},
    {"event_window": timedelta(days=31) - timedelta(seconds=1)},
    {"event_window": 35},
    {"idempotency_window": None},
])
def test_a_window_too_short_for_exactly_once_is_refused(
        lz: Licenzy, store: Store, clock: FrozenClock, subject: str,
        windows: dict[str, Any]) -> None:
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.consume_usage(subject, 1, idempotency_key="k")
    clock.advance(days=400)
    with pytest.raises(ValueError, match="window"):
        lz.prune_history(**windows)
    with store.transaction(lz.mode) as tx:
        assert tx.get_usage_record(subject, "k") is not None


def test_the_minimum_event_window_outlasts_what_reconcile_replays() -> None:
    assert retention.REPLAY_WINDOW == reconcile_module.EVENT_WINDOW
    assert retention.MIN_EVENT_WINDOW > reconcile_module.EVENT_WINDOW


def test_batches_smaller_than_the_backlog_delete_it_all(lz: Licenzy, store: Store,
                                                        clock: FrozenClock) -> None:
    subjects = [new_subject() for _ in range(3)]
    with store.transaction(lz.mode) as tx:
        for s in subjects:
            for i in range(4):
                tx.insert_usage_record(UsageRecord(lz.mode, s, f"k{i}", 1, (), 0, lz.now()))
    clock.advance(days=2)
    assert store.prune(lz.mode, retention.USAGE_RECORDS, lz.now() - DAY, batch=5,
                       dry_run=True) == 12
    assert store.prune(lz.mode, retention.USAGE_RECORDS, lz.now() - DAY, batch=5) == 12
    assert store.prune(lz.mode, retention.USAGE_RECORDS, lz.now() - DAY, batch=5) == 0


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ages=st.lists(st.tuples(st.sampled_from(["consume", "commit", "release", "open"]),
                               st.integers(min_value=0, max_value=72)),
                     min_size=1, max_size=8))
def test_prune_keeps_every_row_younger_than_the_window(
        lz: Licenzy, clock: FrozenClock, ages: list[tuple[str, int]]) -> None:
    """Whatever the mix and ages (in hours) of spends and holds, a prune with the default
    24-hour window deletes a settled row exactly when it is older than 24 hours, and never an
    open hold: each key then replays or spends anew accordingly."""
    subject = new_subject()
    lz.grant(subject, "CREDITS_1K", reason="a")
    start = clock()
    made: list[tuple[str, str, int, Any]] = []
    for i, (kind, age) in enumerate(sorted(ages, key=lambda a: -a[1])):
        clock.set(start + timedelta(hours=72 - age))  # oldest first: the clock goes forward
        key = f"{kind}{i}"
        if kind == "consume":
            made.append((kind, key, age, lz.consume_usage(subject, 1, idempotency_key=key)))
            continue
        hold = lz.reserve_usage(subject, 1, idempotency_key=key, ttl=timedelta(days=9))
        if kind == "commit":
            hold.commit()
        elif kind == "release":
            hold.release()
        made.append((kind, key, age, hold))
    clock.set(start + timedelta(hours=72))
    lz.prune_history()
    for kind, key, age, thing in made:
        gone = age > 24 and kind != "open"  # at exactly 24 hours a row is not older: it stays
        if kind == "consume":
            with lz.store.transaction(lz.mode) as tx:
                assert (tx.get_usage_record(subject, key) is None) == gone
        else:
            assert (lz.get_reservation(thing.id) is None) == gone


def test_a_prune_racing_spends_and_holds_on_the_subject_breaks_nothing(
        lz: Licenzy, store: Store, clock: FrozenClock, subject: str) -> None:
    """Prunes in small batches run while threads revive old released holds (the rows the prune
    is deleting), commit open ones and spend: the prune's delete re-checks each row, so no
    hold being revived or settled goes, and every unit is accounted for."""
    lz.grant(subject, "CREDITS_1K", reason="a")
    for i in range(10):
        lz.consume_usage(subject, 1, idempotency_key=f"c{i}")
        lz.reserve_usage(subject, 1, idempotency_key=f"r{i}").release()
        lz.reserve_usage(subject, 1, idempotency_key=f"k{i}").commit()
    open_holds = [lz.reserve_usage(subject, 1, idempotency_key=f"o{i}", ttl=60 * DAY)
                  for i in range(5)]
    clock.advance(days=2)

    def pruner() -> int:
        return sum(retention.prune(store, lz.mode, lz.now(),
                                   idempotency_window=retention.IDEMPOTENCY_WINDOW,
                                   event_window=retention.EVENT_WINDOW, dry_run=False,
                                   batch=2).total for _ in range(3))

    def revive(i: int) -> str:
        hold = lz.reserve_usage(subject, 1, idempotency_key=f"r{i}")
        hold.commit()
        return hold.id

    workers: list[Any] = [pruner, pruner]
    workers += [lambda i=i: revive(i) for i in range(10)]
    workers += [lambda h=h: h.commit() and h.id for h in open_holds]
    workers += [lambda i=i: lz.consume_usage(subject, 1, idempotency_key=f"n{i}")
                for i in range(5)]
    results = run_together(workers)

    for hold_id in results[2:17]:
        assert lz.get_reservation(hold_id).status == "committed"  # type: ignore[union-attr]
    assert lz.entitlements(subject)[0].usage_remaining == 1000 - 10 - 10 - 10 - 5 - 5
    lz.prune_history()
    with store.transaction(lz.mode) as tx:
        assert all(tx.get_usage_record(subject, f"c{i}") is None for i in range(10))
        assert all(tx.get_hold_by_key(subject, f"k{i}") is None for i in range(10))
        assert all(tx.get_hold_by_key(subject, f"r{i}") is not None for i in range(10))
    assert lz.consume_usage(subject, 1, idempotency_key="n0").replayed
