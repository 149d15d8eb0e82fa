"""Change events reach the Flask (blinker) signal, for a webhook through the mounted route
(Flask's test client), once per instance however many apps it is registered on."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from licenzy_embed import ChangeEvent, Licenzy
from licenzy_embed.integrations.flask import LicenzyFlask, change_event
from licenzy_embed.outbox import DELIVERY_LEASE
from licenzy_embed.testing import FrozenClock, StripeSimulator

from .._support import START, make_lz


def test_a_webhook_through_the_route_sends_the_signal(lz: Licenzy,
                                                      client: FlaskClient) -> None:
    seen: list[tuple[Any, ChangeEvent]] = []

    def receiver(sender: Any, event: ChangeEvent) -> None:
        seen.append((sender, event))

    change_event.connect(receiver)
    try:
        sim = StripeSimulator.for_licenzy(lz)
        sim.deliver_with(lambda payload, header: client.post(
            "/billing/webhooks/stripe", data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"}))
        sim.complete_checkout(lz.create_checkout_session("alice", "CREDITS_100",
                                                         idempotency_key="buy"))
    finally:
        change_event.disconnect(receiver)
    assert "purchase.finalized" in [e.type for _, e in seen]
    assert all(sender is lz and e.id for sender, e in seen)


def test_one_instance_on_two_apps_sends_each_event_once() -> None:
    lz = make_lz()
    ext = LicenzyFlask(lz)
    ext.init_app(Flask("one"))
    LicenzyFlask(lz).init_app(Flask("two"))
    seen: list[str] = []

    def receiver(sender: Any, event: ChangeEvent) -> None:
        seen.append(event.id or "")

    change_event.connect(receiver)
    try:
        lz.grant("bob", "CREDITS_100", reason="comp")
    finally:
        change_event.disconnect(receiver)
    assert len(seen) == 1


def test_with_no_receiver_connected_events_wait_for_one() -> None:
    """The bridge is no listener by itself: events of a process whose receivers are not
    connected (they live in a worker) stay pending instead of being delivered to nobody."""
    clock = FrozenClock(START)
    lz = make_lz(clock=clock)
    LicenzyFlask(lz).init_app(Flask("app"))
    lz.grant("bob", "CREDITS_100", reason="comp")
    (pending,) = lz.change_events(pending=True)
    clock.advance(DELIVERY_LEASE)
    assert lz.deliver_pending_events().delivered == 0
    seen: list[str] = []

    def receiver(sender: Any, event: ChangeEvent) -> None:
        seen.append(event.id or "")

    change_event.connect(receiver)
    try:
        assert lz.deliver_pending_events().delivered == 1
    finally:
        change_event.disconnect(receiver)
    assert seen == [pending.id]
