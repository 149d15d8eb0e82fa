"""Stripe events on products with several meters (SPEC §10), in both payload shapes: a
period's reset per meter (once per period, leaving room for units held in flight), a pack's
grant of each meter times the quantity, a full refund zeroing every meter, a dispute and its
close."""

from __future__ import annotations

from datetime import timedelta

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock

from ..contract._meters import metered_licenzy
from . import payloads
from .conftest import DAY, Scenario

TEAM = {"subject_ref": "user_1", "product_code": "TEAM_MONTHLY"}


@pytest.fixture(params=payloads.SHAPES)
def shape(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mlz(store: Store, clock: FrozenClock) -> Licenzy:
    return metered_licenzy(store, clock)


@pytest.fixture
def events(mlz: Licenzy, clock: FrozenClock) -> Scenario:
    return Scenario(mlz, clock)


def meters(mlz: Licenzy) -> dict[str, int]:
    (entitlement,) = mlz.entitlements("user_1")
    return dict(entitlement.meters)


def pay_period(events: Scenario, shape: str, sub_id: str, start: int, *,
               invoice_id: str | None = None) -> str:
    pi = payloads.new_id("pi")
    invoice = payloads.invoice(
        sub_id=sub_id, price="price_team_monthly", shape=shape,
        period=(start, start + 30 * DAY), payment_intent=pi, sub_metadata=TEAM,
        invoice_id=invoice_id)
    events.send("invoice.paid", invoice)
    if shape == "current":
        events.send("invoice_payment.paid", payloads.invoice_payment(
            invoice_id=invoice["id"], payment_intent=pi, created=events.now))
    return str(invoice["id"])


def test_each_meter_resets_once_per_paid_period(mlz: Licenzy, events: Scenario,
                                                shape: str) -> None:
    sub_id, start = payloads.new_id("sub"), events.now
    events.send("customer.subscription.created", payloads.subscription(
        sub_id=sub_id, status="active", price="price_team_monthly", shape=shape,
        metadata=TEAM, period=(start, start + 30 * DAY)))
    assert meters(mlz) == {"api_calls": 0, "exports": 0}
    first = pay_period(events, shape, sub_id, start)
    assert meters(mlz) == {"api_calls": 1000, "exports": 50}
    assert mlz.check_access("user_1", "sso") and mlz.check_access("user_1", "exports")

    mlz.consume_usage("user_1", 700, idempotency_key="calls", meter="api_calls")
    mlz.consume_usage("user_1", 20, idempotency_key="ex", meter="exports")
    in_flight = mlz.reserve_usage("user_1", 10, idempotency_key="job", meter="exports",
                                  ttl=timedelta(days=40))
    assert meters(mlz) == {"api_calls": 300, "exports": 20}
    # The same period's invoice again (a redelivery, another event of it): no second reset.
    pay_period(events, shape, sub_id, start, invoice_id=first)
    assert meters(mlz) == {"api_calls": 300, "exports": 20}

    events.advance(30)
    events.send("customer.subscription.updated", payloads.subscription(
        sub_id=sub_id, status="active", price="price_team_monthly", shape=shape,
        metadata=TEAM, period=(start + 30 * DAY, start + 60 * DAY)))
    pay_period(events, shape, sub_id, start + 30 * DAY)
    # Each meter back to its count; exports leaves room for the 10 still held.
    assert meters(mlz) == {"api_calls": 1000, "exports": 40}
    in_flight.release()
    assert meters(mlz) == {"api_calls": 1000, "exports": 50}
    resets = [(e.meter, e.units_delta) for e in mlz.ledger("user_1")
              if e.action == "units_reset"]
    assert resets == [("api_calls", 1000), ("exports", 50), ("api_calls", 700),
                      ("exports", 20)]
    for meter in ("api_calls", "exports"):
        assert sum(e.units_delta or 0 for e in mlz.ledger("user_1")
                   if e.meter == meter) == meters(mlz)[meter]


def buy_bundle(events: Scenario, quantity: int) -> str:
    pi = payloads.new_id("pi")
    events.send("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="payment", payment_intent=pi,
        metadata={"subject_ref": "user_1", "product_code": "BUNDLE_PACK"},
        line_items=[("price_bundle_pack", quantity)]))
    return pi


def test_a_pack_grants_each_meter_times_the_quantity(mlz: Licenzy, events: Scenario) -> None:
    buy_bundle(events, 3)
    assert meters(mlz) == {"api_calls": 300, "exports": 30}
    (entitlement,) = mlz.entitlements("user_1")
    assert entitlement.usage_remaining == 330 and entitlement.available
    granted = {e.meter: e.units_delta for e in mlz.ledger("user_1") if e.action == "granted"}
    assert granted == {"api_calls": 300, "exports": 30}


def test_a_full_refund_zeroes_every_meter_of_the_pack(mlz: Licenzy, events: Scenario,
                                                      shape: str) -> None:
    pi = buy_bundle(events, 1)
    mlz.consume_usage("user_1", 40, idempotency_key="k", meter="api_calls")
    result = events.send("charge.refunded", payloads.charge(
        payment_intent=pi, shape=shape, amount=2000, refunded_amount=2000))
    assert result.outcome == "processed"
    assert meters(mlz) == {"api_calls": 0, "exports": 0}
    assert not mlz.check_access("user_1")
    removed = {e.meter: e.units_delta for e in mlz.ledger("user_1")
               if e.reference == result.event_id and e.units_delta}
    assert removed == {"api_calls": -60, "exports": -10}


def test_a_partial_refund_changes_no_meter(mlz: Licenzy, events: Scenario,
                                           shape: str) -> None:
    pi = buy_bundle(events, 1)
    events.send("charge.refunded", payloads.charge(
        payment_intent=pi, shape=shape, amount=2000, refunded_amount=500))
    assert meters(mlz) == {"api_calls": 100, "exports": 10}
    assert mlz.check_access("user_1", "exports")


def test_a_dispute_suspends_the_pack_and_a_won_close_restores_its_meters(
        mlz: Licenzy, events: Scenario) -> None:
    pi = buy_bundle(events, 1)
    mlz.consume_usage("user_1", 4, idempotency_key="k", meter="exports")
    events.send("charge.dispute.created", payloads.dispute(payment_intent=pi,
                                                           status="needs_response"))
    assert not mlz.check_access("user_1", "api_calls")
    assert mlz.entitlements("user_1")[0].status == "disputed"
    events.advance(1)
    events.send("charge.dispute.closed", payloads.dispute(payment_intent=pi, status="won"))
    assert mlz.check_access("user_1", "api_calls")
    assert meters(mlz) == {"api_calls": 100, "exports": 6}
