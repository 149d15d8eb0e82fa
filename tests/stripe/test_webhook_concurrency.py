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
    return payload, sign_payload(payload, lz._webhook_secrets[0])


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
