"""Refund and dispute facts of one payment created in the same second: their order comes from
a payment's life (a dispute opens before it closes; a refund is final), never from the event
ids, which are random. And an event applied without changing anything says why."""

from __future__ import annotations

import pytest

from licenzy_embed import Licenzy

from . import payloads
from .conftest import Scenario
from .test_payment_events import DISPUTE_OPEN, buy_one_off, refunded_charge, subscribe

# Event ids sorting the closing first ("a…" < "z…"), then the opening first.
ID_ORDERS = {"closing id sorts first": ("evt_z_open", "evt_a_close"),
             "opening id sorts first": ("evt_a_open", "evt_z_close")}


@pytest.mark.parametrize("ids", ID_ORDERS.values(), ids=ID_ORDERS.keys())
@pytest.mark.parametrize("delivery", ["opening first", "closing first"])
@pytest.mark.parametrize("closed_as", ["won", "warning_closed", "lost"])
def test_a_dispute_opened_and_closed_in_one_second_ends_as_its_closing_says(
        lz: Licenzy, stripe_events: Scenario, ids: tuple[str, str], delivery: str,
        closed_as: str) -> None:
    pi = buy_one_off(stripe_events, "CREDITS_1K")
    dispute_id, t = payloads.new_id("du"), stripe_events.now + 1
    open_id, close_id = (f"{i}_{payloads.new_id('x')}" for i in ids)
    opening = ("charge.dispute.created", payloads.dispute(
        payment_intent=pi, status="warning_needs_response" if closed_as == "warning_closed"
        else DISPUTE_OPEN, dispute_id=dispute_id), open_id)
    closing = ("charge.dispute.closed", payloads.dispute(
        payment_intent=pi, status=closed_as, dispute_id=dispute_id), close_id)
    for event_type, obj, event_id in ([opening, closing] if delivery == "opening first"
                                      else [closing, opening]):
        assert stripe_events.send(event_type, obj, created=t, event_id=event_id).outcome == (
            "processed")
    ent = stripe_events.only("user_1")
    if closed_as == "lost":
        assert (ent.status, ent.available) == ("disputed", False)
    else:
        assert (ent.status, ent.available, ent.usage_remaining) == ("active", True, 1000)


@pytest.mark.parametrize("ids", ID_ORDERS.values(), ids=ID_ORDERS.keys())
@pytest.mark.parametrize("delivery", ["opening first", "closing first"])
def test_a_subscription_dispute_won_in_the_second_it_opened_gives_access_back(
        lz: Licenzy, stripe_events: Scenario, ids: tuple[str, str], delivery: str) -> None:
    pi = subscribe(stripe_events, "current")
    dispute_id, t = payloads.new_id("du"), stripe_events.now + 1
    open_id, close_id = (f"{i}_{payloads.new_id('x')}" for i in ids)
    events = [("charge.dispute.created", DISPUTE_OPEN, open_id),
              ("charge.dispute.closed", "won", close_id)]
    for event_type, status, event_id in (events if delivery == "opening first"
                                         else events[::-1]):
        stripe_events.send(event_type, payloads.dispute(
            payment_intent=pi, status=status, dispute_id=dispute_id), created=t,
            event_id=event_id)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("active", True)


@pytest.mark.parametrize("ids", [("evt_a_refund", "evt_z_dispute"),
                                 ("evt_z_refund", "evt_a_dispute")])
@pytest.mark.parametrize("delivery", ["refund first", "dispute first"])
def test_a_refund_in_the_second_a_dispute_closed_stays_final(
        lz: Licenzy, stripe_events: Scenario, ids: tuple[str, str], delivery: str) -> None:
    pi = buy_one_off(stripe_events, "CREDITS_1K")
    t = stripe_events.now + 1
    refund_id, close_id = (f"{i}_{payloads.new_id('x')}" for i in ids)
    stripe_events.send("charge.dispute.created", payloads.dispute(
        payment_intent=pi, status=DISPUTE_OPEN), created=t)
    sends = [("charge.refunded", refunded_charge(pi, "current"), refund_id),
             ("charge.dispute.closed", payloads.dispute(payment_intent=pi, status="won"),
              close_id)]
    for event_type, obj, event_id in sends if delivery == "refund first" else sends[::-1]:
        stripe_events.send(event_type, obj, created=t, event_id=event_id)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.usage_remaining) == ("refunded", False, 0)


def test_an_event_that_changes_nothing_always_has_a_note(lz: Licenzy,
                                                         stripe_events: Scenario) -> None:
    sub_id, now = payloads.new_id("sub"), stripe_events.now
    meta = {"subject_ref": "user_1", "product_code": "PRO_MONTHLY"}
    invoice = payloads.invoice(sub_id=sub_id, price="price_pro_monthly", shape="current",
                               period=(now, now + 30 * 86400), payment_intent=None,
                               sub_metadata=meta, billing_reason="subscription_create")
    stripe_events.send("customer.subscription.created", payloads.subscription(
        sub_id=sub_id, status="active", price="price_pro_monthly", shape="current",
        metadata=meta, period=(now, now + 30 * 86400)))
    first = stripe_events.send("invoice.paid", invoice)
    again = stripe_events.send("invoice.payment_succeeded", invoice)  # the same payment
    assert first.outcome == again.outcome == "processed"
    assert again.note is not None
