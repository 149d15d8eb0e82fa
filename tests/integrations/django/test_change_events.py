"""Change events reach the Django signal (a webhook through the mounted route, via
django.test.Client), and the management commands deliver pending events and reconcile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.test.utils import override_settings

from licenzy_embed import ChangeEvent, Licenzy
from licenzy_embed.integrations.django import get_licenzy
from licenzy_embed.integrations.django.signals import change_event
from licenzy_embed.outbox import DELIVERY_LEASE
from licenzy_embed.testing import FrozenClock, StripeSimulator

from .._support import START, make_lz


@pytest.fixture
def received() -> Iterator[list[tuple[Any, ChangeEvent]]]:
    seen: list[tuple[Any, ChangeEvent]] = []

    def receiver(sender: Any, event: ChangeEvent, **kwargs: Any) -> None:
        seen.append((sender, event))

    change_event.connect(receiver, dispatch_uid="test_change_events")
    yield seen
    change_event.disconnect(dispatch_uid="test_change_events")


def test_a_webhook_through_the_route_sends_the_signal(
        lz: Licenzy, received: list[tuple[Any, ChangeEvent]]) -> None:
    assert get_licenzy() is lz  # built: the bridge is connected
    sim = StripeSimulator.for_licenzy(lz)
    client = Client()

    def post(payload: bytes, header: str) -> object:
        return client.post("/billing/webhooks/stripe", data=payload,
                           content_type="application/json",
                           headers={"Stripe-Signature": header})

    sim.deliver_with(post)
    session = lz.create_checkout_session("alice", "CREDITS_100", idempotency_key="buy")
    sim.complete_checkout(session)
    types = [e.type for _, e in received]
    assert "purchase.finalized" in types
    assert all(sender is lz for sender, _ in received)
    assert all(e.id and lz.change_event(e.id) is not None for _, e in received)


def test_a_raising_receiver_is_retried_by_the_management_command(
        received: list[tuple[Any, ChangeEvent]]) -> None:
    clock = FrozenClock(START)
    lz = make_lz(clock=clock)
    failing = [True]

    def flaky(sender: Any, event: ChangeEvent, **kwargs: Any) -> None:
        if failing[0]:
            raise RuntimeError("receiver down")

    change_event.connect(flaky, dispatch_uid="flaky")
    try:
        with override_settings(LICENZY={"INSTANCE": lz}):
            get_licenzy()
            lz.grant("bob", "CREDITS_100", reason="comp")
            (pending,) = lz.change_events(pending=True)
            failing[0] = False
            clock.advance(timedelta(minutes=1))
            out = StringIO()
            call_command("licenzy_deliver_events", "--json", stdout=out)
            assert json.loads(out.getvalue()) == {"delivered": 1, "failed": 0}
            assert [e.id for _, e in received].count(pending.id) == 2  # at least once
            assert lz.change_events(pending=True) == []
    finally:
        change_event.disconnect(dispatch_uid="flaky")


def test_with_no_receiver_connected_events_wait_for_one() -> None:
    """The bridge is no listener by itself: events of a process whose receivers are not
    connected (they live in a worker) stay pending instead of being delivered to nobody."""
    clock = FrozenClock(START)
    lz = make_lz(clock=clock)
    with override_settings(LICENZY={"INSTANCE": lz}):
        get_licenzy()  # bridged
        lz.grant("bob", "CREDITS_100", reason="comp")
        (pending,) = lz.change_events(pending=True)
        clock.advance(DELIVERY_LEASE)
        assert lz.deliver_pending_events().delivered == 0
        seen: list[str] = []

        def receiver(sender: Any, event: ChangeEvent, **kwargs: Any) -> None:
            seen.append(event.id or "")

        change_event.connect(receiver, sender=lz, dispatch_uid="late")
        try:
            out = StringIO()
            call_command("licenzy_deliver_events", "--json", stdout=out)
            assert json.loads(out.getvalue()) == {"delivered": 1, "failed": 0}
        finally:
            change_event.disconnect(sender=lz, dispatch_uid="late")
        assert seen == [pending.id]


def test_licenzy_reconcile_heals_a_lost_cancellation(lz: Licenzy) -> None:
    sim = StripeSimulator.for_licenzy(lz)
    get_licenzy()
    sim.complete_checkout(lz.create_checkout_session("alice", "PRO_MONTHLY",
                                                     idempotency_key="sub"))
    with sim.hold_deliveries() as held:
        sim.cancel("alice")
    held.clear()
    assert lz.check_access("alice")
    dry = StringIO()
    call_command("licenzy_reconcile", "--dry-run", "--json", stdout=dry)
    assert [c["subject_ref"] for c in json.loads(dry.getvalue())["changes"]] == ["alice"]
    assert lz.check_access("alice")
    out = StringIO()
    call_command("licenzy_reconcile", "--since", "7d", stdout=out)
    assert "1 subjects changed" in out.getvalue() and "alice: active -> canceled" in (
        out.getvalue())
    assert not lz.check_access("alice")


def test_licenzy_prune_counts_then_deletes(lz: Licenzy) -> None:
    get_licenzy()
    dry = StringIO()
    call_command("licenzy_prune", "--dry-run", "--json", stdout=dry)
    body = json.loads(dry.getvalue())
    assert body["dry_run"] is True and set(body["counts"]) == {
        "holds", "usage_records", "processed_events", "outbox"}
    out = StringIO()
    call_command("licenzy_prune", stdout=out)
    assert out.getvalue().startswith("deleted 0 rows")
