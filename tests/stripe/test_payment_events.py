"""charge.refunded, refund.created/updated, charge.dispute.created/closed."""

from __future__ import annotations

import pytest

from licenzy_embed import Licenzy

from . import payloads
from .conftest import Scenario

DISPUTE_OPEN = "needs_response"


@pytest.fixture(params=payloads.SHAPES)
def shape(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def buy_one_off(stripe_events: Scenario, product_code: str) -> str:
    """A paid one-off purchase of user_1; returns its payment intent."""
    pi = payloads.new_id("pi")
    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="payment", payment_intent=pi,
        metadata={"subject_ref": "user_1", "product_code": product_code}))
    return pi


def subscribe(stripe_events: Scenario, shape: str) -> str:
    """An active PRO_MONTHLY subscription of user_1 whose first invoice was paid by the
    returned payment intent (named the way the shape names it)."""
    sub_id, pi, now = payloads.new_id("sub"), payloads.new_id("pi"), stripe_events.now
    meta = {"subject_ref": "user_1", "product_code": "PRO_MONTHLY"}
    stripe_events.send("customer.subscription.created", payloads.subscription(
        sub_id=sub_id, status="active", price="price_pro_monthly", shape=shape, metadata=meta,
        period=(now, now + 30 * 86400)))
    pay_invoice(stripe_events, shape, sub_id, pi, reason="subscription_create")
    return pi


def pay_invoice(stripe_events: Scenario, shape: str, sub_id: str, pi: str, *,
                reason: str = "subscription_cycle") -> None:
    """invoice.paid for a period starting now, paid by ``pi``: the older shape names it on
    the invoice, the current one in the invoice_payment.paid that follows."""
    now = stripe_events.now
    invoice = payloads.invoice(
        sub_id=sub_id, price="price_pro_monthly", shape=shape, period=(now, now + 30 * 86400),
        payment_intent=pi, sub_metadata={"subject_ref": "user_1",
                                         "product_code": "PRO_MONTHLY"},
        billing_reason=reason)
    stripe_events.send("invoice.paid", invoice)
    if shape == "current":
        stripe_events.send("invoice_payment.paid", payloads.invoice_payment(
            invoice_id=invoice["id"], payment_intent=pi, created=now))


def refunded_charge(pi: str, shape: str, refunded: int = 2000) -> payloads.Obj:
    return payloads.charge(payment_intent=pi, shape=shape, amount=2000,
                           refunded_amount=refunded)


def test_full_refund_of_a_pack_removes_its_units(lz: Licenzy, stripe_events: Scenario,
                                                 shape: str) -> None:
    pi = buy_one_off(stripe_events, "CREDITS_1K")
    lz.consume_usage("user_1", 100, idempotency_key="u1")
    result = stripe_events.send("charge.refunded", refunded_charge(pi, shape))

    assert result.outcome == "processed"
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.usage_remaining, ent.availability_reason) == (
        "refunded", False, 0, "refunded")
    refunds = [e for e in lz.ledger("user_1") if e.reference == result.event_id]
    assert -900 in [e.units_delta for e in refunds]
    assert {e.source for e in refunds} == {"stripe"}


def test_full_refund_of_a_time_pass_ends_it_now(lz: Licenzy, stripe_events: Scenario,
                                                shape: str) -> None:
    pi = buy_one_off(stripe_events, "WEEK_PASS")
    stripe_events.advance(1)
    stripe_events.send("charge.refunded", refunded_charge(pi, shape))
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("refunded", False)
    assert ent.expires_at is not None and ent.expires_at.timestamp() == stripe_events.now


def test_refund_of_a_subscription_payment_makes_it_past_due_without_grace(
        lz: Licenzy, stripe_events: Scenario, shape: str) -> None:
    pi = subscribe(stripe_events, shape)
    stripe_events.send("charge.refunded", refunded_charge(pi, shape))
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.availability_reason) == (
        "past_due", False, "subscription_past_due")


def test_partial_refund_changes_nothing_but_is_recorded(lz: Licenzy, stripe_events: Scenario,
                                                        shape: str) -> None:
    pi = buy_one_off(stripe_events, "CREDITS_1K")
    before = stripe_events.only("user_1")
    result = stripe_events.send("charge.refunded", refunded_charge(pi, shape, refunded=500))

    assert stripe_events.only("user_1") == before
    assert [e.action for e in lz.ledger("user_1") if e.reference == result.event_id] == [
        "refund_recorded"]


