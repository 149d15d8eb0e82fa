"""Webhooks and checkout under concurrency: copies of one event arriving together, different
events creating the same entitlement together, a refund racing spends, and concurrent
checkouts under one idempotency key. Threads start together behind a barrier; the assertions
are on outcomes, never on timing."""

from __future__ import annotations

import functools
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from licenzy_embed import InsufficientUsage, Licenzy
from licenzy_embed.testing import StripeSimulator, sign_payload

from . import payloads
from .conftest import Scenario

T = TypeVar("T")
THREADS = 8


def together(calls: Sequence[Callable[[], T]]) -> list[T | BaseException]:
    """Run the calls in parallel threads released at the same moment; return results or the
    exceptions raised, in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | BaseException:
        barrier.wait()
        try:
            return call()
        except BaseException as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def signed(lz: Licenzy, envelope: dict[str, Any]) -> tuple[bytes, str]:
    payload = json.dumps(envelope).encode()
    return payload, sign_payload(payload, lz.webhook_secrets[0])


def test_the_same_event_from_eight_threads_is_applied_once(lz: Licenzy,
                                                           stripe_events: Scenario) -> None:
    session = lz.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    envelope = payloads.event("checkout.session.completed", payloads.checkout_session(
        session_id=session.session_id, mode="payment", payment_intent=payloads.new_id("pi"),
        metadata={"subject_ref": "user_1", "product_code": "CREDITS_1K"}),
        created=stripe_events.now)
    payload, header = signed(lz, envelope)

    results = together([lambda: lz.handle_webhook(payload, header)] * THREADS)

    outcomes = Counter(getattr(r, "outcome", repr(r)) for r in results)
    assert outcomes == {"processed": 1, "duplicate": THREADS - 1}
    ent = stripe_events.only("user_1")
    assert ent.usage_remaining == 1000
    assert [e.units_delta for e in lz.ledger("user_1")] == [1000]
    assert len(stripe_events.changes_of("purchase.finalized")) == 1


def test_events_racing_to_create_one_subscription_make_one_entitlement(
        lz: Licenzy, stripe_events: Scenario) -> None:
    """checkout.session.completed, customer.subscription.created and invoice.paid arrive in
    the same instant, each able to create the entitlement; copies of each too."""
    sub_id, now = payloads.new_id("sub"), stripe_events.now
    meta = {"subject_ref": "user_1", "product_code": "PRO_MONTHLY"}
    envelopes = [
        payloads.event("checkout.session.completed", payloads.checkout_session(
            session_id=payloads.new_id("cs"), mode="subscription", subscription=sub_id,
            metadata=meta), created=now),
        payloads.event("customer.subscription.created", payloads.subscription(
            sub_id=sub_id, status="active", price="price_pro_monthly", shape="current",
            metadata=meta, period=(now, now + 30 * 86400)), created=now),
        payloads.event("invoice.paid", payloads.invoice(
            sub_id=sub_id, price="price_pro_monthly", shape="current",
            period=(now, now + 30 * 86400), sub_metadata=meta,
            billing_reason="subscription_create"), created=now),
    ]
    deliveries = [signed(lz, e) for e in envelopes]
    calls = [functools.partial(lz.handle_webhook, *d) for d in deliveries] * 2

    results = together(calls)

    outcomes = Counter(getattr(r, "outcome", repr(r)) for r in results)
    assert outcomes == {"processed": 3, "duplicate": 3}
    [record] = stripe_events.records("user_1")
    assert (record.status, record.usage_remaining, record.stripe_subscription_id) == (
        "active", 1000, sub_id)
    assert [e.action for e in lz.ledger("user_1")].count("granted") == 1


def test_a_refund_racing_spends_never_overdraws(lz: Licenzy, stripe_events: Scenario) -> None:
    pi = payloads.new_id("pi")
    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="payment", payment_intent=pi,
        metadata={"subject_ref": "user_1", "product_code": "CREDITS_100"}))
    refund = signed(lz, payloads.event("charge.refunded", payloads.charge(
        payment_intent=pi, shape="current", refunded_amount=2000), created=stripe_events.now))

    def spend(n: int) -> object:
        return lz.consume_usage("user_1", 10, idempotency_key=f"spend-{n}")

    calls: list[Callable[[], object]] = [functools.partial(spend, n)
                                         for n in range(THREADS - 1)]
    results = together([lambda: lz.handle_webhook(*refund), *calls])

    assert getattr(results[0], "outcome", None) == "processed"
    assert all(getattr(r, "ok", False) or isinstance(r, InsufficientUsage) for r in results[1:])
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.usage_remaining) == ("refunded", 0)
    # Every unit is accounted for: granted, spent, and what the refund took back.
    assert sum(e.units_delta or 0 for e in lz.ledger("user_1")) == 0


def test_concurrent_checkouts_under_one_key_make_one_attempt(lz: Licenzy) -> None:
    sim = StripeSimulator.for_licenzy(lz)
    results = together([
        lambda: lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    ] * THREADS)

    sessions = [r for r in results if not isinstance(r, BaseException)]
    assert len(sessions) == THREADS, results
    assert len({(s.attempt_id, s.session_id) for s in sessions}) == 1
    assert sum(not s.replayed for s in sessions) >= 1
    # Stripe (here the simulator) saw at most one customer and one session: racing requests
    # carried the same idempotency keys.
    assert len({key for kind, _, key in sim.requests if kind == "customers.create"}) == 1
    assert {key for kind, _, key in sim.requests if kind == "checkout.sessions.create"} == {
        "k1"}
    with lz.store.transaction(lz.mode) as tx:
        link = tx.get_customer("user_1")
    assert link is not None


ROUNDS = 20


def test_a_refund_racing_the_purchase_it_refunds_is_never_lost(lz: Licenzy,
                                                               stripe_events: Scenario) -> None:
    """A full refund delivered while the checkout completion creating its purchase is being
    applied: whichever commits first, the other must see it (on PostgreSQL and MariaDB at
    READ COMMITTED neither sees the other's uncommitted rows, so they serialise on the
    payment intent's lock row). Many rounds, so that some interleave."""
    for n in range(ROUNDS):
        subject, pi = f"user_{n}", payloads.new_id("pi")
        completed = signed(lz, payloads.event("checkout.session.completed",
                                              payloads.checkout_session(
            session_id=payloads.new_id("cs"), mode="payment", payment_intent=pi,
            metadata={"subject_ref": subject, "product_code": "CREDITS_100"}),
            created=stripe_events.now))
        refunded = signed(lz, payloads.event("charge.refunded", payloads.charge(
            payment_intent=pi, shape="current", refunded_amount=2000),
            created=stripe_events.now + 60))

        results = together([functools.partial(lz.handle_webhook, *completed),
                            functools.partial(lz.handle_webhook, *refunded)])

        assert [getattr(r, "outcome", r) for r in results] == ["processed", "processed"]
        ent = stripe_events.only(subject)
        assert (ent.status, ent.available, ent.usage_remaining) == ("refunded", False, 0), n


def test_an_invoice_its_payment_and_a_refund_arriving_together_link_up(
        lz: Licenzy, stripe_events: Scenario) -> None:
    """invoice.paid (naming no payment intent, as current API versions send it), its
    invoice_payment.paid and a full refund of that payment, at the same moment: the invoice
    and its payment serialise on the invoice's lock row, the refund on the payment intent's,
    so the subscription always ends refunded (past due, no access)."""
    for n in range(ROUNDS // 2):
        subject, sub_id, pi = f"user_{n}", payloads.new_id("sub"), payloads.new_id("pi")
        now = stripe_events.now
        meta = {"subject_ref": subject, "product_code": "PRO_MONTHLY"}
        invoice = payloads.invoice(sub_id=sub_id, price="price_pro_monthly", shape="current",
                                   period=(now, now + 30 * 86400), payment_intent=pi,
                                   sub_metadata=meta, billing_reason="subscription_create")
        deliveries = [
            signed(lz, payloads.event("invoice.paid", invoice, created=now)),
            signed(lz, payloads.event("invoice_payment.paid", payloads.invoice_payment(
                invoice_id=invoice["id"], payment_intent=pi, created=now), created=now)),
            signed(lz, payloads.event("charge.refunded", payloads.charge(
                payment_intent=pi, shape="current", refunded_amount=2000), created=now + 60)),
        ]

        results = together([functools.partial(lz.handle_webhook, *d) for d in deliveries])

        assert [getattr(r, "outcome", r) for r in results] == ["processed"] * 3
        ent = stripe_events.only(subject)
        assert (ent.status, ent.available) == ("past_due", False), n
