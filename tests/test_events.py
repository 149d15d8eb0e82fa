"""Change events: names, dispatch after commit, and callback failures that undo nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from licenzy_embed import ChangeEvent, InMemoryStore, InsufficientUsage, Licenzy
from licenzy_embed.events import EVENT_TYPES, EventBus
from licenzy_embed.outbox import Outbox, stamp

from .conftest import catalog


def deliver(bus: EventBus, events: list[ChangeEvent]) -> None:
    """Deliver ``events`` to ``bus`` the way the outbox does after a commit."""
    outbox = Outbox(InMemoryStore(), "test", bus, lambda: datetime.now(timezone.utc))
    outbox.deliver(stamp(events, "test", datetime.now(timezone.utc)))


def test_event_names_are_licenzys() -> None:
    licenzys = {"purchase.finalized", "entitlement.updated", "usage.consumed",
                "subscription.updated", "subscription.deleted", "invoice.payment_succeeded",
                "invoice.payment_failed"}
    assert licenzys == EVENT_TYPES


def test_callbacks_get_their_type_and_the_wildcard_gets_all() -> None:
    bus = EventBus()
    typed: list[str] = []
    every: list[str] = []
    bus.on("usage.consumed", lambda e: typed.append(e.type))
    bus.on("*", lambda e: every.append(e.type))
    deliver(bus, [ChangeEvent("usage.consumed", {"n": 1}), ChangeEvent("entitlement.updated")])
    assert typed == ["usage.consumed"]
    assert every == ["usage.consumed", "entitlement.updated"]


def test_callbacks_run_in_registration_order() -> None:
    bus = EventBus()
    order: list[int] = []
    bus.on("usage.consumed", lambda e: order.append(1))
    bus.on("usage.consumed", lambda e: order.append(2))
    deliver(bus, [ChangeEvent("usage.consumed")])
    assert order == [1, 2]


def test_a_failing_callback_is_logged_and_the_others_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    after: list[str] = []

    def broken(event: ChangeEvent) -> None:
        raise RuntimeError("boom")

    bus.on("usage.consumed", broken)
    bus.on("usage.consumed", lambda e: after.append(e.type))
    with caplog.at_level(logging.ERROR, logger="licenzy_embed"):
        deliver(bus, [ChangeEvent("usage.consumed")])
    assert after == ["usage.consumed"]
    assert "usage.consumed callback failed" in caplog.text
    assert "RuntimeError: boom" in caplog.text


@pytest.mark.parametrize("name", ["usage", "USAGE.CONSUMED", "", "checkout.session.completed"])
def test_unknown_event_types_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        EventBus().on(name, print)


def test_event_to_dict() -> None:
    assert ChangeEvent("usage.consumed", {"consumed": 3}, id="lzev_1",
                       created_at="2026-12-01T10:00:00Z").to_dict() == {
        "id": "lzev_1", "type": "usage.consumed", "created_at": "2026-12-01T10:00:00Z",
        "data": {"consumed": 3}}


def test_events_are_not_sent_for_a_rolled_back_change() -> None:
    store = InMemoryStore()
    lz = Licenzy(store=store, products=catalog())
    events: list[ChangeEvent] = []
    lz.on("*", events.append)
    lz.grant("u1", "CREDITS_100", reason="x")
    with pytest.raises(InsufficientUsage):
        lz.consume_usage("u1", 101, idempotency_key="k")
    assert [e.type for e in events] == ["entitlement.updated"]


def test_a_callback_may_call_back_into_licenzy() -> None:
    # Dispatch happens after the transaction closed, so a callback can read and even write.
    lz = Licenzy(store=InMemoryStore(), products=catalog())
    seen: list[int] = []

    def top_up(event: ChangeEvent) -> None:
        if event.data["usage_remaining"] == 0:
            (ent,) = lz.entitlements(event.data["subject_ref"])
            lz.adjust_usage(ent.id, 10, reason="auto top-up")
        seen.append(event.data["usage_remaining"])

    lz.on("usage.consumed", top_up)
    lz.grant("u1", "CREDITS_100", reason="x")
    lz.consume_usage("u1", 100, idempotency_key="all")
    assert seen == [0]
    assert lz.consume_usage("u1", 10, idempotency_key="more").usage_remaining == 0
