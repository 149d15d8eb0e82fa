"""invoice_payment.paid: on current API versions it is the only event naming the payment
intent of a subscription invoice (``invoice.payment_intent`` is gone, ``invoice.payments``
comes only when expanded), so refunds and disputes of subscription payments depend on it."""

from __future__ import annotations

import itertools

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.testing import StripeSimulator

from . import payloads
from .conftest import DAY, Scenario

META = {"subject_ref": "user_1", "product_code": "PRO_MONTHLY"}
PRICE = "price_pro_monthly"


def subscription_created(stripe_events: Scenario, sub_id: str) -> None:
    now = stripe_events.now
    stripe_events.send("customer.subscription.created", payloads.subscription(
        sub_id=sub_id, status="active", price=PRICE, shape="current", metadata=META,
        period=(now, now + 30 * DAY)))


def paid_invoice(stripe_events: Scenario, sub_id: str, pi: str, *, shape: str = "current",
                 expand_payments: bool = False) -> payloads.Obj:
    now = stripe_events.now
    return payloads.invoice(sub_id=sub_id, price=PRICE, shape=shape,
                            period=(now, now + 30 * DAY), payment_intent=pi,
                            sub_metadata=META, billing_reason="subscription_create",
                            expand_payments=expand_payments)


ARRIVALS = list(itertools.permutations(["invoice.paid", "invoice_payment.paid",
                                        "charge.refunded"]))


@pytest.mark.parametrize("arrival", ARRIVALS, ids=["|".join(a) for a in ARRIVALS])
def test_a_refund_of_a_subscription_payment_named_only_by_its_invoice_payment(
        lz: Licenzy, stripe_events: Scenario, arrival: tuple[str, ...]) -> None:
    """The current shape: the invoice names no payment intent. Whichever of the invoice, its
    invoice_payment and the refund arrive first, the refund takes the access away."""
    sub_id, pi, now = payloads.new_id("sub"), payloads.new_id("pi"), stripe_events.now
    subscription_created(stripe_events, sub_id)
    invoice = paid_invoice(stripe_events, sub_id, pi)
    assert "payments" not in invoice and invoice.get("payment_intent") is None
    objects = {
        "invoice.paid": (invoice, now),
        "invoice_payment.paid": (payloads.invoice_payment(
            invoice_id=invoice["id"], payment_intent=pi, created=now), now),
        "charge.refunded": (payloads.charge(payment_intent=pi, shape="current",
                                            refunded_amount=2000), now + DAY),
    }
    for event_type in arrival:
        obj, created = objects[event_type]
        assert stripe_events.send(event_type, obj, created=created).outcome == "processed"

    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.availability_reason) == (
        "past_due", False, "subscription_past_due")
    [record] = stripe_events.records("user_1")
    assert record.stripe_payment_intent_id == pi


@pytest.mark.parametrize("variant", ["expanded_payments", "older_payment_intent"])
def test_an_invoice_naming_its_payment_intent_needs_no_invoice_payment(
        lz: Licenzy, stripe_events: Scenario, variant: str) -> None:
    """An expanded invoice (``payments``) or an older API version's
    (``invoice.payment_intent``) links the payment by itself."""
    sub_id, pi = payloads.new_id("sub"), payloads.new_id("pi")
    subscription_created(stripe_events, sub_id)
    if variant == "expanded_payments":
        invoice = paid_invoice(stripe_events, sub_id, pi, expand_payments=True)
        assert invoice["payments"]["data"][0]["payment"]["payment_intent"] == pi
    else:
        invoice = paid_invoice(stripe_events, sub_id, pi, shape="older")
        assert invoice["payment_intent"] == pi
    stripe_events.send("invoice.paid", invoice)
    stripe_events.send("charge.dispute.created", payloads.dispute(
        payment_intent=pi, status="needs_response"))

    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("past_due", False)


def test_an_invoice_payment_of_an_unknown_invoice_is_recorded_and_waits(
        lz: Licenzy, stripe_events: Scenario) -> None:
    result = stripe_events.send("invoice_payment.paid", payloads.invoice_payment(
        invoice_id=payloads.new_id("in"), payment_intent=payloads.new_id("pi")))
    assert result.outcome == "processed"
    assert result.note is not None and "linked when its invoice event arrives" in result.note
    assert lz.entitlements("user_1") == []
    fixture = payloads.fixture("invoice_payment")  # Stripe's example: no payment intent
    result = stripe_events.send("invoice_payment.paid", fixture)
    assert (result.outcome, result.note) == ("processed", "not an invoice paid by a payment "
                                                          "intent")


def test_simulated_subscription_refunds_and_disputes_take_access_away(lz: Licenzy) -> None:
    sim = StripeSimulator.for_licenzy(lz)
    session = lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    events = sim.complete_checkout(session)
    assert "payments" not in events[2]["data"]["object"]
    assert lz.check_access("user_1").allowed

    sim.refund("user_1")
    [ent] = lz.entitlements("user_1")
    assert (ent.status, ent.available) == ("past_due", False)

    sim.renew("user_1")  # the next period's payment ends the earlier refund's effect
    assert lz.check_access("user_1").allowed
    sim.renew("user_1")  # a second renewal in the same second of the frozen clock
    sim.dispute("user_1")  # disputes the newest payment: the current one
    assert not lz.check_access("user_1").allowed
    sim.close_dispute("user_1", won=True)
    assert lz.check_access("user_1").allowed
