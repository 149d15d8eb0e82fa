"""The outbox on every store: a stable id, delivery after commit, a raising callback retried
with backoff on the Licenzy clock and never lost, per-callback state, nothing delivered to no
one, replay, and concurrent sweeps that deliver each event once per claim."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from licenzy_embed import ChangeEvent, EventNotFound, Licenzy
from licenzy_embed.outbox import DELIVERY_LEASE, backoff
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock

from ..conftest import catalog


def test_each_event_has_a_stable_id_and_is_marked_delivered(lz: Licenzy) -> None:
    seen: list[ChangeEvent] = []
    lz.on("*", seen.append)
    granted = lz.grant("u1", "CREDITS_100", reason="comp")
    (event,) = seen
    assert event.id is not None and event.id.startswith("lzev_")
    assert event.to_dict()["id"] == event.id
    assert event.data["entitlement"]["id"] == granted.id
    record = lz.change_event(event.id)
    assert record is not None and record.status == "delivered"
    assert record.event.to_dict() == event.to_dict()
    assert lz.change_events(pending=True) == []
    assert lz.deliver_pending_events().delivered == 0


def test_a_raising_callback_is_retried_after_its_backoff_and_not_lost(
        lz: Licenzy, clock: FrozenClock) -> None:
    calls: list[str] = []
    good: list[str] = []
    failing = [True]

    def flaky(event: ChangeEvent) -> None:
        calls.append(event.id or "")
        if failing[0]:
            raise RuntimeError("receiver down")

    lz.on("entitlement.updated", flaky)
    lz.on("entitlement.updated", lambda e: good.append(e.id or ""))
    lz.grant("u1", "CREDITS_100", reason="comp")
    (pending,) = lz.change_events(pending=True)
    assert pending.attempts == 1 and pending.last_error is not None
    assert "RuntimeError: receiver down" in pending.last_error
    assert pending.next_attempt_at == clock() + backoff(1)
    assert len(pending.delivered_to) == 1  # the good callback took it

    assert lz.deliver_pending_events().delivered == 0  # not due yet
    clock.advance(backoff(1) + timedelta(seconds=1))
    assert lz.deliver_pending_events().to_dict() == {"delivered": 0, "failed": 1}
    again = lz.change_event(pending.id)
    assert again is not None and again.attempts == 2
    assert again.next_attempt_at == clock() + backoff(2)

    failing[0] = False
    clock.advance(backoff(2))
    assert lz.deliver_pending_events().delivered == 1
    assert calls == [pending.id] * 3
    assert good == [pending.id]  # per-callback state: the good one was not called again
    done = lz.change_event(pending.id)
    assert done is not None and done.status == "delivered"


def test_backoff_doubles_and_stops_at_six_hours() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(seconds=30), timedelta(minutes=1),
                                               timedelta(minutes=2)]
    assert backoff(100) == timedelta(hours=6)


def test_with_no_callback_nothing_is_delivered_to_no_one(
        store: Store, clock: FrozenClock) -> None:
    quiet = Licenzy(store=store, products=catalog(), clock=clock)
    quiet.grant("u1", "CREDITS_100", reason="comp")
    clock.advance(DELIVERY_LEASE)
    assert quiet.deliver_pending_events().delivered == 0
    (pending,) = quiet.change_events(pending=True)
    assert pending.status == "pending" and pending.attempts == 0
    # Nor does a replay through the Python API mark it delivered to nobody.
    assert quiet.replay_event(pending.id).delivered == 0
    assert quiet.change_events(pending=True) == [pending]

    # The next instance (a restart) with a callback delivers it, once.
    later = Licenzy(store=store, products=catalog(), clock=clock)
    seen: list[str] = []
    later.on("*", lambda e: seen.append(e.id or ""))
    assert later.deliver_pending_events().delivered == 1
    assert later.deliver_pending_events().delivered == 0
    assert seen == [pending.id]


def test_the_first_change_of_a_new_instance_also_delivers_what_was_left_pending(
        store: Store, clock: FrozenClock) -> None:
    Licenzy(store=store, products=catalog(), clock=clock).grant("u1", "CREDITS_100",
                                                                 reason="left pending")
    clock.advance(DELIVERY_LEASE)
    lz = Licenzy(store=store, products=catalog(), clock=clock)
    seen: list[str] = []
    lz.on("*", lambda e: seen.append(e.data["entitlement"]["subject_ref"]))
    lz.grant("u2", "CREDITS_100", reason="new")
    assert seen == ["u2", "u1"]
    assert lz.change_events(pending=True) == []


def test_replay_delivers_one_event_again_to_every_callback(lz: Licenzy) -> None:
    seen: list[str] = []
    lz.on("*", lambda e: seen.append(e.id or ""))
    lz.grant("u1", "CREDITS_100", reason="comp")
    (event_id,) = seen
    assert lz.replay_event(event_id).delivered == 1
    assert seen == [event_id, event_id]
    with pytest.raises(EventNotFound):
        lz.replay_event("lzev_unknown")


def test_concurrent_sweeps_deliver_each_event_once_per_claim(
        store: Store, clock: FrozenClock) -> None:
    writer = Licenzy(store=store, products=catalog(), clock=clock)
    for n in range(12):
        writer.grant(f"u{n}", "CREDITS_100", reason="backlog")
    clock.advance(DELIVERY_LEASE)
    seen: list[str] = []
    lock = threading.Lock()

    def record(event: ChangeEvent) -> None:
        with lock:
            seen.append(event.id or "")

    sweepers = []
    for _ in range(3):
        sweeper = Licenzy(store=store, products=catalog(), clock=clock)
        sweeper.on("*", record)
        sweepers.append(sweeper)
    barrier = threading.Barrier(len(sweepers))
    errors: list[BaseException] = []

    def sweep(lz: Licenzy) -> None:
        try:
            barrier.wait()
            lz.deliver_pending_events()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(s,)) for s in sweepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == len(set(seen)) == 12
    assert writer.change_events(pending=True) == []


def test_a_nested_unit_of_work_delivers_when_the_outermost_commits_and_never_if_it_rolls_back(
        lz: Licenzy) -> None:
    from licenzy_embed.events import ChangeEvent as Event

    seen: list[object] = []
    lz.on("*", lambda e: seen.append(e.data))

    def inner(tx: object) -> tuple[None, list[Event]]:
        return None, [Event("usage.consumed", {"n": "inner"})]

    def outer(tx: object) -> tuple[None, list[Event]]:
        lz.unit_of_work.run(inner)  # type: ignore[arg-type]
        assert seen == []  # not before the outermost transaction committed
        return None, [Event("usage.consumed", {"n": "outer"})]

    lz.unit_of_work.run(outer)  # type: ignore[arg-type]
    assert seen == [{"n": "inner"}, {"n": "outer"}]

    def failing(tx: object) -> tuple[None, list[Event]]:
        lz.unit_of_work.run(inner)  # type: ignore[arg-type]
        raise RuntimeError("the outer work failed")

    with pytest.raises(RuntimeError):
        lz.unit_of_work.run(failing)  # type: ignore[arg-type]
    assert seen == [{"n": "inner"}, {"n": "outer"}]
    assert len(lz.change_events()) == 2  # the rolled-back one was never written


def test_a_store_failing_after_commit_does_not_fail_the_change(
        lz: Licenzy, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from licenzy_embed import StoreUnavailable

    seen: list[str] = []
    lz.on("*", lambda e: seen.append(e.id or ""))

    def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("the database went away")

    monkeypatch.setattr(lz.store, "mark_events_delivered", down)
    granted = lz.grant("u1", "CREDITS_100", reason="comp")  # no exception: it committed
    assert lz.check_access("u1") and granted.id
    monkeypatch.undo()
    (pending,) = lz.change_events(pending=True)  # not marked: delivered again later
    clock.advance(DELIVERY_LEASE)
    assert lz.deliver_pending_events().delivered == 1
    assert seen == [pending.id, pending.id]  # at least once, the same id
