"""checkout.session.* events: what each does to entitlements and checkout attempts."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from licenzy_embed import Licenzy

from . import payloads
from .conftest import DAY, Scenario

META_PACK = {"subject_ref": "user_1", "product_code": "CREDITS_1K"}


def attempt_status(lz: Licenzy, attempt_id: str) -> str:
    attempt = lz.store.get_attempt(lz.mode, attempt_id)
    assert attempt is not None
    return attempt.status


def paid_session(lz: Licenzy, product_code: str, key: str = "k1") -> tuple[str, str]:
    """A checkout attempt created through the API (simulator gateway): its session id, and
    the payment intent Stripe would attach once paid."""
    session = lz.create_checkout_session("user_1", product_code, idempotency_key=key)
    return session.session_id, payloads.new_id("pi")


def test_completed_paid_pack_grants_units_and_finalizes_the_attempt(
        lz: Licenzy, stripe_events: Scenario) -> None:
    session = lz.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    assert not lz.check_access("user_1")  # creating a session grants nothing

    result = stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=session.session_id, mode="payment", metadata=META_PACK,
        payment_intent=payloads.new_id("pi")))

    assert result.to_dict() == {"event_id": result.event_id,
                                "event_type": "checkout.session.completed",
                                "outcome": "processed"}
    ent = stripe_events.only("user_1")
    assert (ent.kind, ent.status, ent.available, ent.usage_remaining) == (
        "usage_pack", "active", True, 1000)
    assert ent.availability_reason == "usage_available"
    assert attempt_status(lz, session.attempt_id) == "finalized"
    finalized = stripe_events.changes_of("purchase.finalized")
    assert len(finalized) == 1
    assert finalized[0].data["attempt_id"] == session.attempt_id
    assert finalized[0].data["entitlement"]["usage_remaining"] == 1000
    [entry] = lz.ledger("user_1")
    assert (entry.action, entry.source, entry.reference, entry.units_delta) == (
        "granted", "stripe", result.event_id, 1000)
    # A replayed create now reports the finalized attempt, still without calling Stripe.
    again = lz.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    assert (again.status, again.replayed) == ("finalized", True)


def test_completed_subscription_session_activates_it(lz: Licenzy,
                                                     stripe_events: Scenario) -> None:
    session = lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    sub_id = payloads.new_id("sub")
    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=session.session_id, mode="subscription", subscription=sub_id,
        metadata={"subject_ref": "user_1", "product_code": "PRO_MONTHLY"}))

    ent = stripe_events.only("user_1")
    # Units come with the paid invoice of the period, not with the session.
    assert (ent.kind, ent.status, ent.available, ent.usage_remaining) == (
        "subscription", "active", True, 0)
    [record] = stripe_events.records("user_1")
    assert record.stripe_subscription_id == sub_id
    assert record.stripe_checkout_session_id == session.session_id


def test_time_pass_runs_from_the_payment(lz: Licenzy, stripe_events: Scenario) -> None:
    session_id, pi = paid_session(lz, "WEEK_PASS")
    paid_at = stripe_events.now
    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=session_id, mode="payment", payment_intent=pi,
        metadata={"subject_ref": "user_1", "product_code": "WEEK_PASS"}), created=paid_at)

    ent = stripe_events.only("user_1")
    assert ent.expires_at is not None
    assert ent.expires_at.timestamp() == paid_at + 7 * DAY
    assert (ent.available, ent.availability_reason, ent.usage_remaining) == (
        True, "pass_active", None)
    stripe_events.advance(7)
    assert not lz.check_access("user_1")
    assert stripe_events.only("user_1").availability_reason == "expired"


def test_expanded_line_items_buy_several_packs(lz: Licenzy, stripe_events: Scenario) -> None:
    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="payment", payment_intent=payloads.new_id("pi"),
        client_reference_id="user_1", line_items=[("price_credits_30d", 3)]))

    ent = stripe_events.only("user_1")
    assert (ent.product_code, ent.usage_remaining) == ("CREDITS_30D", 1500)
    assert ent.expires_at is not None
    assert ent.expires_at.timestamp() == stripe_events.now + 30 * DAY


def test_async_payment_is_pending_until_it_succeeds(lz: Licenzy,
                                                    stripe_events: Scenario) -> None:
    session = lz.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    pi = payloads.new_id("pi")

    def body(status: str) -> dict[str, object]:
        return payloads.checkout_session(session_id=session.session_id, mode="payment",
                                         payment_status=status, metadata=META_PACK,
                                         payment_intent=pi)

    stripe_events.send("checkout.session.completed", body("unpaid"))
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.availability_reason, ent.usage_remaining) == (
        "pending", False, "payment_pending", 0)
    assert attempt_status(lz, session.attempt_id) == "created"
    assert stripe_events.changes_of("purchase.finalized") == []

    stripe_events.advance(2)
    stripe_events.send("checkout.session.async_payment_succeeded", body("paid"))
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.usage_remaining) == ("active", True, 1000)
    assert attempt_status(lz, session.attempt_id) == "finalized"
    assert len(stripe_events.changes_of("purchase.finalized")) == 1


def test_async_payment_failure_fails_purchase_and_attempt(lz: Licenzy,
                                                          stripe_events: Scenario) -> None:
    session = lz.create_checkout_session("user_1", "WEEK_PASS", idempotency_key="k1")
    pi = payloads.new_id("pi")
    for event_type, status in (("checkout.session.completed", "unpaid"),
                               ("checkout.session.async_payment_failed", "unpaid")):
        stripe_events.send(event_type, payloads.checkout_session(
            session_id=session.session_id, mode="payment", payment_status=status,
            payment_intent=pi, metadata={"subject_ref": "user_1", "product_code": "WEEK_PASS"}))

    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.availability_reason) == (
        "failed", False, "payment_failed")
    assert attempt_status(lz, session.attempt_id) == "failed"


def test_expired_session_fails_the_attempt_and_grants_nothing(
        lz: Licenzy, stripe_events: Scenario) -> None:
    session = lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    result = stripe_events.send("checkout.session.expired", payloads.checkout_session(
        session_id=session.session_id, mode="subscription", status="expired",
        payment_status="unpaid", metadata={"subject_ref": "user_1"}))

    assert result.outcome == "processed"
    assert attempt_status(lz, session.attempt_id) == "failed"
    assert lz.entitlements("user_1") == []
    again = lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    assert again.status == "failed"


def test_subject_is_matched_through_the_stored_customer(lz: Licenzy,
                                                        stripe_events: Scenario) -> None:
    session = lz.create_checkout_session("user_9", "CREDITS_100", idempotency_key="k1")
    with lz.store.transaction(lz.mode) as tx:
        link = tx.get_customer("user_9")  # the customer checkout created and stored
    assert link is not None
    # A session made elsewhere (no metadata, no client_reference_id) for the same customer.
    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="payment", payment_intent=payloads.new_id("pi"),
        customer=link.stripe_customer_id, line_items=[("price_credits_100", 1)]))
    assert session.session_id  # the app's own session is still open
    ent = stripe_events.only("user_9")
    assert (ent.product_code, ent.usage_remaining) == ("CREDITS_100", 100)


@pytest.mark.parametrize("metadata, line_items, missing", [
    ({"product_code": "CREDITS_1K"}, None, "subject"),
    ({"subject_ref": "user_1", "product_code": "NOT_SOLD"}, None, "product"),
    ({"subject_ref": "user_1"}, [("price_from_another_app", 1)], "product"),
    ({"subject_ref": "user_1", "product_code": "PRO_MONTHLY"}, None, "payment-mode"),
])
def test_unknown_subject_or_product_is_recorded_acknowledged_and_logged(
        lz: Licenzy, stripe_events: Scenario, caplog: pytest.LogCaptureFixture,
        metadata: dict[str, str], line_items: list[tuple[str, int]] | None,
        missing: str) -> None:
    envelope = payloads.event("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="payment", payment_intent=payloads.new_id("pi"),
        metadata=metadata, line_items=line_items), created=stripe_events.now)
    with caplog.at_level(logging.WARNING, logger="licenzy_embed"):
        result = payloads.send(lz, envelope)

    assert result.outcome == "processed"
    assert result.note
    assert lz.entitlements("user_1") == []
    assert lz.store.get_processed_event(lz.mode, result.event_id) is not None
    assert [r for r in caplog.records if result.event_id in r.getMessage()]
    assert stripe_events.changes == []
    # Recorded: Stripe's retry of the same delivery is a duplicate, not a second warning.
    caplog.clear()
    assert payloads.send(lz, envelope).outcome == "duplicate"
    assert not [r for r in caplog.records if result.event_id in r.getMessage()]


def test_a_completed_event_older_than_its_refund_grants_nothing_usable(
        lz: Licenzy, stripe_events: Scenario) -> None:
    """The refund arrives first (its purchase's event was delayed); the fact is kept and
    applied when the purchase shows up."""
    pi = payloads.new_id("pi")
    t0 = stripe_events.now
    refund = stripe_events.send("charge.refunded", payloads.charge(
        payment_intent=pi, shape="current", amount=2000, refunded_amount=2000),
        created=t0 + 60)
    assert refund.note and "applies when its purchase arrives" in refund.note

    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="payment", payment_intent=pi,
        metadata=META_PACK), created=t0)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.usage_remaining) == ("refunded", False, 0)


def test_duplicate_completed_event_changes_nothing(lz: Licenzy,
                                                   stripe_events: Scenario) -> None:
    body = payloads.checkout_session(session_id=payloads.new_id("cs"), mode="payment",
                                     payment_intent=payloads.new_id("pi"), metadata=META_PACK)
    envelope = payloads.event("checkout.session.completed", body, created=stripe_events.now)
    first = payloads.send(lz, envelope)
    ledger = lz.ledger("user_1")
    stripe_events.clock.advance(timedelta(hours=1))
    second = payloads.send(lz, envelope)

    assert (first.outcome, second.outcome) == ("processed", "duplicate")
    assert lz.ledger("user_1") == ledger
    assert stripe_events.only("user_1").usage_remaining == 1000
    assert len(stripe_events.changes_of("purchase.finalized")) == 1