def test_refund_created_with_the_charge_expanded_tells_a_full_refund(
        lz: Licenzy, stripe_events: Scenario, shape: str) -> None:
    pi = buy_one_off(stripe_events, "CREDITS_100")
    charge = refunded_charge(pi, shape)
    stripe_events.send("refund.created", payloads.refund(payment_intent=pi, amount=2000,
                                                         expanded_charge=charge))
    assert stripe_events.only("user_1").status == "refunded"


def test_refund_events_without_the_charge_only_record(lz: Licenzy, stripe_events: Scenario,
                                                      shape: str) -> None:
    pi = buy_one_off(stripe_events, "CREDITS_100")
    created = stripe_events.send("refund.created",
                                 payloads.refund(payment_intent=pi, amount=2000))
    failed = stripe_events.send("refund.updated", payloads.refund(
        payment_intent=pi, amount=2000, status="failed"))

    assert created.note and "changes nothing" in created.note
    assert failed.note == "a failed refund changes nothing"
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.usage_remaining) == ("active", 100)


def test_dispute_suspends_a_pack_and_a_won_dispute_restores_it(
        lz: Licenzy, stripe_events: Scenario) -> None:
    pi = buy_one_off(stripe_events, "CREDITS_1K")
    dispute_id, t = payloads.new_id("du"), stripe_events.now
    stripe_events.send("charge.dispute.created", payloads.dispute(
        payment_intent=pi, status=DISPUTE_OPEN, dispute_id=dispute_id), created=t + 1)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.availability_reason, ent.usage_remaining) == (
        "disputed", False, "disputed", 1000)

    stripe_events.send("charge.dispute.closed", payloads.dispute(
        payment_intent=pi, status="won", dispute_id=dispute_id), created=t + 2)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.usage_remaining) == ("active", True, 1000)


def test_lost_dispute_keeps_it_suspended(lz: Licenzy, stripe_events: Scenario) -> None:
    pi = buy_one_off(stripe_events, "WEEK_PASS")
    dispute_id, t = payloads.new_id("du"), stripe_events.now
    for offset, (event_type, status) in enumerate([("charge.dispute.created", DISPUTE_OPEN),
                                                   ("charge.dispute.closed", "lost")]):
        stripe_events.send(event_type, payloads.dispute(payment_intent=pi, status=status,
                                                        dispute_id=dispute_id),
                           created=t + 1 + offset)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("disputed", False)


def test_dispute_on_a_subscription_and_its_reversal(lz: Licenzy, stripe_events: Scenario,
                                                    shape: str) -> None:
    pi = subscribe(stripe_events, shape)
    dispute_id, t = payloads.new_id("du"), stripe_events.now
    stripe_events.send("charge.dispute.created", payloads.dispute(
        payment_intent=pi, status=DISPUTE_OPEN, dispute_id=dispute_id), created=t + 1)
    assert (stripe_events.only("user_1").status, lz.check_access("user_1").allowed) == (
        "past_due", False)
    stripe_events.send("charge.dispute.closed", payloads.dispute(
        payment_intent=pi, status="won", dispute_id=dispute_id), created=t + 2)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("active", True)


def test_a_late_dispute_opening_does_not_undo_its_closing(lz: Licenzy,
                                                          stripe_events: Scenario) -> None:
    pi = buy_one_off(stripe_events, "CREDITS_1K")
    dispute_id, t = payloads.new_id("du"), stripe_events.now
    stripe_events.send("charge.dispute.closed", payloads.dispute(
        payment_intent=pi, status="won", dispute_id=dispute_id), created=t + 2)
    late = stripe_events.send("charge.dispute.created", payloads.dispute(
        payment_intent=pi, status=DISPUTE_OPEN, dispute_id=dispute_id), created=t + 1)
    assert late.outcome == "processed"
    # Applied but changing nothing: the note says why, rather than a bare "processed".
    assert late.note is not None and "changes nothing" in late.note
    assert "note" in late.to_dict()
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("active", True)


def test_paying_the_next_period_ends_an_earlier_refund(lz: Licenzy, stripe_events: Scenario,
                                                       shape: str) -> None:
    pi = subscribe(stripe_events, shape)
    stripe_events.send("charge.refunded", refunded_charge(pi, shape))
    assert not lz.check_access("user_1")
    [record] = stripe_events.records("user_1")
    assert record.stripe_subscription_id is not None
    stripe_events.advance(30)
    pay_invoice(stripe_events, shape, record.stripe_subscription_id, payloads.new_id("pi"))
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("active", True)


def test_payment_without_payment_intent_is_unmatched(lz: Licenzy,
                                                     stripe_events: Scenario) -> None:
    obj = payloads.fixture("dispute")  # Stripe's example names a charge, no payment intent
    result = stripe_events.send("charge.dispute.created", obj)
    assert (result.outcome, result.note) == (
        "processed", "the payment has no payment intent to match")
