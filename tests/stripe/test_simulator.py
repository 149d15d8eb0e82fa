"""The Stripe simulator of the testing kit: a faithful gateway, real signed events, and
delivery control."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest

import stripe
from licenzy_embed import InMemoryStore, Licenzy, PaymentProviderError
from licenzy_embed.testing import (
    DeliveryFailed,
    FrozenClock,
    StripeSimulator,
    sign_payload,
)
from licenzy_embed.webhooks import WebhookResult

from ..conftest import catalog


@pytest.fixture
def sim(lz: Licenzy) -> StripeSimulator:
    return StripeSimulator.for_licenzy(lz)


def outcomes(results: list[object]) -> list[str]:
    return [r.outcome for r in results if isinstance(r, WebhookResult)]


def test_a_licenzy_without_key_uses_the_simulator(lz: Licenzy) -> None:
    assert isinstance(lz.gateway, StripeSimulator)
    assert StripeSimulator.for_licenzy(lz) is lz.gateway


def test_the_simulator_refuses_live_mode(clock: FrozenClock) -> None:
    live = Licenzy(store=InMemoryStore(), products=catalog(), clock=clock,
                   stripe_api_key="sk_live_abc", stripe_webhook_secret="whsec_x")
    with pytest.raises(ValueError, match="test mode"):
        StripeSimulator.for_licenzy(live)
    with pytest.raises(ValueError, match="test mode"):
        StripeSimulator(live)


def test_a_test_key_gets_the_simulator_attached_instead_of_the_network(
        clock: FrozenClock) -> None:
    lz = Licenzy(store=InMemoryStore(), products=catalog(), clock=clock,
                 stripe_api_key="sk_test_abc", stripe_webhook_secret="whsec_x")
    sim = StripeSimulator.for_licenzy(lz)
    assert lz.gateway is sim and sim.secret == "whsec_x"
    session = lz.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k")
    sim.complete_checkout(session)
    assert lz.check_access("user_1")


def test_the_gateway_half_behaves_like_stripe(sim: StripeSimulator) -> None:
    params = {"mode": "payment", "line_items": [{"price": "price_credits_1k", "quantity": 1}]}
    first = sim.create_checkout_session(params, idempotency_key="k1")
    assert first == sim.create_checkout_session(dict(params), idempotency_key="k1")
    assert first.url.startswith("http://localhost/stripe-simulator/checkout/cs_test_")
    with pytest.raises(PaymentProviderError, match="same parameters"):
        sim.create_checkout_session({**params, "customer": None}, idempotency_key="k1")
    with pytest.raises(PaymentProviderError, match="No such price"):
        sim.create_checkout_session({**params, "line_items": [{"price": "price_x"}]},
                                    idempotency_key="k2")
    with pytest.raises(PaymentProviderError, match="subscription mode"):
        sim.create_checkout_session({**params, "line_items": [{"price": "price_pro_monthly"}]},
                                    idempotency_key="k3")
    with pytest.raises(PaymentProviderError, match="No such customer"):
        sim.create_checkout_session({**params, "customer": "cus_nobody"}, idempotency_key="k4")


def test_a_restarted_app_can_sell_again_to_a_customer_an_earlier_simulator_made(
        clock: FrozenClock) -> None:
    # A key-less app on a persistent store, restarted: its new simulator did not create the
    # Stripe customer the store remembers for the subject, and must not answer 502 for it.
    store = InMemoryStore()
    before = Licenzy(store=store, products=catalog(), clock=clock, stripe_webhook_secret="whsec_x")
    StripeSimulator.for_licenzy(before).complete_checkout(
        before.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1"))
    after = Licenzy(store=store, products=catalog(), clock=clock, stripe_webhook_secret="whsec_x")
    session = after.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k2")
    StripeSimulator.for_licenzy(after).complete_checkout(session)
    assert sum(e.usage_remaining or 0 for e in after.entitlements("user_1")) == 2000


def test_events_are_signed_for_the_sdk_and_dated_by_the_licenzy_clock(
        lz: Licenzy, sim: StripeSimulator, clock: FrozenClock) -> None:
    session = lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    with sim.hold_deliveries():
        events = sim.complete_checkout(session)
    assert [e["type"] for e in events] == [
        "checkout.session.completed", "customer.subscription.created", "invoice.paid",
        "invoice_payment.paid"]
    payload, header = sim.signed(events[0])
    verified = stripe.Webhook.construct_event(payload, header, lz.webhook_secrets[0])
    assert verified["id"] == events[0]["id"]
    assert verified["created"] == clock.timestamp()  # 2026, the frozen clock
    signed_at = int(header.split(",")[0].removeprefix("t="))
    assert abs(signed_at - time.time()) < 3600  # real time, which the SDK checks against
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, header, "whsec_other", 300)
    # Current API shape.
    sub = events[1]["data"]["object"]
    assert sub["items"]["data"][0]["current_period_end"] == clock.timestamp() + 30 * 86400
    invoice = events[2]["data"]["object"]
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
    assert invoice["lines"]["data"][0]["pricing"]["price_details"]["price"] == (
        "price_pro_monthly")
    # As Stripe sends it: the invoice names no payment intent, its invoice_payment does.
    assert "payments" not in invoice and "payment_intent" not in invoice
    payment = events[3]["data"]["object"]
    assert (payment["object"], payment["invoice"]) == ("invoice_payment", invoice["id"])
    assert payment["payment"]["payment_intent"].startswith("pi_")


def test_held_events_can_be_delivered_reversed_and_twice(lz: Licenzy,
                                                         sim: StripeSimulator) -> None:
    session = lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    with sim.hold_deliveries() as held:
        sim.complete_checkout(session)
        sim.fail_payment("user_1")
        assert len(held) == 6
        assert not lz.check_access("user_1")  # nothing delivered yet

    results = sim.flush("reverse", duplicate=True)
    assert outcomes(results) == ["processed", "duplicate"] * 6
    [ent] = lz.entitlements("user_1")
    assert (ent.status, ent.availability_reason) == ("past_due", "past_due_grace")
    assert sim.held == []
    assert outcomes(sim.deliver(sim.deliveries[0].event, times=2)) == ["duplicate"] * 2


def test_flush_in_an_explicit_or_shuffled_order(lz: Licenzy, sim: StripeSimulator) -> None:
    sim.hold_deliveries()
    session = lz.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    sim.complete_checkout(session)
    sim.refund("user_1")
    assert [e["type"] for e in sim.held] == [
        "checkout.session.completed", "refund.created", "charge.refunded"]
    # Indexes pick and order; an event left out is never delivered (as if it were lost).
    assert outcomes(sim.flush([2, 0])) == ["processed", "processed"]
    assert lz.entitlements("user_1")[0].status == "refunded"
    assert sim.held == []

    other = lz.create_checkout_session("user_2", "WEEK_PASS", idempotency_key="k2")
    sim.complete_checkout(other)  # still holding: queued
    sim.dispute("user_2")
    assert not lz.check_access("user_2")
    assert sorted(outcomes(sim.flush("shuffle", duplicate=True, seed=3))) == [
        "duplicate", "duplicate", "processed", "processed"]
    assert lz.entitlements("user_2")[0].status == "disputed"
    with pytest.raises(ValueError, match="order must be"):
        sim.flush("sideways")
    sim.resume_deliveries()
    sim.close_dispute("user_2")  # delivered at once again
    assert lz.check_access("user_2")


def test_a_custom_transport_receives_the_signed_body(lz: Licenzy,
                                                     sim: StripeSimulator) -> None:
    seen: list[tuple[bytes, str]] = []

    class Response:
        status_code = 200

    def transport(payload: bytes, header: str) -> Response:
        seen.append((payload, header))
        lz.handle_webhook(payload, header)
        return Response()

    sim.deliver_with(transport)
    session = lz.create_checkout_session("user_1", "WEEK_PASS", idempotency_key="k1")
    sim.complete_checkout(session)
    assert len(seen) == 1 and json.loads(seen[0][0])["type"] == "checkout.session.completed"
    assert lz.check_access("user_1")

    class Failing:
        status_code = 500

    sim.deliver_with(lambda payload, header: Failing())
    with pytest.raises(DeliveryFailed) as caught:
        sim.refund("user_1")
    assert caught.value.status == 500
    sim.deliver_with(None)  # back to handle_webhook
    assert isinstance(sim.deliver(caught.value.event)[0], WebhookResult)


def test_async_payment_and_expiry(lz: Licenzy, sim: StripeSimulator) -> None:
    pack = lz.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    sim.complete_checkout(pack, async_payment=True)
    assert lz.entitlements("user_1")[0].availability_reason == "payment_pending"
    sim.settle_async_payment(pack)
    assert lz.check_access("user_1")
    with pytest.raises(ValueError, match="no payment waiting"):
        sim.settle_async_payment(pack)

    abandoned = lz.create_checkout_session("user_2", "WEEK_PASS", idempotency_key="k2")
    sim.expire_checkout(abandoned)
    again = lz.create_checkout_session("user_2", "WEEK_PASS", idempotency_key="k2")
    assert again.status == "failed"
    with pytest.raises(ValueError, match="not open"):
        sim.complete_checkout(abandoned)


def test_subscription_helpers(lz: Licenzy, sim: StripeSimulator, clock: FrozenClock) -> None:
    session = lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    sim.complete_checkout(session)
    lz.consume_usage("user_1", 300, idempotency_key="u1")
    clock.advance(timedelta(days=30))
    sim.renew("user_1", "PRO_MONTHLY")
    assert lz.entitlements("user_1")[0].usage_remaining == 1000

    sim.fail_payment("user_1")
    sim.retry_payment("user_1", succeeded=False)
    assert sim.subscription("user_1")["status"] == "past_due"
    sim.retry_payment("user_1")
    assert lz.entitlements("user_1")[0].status == "active"

    sim.pause("user_1")
    assert not lz.check_access("user_1")
    sim.resume("user_1")
    assert lz.check_access("user_1")

    sim.dispute("user_1")
    assert not lz.check_access("user_1")
    with pytest.raises(ValueError, match="already disputed"):
        sim.dispute("user_1")
    sim.close_dispute("user_1", won=True)
    assert lz.check_access("user_1")

    sim.cancel("user_1")
    assert not lz.check_access("user_1")
    with pytest.raises(ValueError, match="no live subscription"):
        sim.renew("user_1")


@pytest.mark.parametrize("call, message", [
    (lambda s: s.renew("nobody"), "no live subscription"),
    (lambda s: s.refund("nobody"), "no payment"),
    (lambda s: s.close_dispute("nobody"), "no disputed payment"),
    (lambda s: s.complete_checkout("cs_unknown"), "no checkout session"),
])
def test_helpers_say_what_is_missing(sim: StripeSimulator, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(sim)


def test_sign_payload_matches_the_sdk_scheme() -> None:
    header = sign_payload(b'{"a":1}', "whsec_x", timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert stripe.WebhookSignature.verify_header('{"a":1}', header, "whsec_x", tolerance=None)
    with pytest.raises(TypeError):
        sign_payload('{"a":1}', "whsec_x")  # type: ignore[arg-type]
