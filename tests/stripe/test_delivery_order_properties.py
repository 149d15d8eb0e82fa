"""Property: Stripe's delivery order and duplicates do not matter.

Hypothesis generates purchase lifecycles (a subscription and a credit pack bought, renewed,
failed, recovered, changed mid-period (a paid proration invoice), paused, canceled, refunded,
disputed, with time passing in between). Subscription payments are named the way current API
versions name them: only by the ``invoice_payment.paid`` that follows each ``invoice.paid``. The
simulator produces the signed events of each lifecycle; they are then delivered to two fresh
Licenzy instances — once each in the order they happened, and shuffled with every event sent
twice — and both must end with identical entitlement records (every column: status, units,
period, grace, dates, Stripe references, derived access).

Every generated lifecycle's final state is defined by its events (the newest claim per part of
the state, see ``licenzy_embed.webhooks``), so no lifecycle is excluded. A last test runs one
such comparison on every store of the suite.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from licenzy_embed import InMemoryStore, Licenzy
from licenzy_embed.clock import aware
from licenzy_embed.entitlement import EntitlementRecord
from licenzy_embed.testing import FrozenClock, StripeSimulator, sign_payload

from ..conftest import catalog

SECRET = "whsec_property"
START = datetime(2026, 3, 1, tzinfo=timezone.utc)
SUBJECT = "user_1"

SUB_OPS = ["renew", "fail", "retry", "change", "cancel", "pause", "resume", "refund",
           "dispute", "close_won", "close_lost", "advance"]
PACK_OPS = ["refund", "partial_refund", "dispute", "close_won", "close_lost", "advance"]


class World:
    """The source of events: a Licenzy whose simulator holds every event it produces."""

    def __init__(self) -> None:
        self.clock = FrozenClock(START)
        self.lz = Licenzy(store=InMemoryStore(), products=catalog(), clock=self.clock,
                          stripe_webhook_secret=SECRET)
        self.sim = StripeSimulator.for_licenzy(self.lz)
        self.sim.hold_deliveries()
        self.sub_status = "none"
        self.open_dispute: dict[str, bool] = {"PRO_MONTHLY": False, "CREDITS_1K": False}
        self.disputed: dict[str, bool] = {"PRO_MONTHLY": False, "CREDITS_1K": False}
        self.refundable: dict[str, int] = {"PRO_MONTHLY": 0, "CREDITS_1K": 0}  # cents

    def buy(self, product: str, *, async_payment: bool, settles: bool | None) -> None:
        session = self.lz.create_checkout_session(SUBJECT, product, idempotency_key=product)
        self.sim.complete_checkout(session, async_payment=async_payment)
        if async_payment and settles is not None:
            self.sim.settle_async_payment(session, succeeded=settles)
        paid = not async_payment or bool(settles)
        self.refundable[product] = 1000 if paid else 0
        if product == "PRO_MONTHLY":
            self.sub_status = "active"

    def new_payment(self, product: str) -> None:
        self.refundable[product], self.disputed[product] = 1000, False

    def apply(self, product: str, op: str, days: int) -> None:
        """Run ``op`` if the lifecycle allows it at this point, else do nothing."""
        sim, sub = self.sim, self.sub_status
        live_sub = product == "PRO_MONTHLY" and sub not in ("none", "canceled")
        if op == "advance":
            self.clock.advance(timedelta(days=days, hours=days))
        elif op == "renew" and live_sub and sub != "paused":
            sim.renew(SUBJECT, product)
            self.sub_status = "active"
            self.new_payment(product)
        elif op == "fail" and live_sub and sub in ("active", "past_due"):
            sim.fail_payment(SUBJECT, product)
            self.sub_status = "past_due"
        elif op == "retry" and live_sub and sub == "past_due":
            sim.retry_payment(SUBJECT, product)
            self.sub_status = "active"
            self.new_payment(product)
        elif op == "change" and live_sub and sub == "active":
            sim.change_quantity(SUBJECT, 1 + days % 3, product)  # a paid proration invoice
            self.new_payment(product)
        elif op == "cancel" and live_sub:
            sim.cancel(SUBJECT, product)
            self.sub_status = "canceled"
        elif op == "pause" and live_sub and sub == "active":
            sim.pause(SUBJECT, product)
            self.sub_status = "paused"
        elif op == "resume" and live_sub and sub == "paused":
            sim.resume(SUBJECT, product)
            self.sub_status = "active"
        elif op in ("refund", "partial_refund") and self.refundable[product]:
            amount = min(300, self.refundable[product]) if op == "partial_refund" else None
            sim.refund(SUBJECT, product, amount=amount)
            self.refundable[product] -= amount or self.refundable[product]
        elif op == "dispute" and self.refundable[product] and not self.disputed[product]:
            sim.dispute(SUBJECT, product)
            self.disputed[product] = self.open_dispute[product] = True
        elif op in ("close_won", "close_lost") and self.open_dispute[product]:
            sim.close_dispute(SUBJECT, product, won=op == "close_won")
            self.open_dispute[product] = False


def deliver(events: list[dict[str, Any]], now: datetime) -> list[EntitlementRecord]:
    lz = Licenzy(store=InMemoryStore(), products=catalog(), clock=FrozenClock(now),
                 stripe_webhook_secret=SECRET)
    for event in events:
        payload = json.dumps(event).encode()
        lz.handle_webhook(payload, sign_payload(payload, SECRET))
    return sorted(lz.store.list_entitlements(lz.mode, SUBJECT), key=lambda r: r.id)


# Weighted: cancel ends a subscription for good, so it is drawn less often.
OPS = ["renew"] * 3 + ["fail"] * 3 + ["retry"] * 2 + ["advance"] * 3 + ["dispute"] * 2 + [
    "refund", "partial_refund", "close_won", "close_lost", "pause", "resume", "cancel",
    "change"]
step = st.tuples(st.sampled_from(["PRO_MONTHLY", "PRO_MONTHLY", "CREDITS_1K"]),
                 st.sampled_from(OPS), st.integers(min_value=0, max_value=40))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    buy_sub=st.sampled_from([True, True, True, False]),
    pack=st.sampled_from(["none", "paid", "paid", "async_ok", "async_failed",
                          "async_pending"]),
    steps=st.lists(step, min_size=1, max_size=16),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_shuffled_duplicated_delivery_ends_like_in_order_delivery(
        buy_sub: bool, pack: str, steps: list[tuple[str, str, int]], seed: int) -> None:
    world = World()
    if buy_sub:
        world.buy("PRO_MONTHLY", async_payment=False, settles=None)
    if pack != "none":
        settles = {"paid": None, "async_ok": True, "async_failed": False,
                   "async_pending": None}[pack]
        world.buy("CREDITS_1K", async_payment=pack != "paid", settles=settles)
    for product, op, days in steps:
        if (product == "PRO_MONTHLY" and not buy_sub) or (product == "CREDITS_1K" and (
            pack == "none" or op not in PACK_OPS
        )):
            continue
        world.apply(product, op, days)

    events = list(world.sim.held)
    note_event(f"{len(events) // 5 * 5}+ events")
    if world.sub_status in ("past_due", "canceled", "paused"):
        note_event(f"subscription ends {world.sub_status}")
    now = world.clock()
    in_order = deliver(events, now)
    shuffled = events * 2
    random.Random(seed).shuffle(shuffled)

    assert deliver(shuffled, now) == in_order
    assert len(in_order) == int(buy_sub) + int(pack != "none")


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.sampled_from(["renew", "fail", "retry", "change", "refund",
                                       "advance"]), max_size=10))
def test_reverse_order_delivery_ends_like_in_order_delivery(steps: list[str]) -> None:
    world = World()
    world.buy("PRO_MONTHLY", async_payment=False, settles=None)
    for op in steps:
        world.apply("PRO_MONTHLY", op, 10)
    events = list(world.sim.held)
    now = world.clock()
    assert deliver(list(reversed(events)), now) == deliver(events, now)


def test_the_in_order_state_is_the_one_the_lifecycle_describes() -> None:
    """The reference the properties compare against is itself right: a known lifecycle
    delivered in order ends where the story says."""
    world = World()
    world.buy("PRO_MONTHLY", async_payment=False, settles=None)
    world.buy("CREDITS_1K", async_payment=False, settles=None)
    for product, op in [("PRO_MONTHLY", "advance"), ("PRO_MONTHLY", "renew"),
                        ("PRO_MONTHLY", "fail"), ("CREDITS_1K", "dispute"),
                        ("CREDITS_1K", "close_won"), ("CREDITS_1K", "refund")]:
        world.apply(product, op, 30)
    events = list(world.sim.held)
    assert "invoice_payment.paid" in {e["type"] for e in events}
    [sub, pack] = sorted(deliver(events, world.clock()), key=lambda r: r.kind)
    assert sub.kind == "subscription" and pack.kind == "usage_pack"
    assert (sub.status, sub.usage_remaining, sub.access_open) == ("past_due", 1000, True)
    assert sub.grace_until == world.clock() + timedelta(days=3)
    assert (pack.status, pack.usage_remaining, pack.access_open) == ("refunded", 0, False)


def test_a_lifecycle_with_a_change_and_a_refunded_subscription_payment() -> None:
    """In order: a mid-period change does not reset the units; refunding its proration
    payment (the current one, named only by invoice_payment.paid) takes the access away;
    the next period's payment gives it back with fresh units."""
    world = World()
    world.buy("PRO_MONTHLY", async_payment=False, settles=None)
    world.apply("PRO_MONTHLY", "advance", 5)
    world.apply("PRO_MONTHLY", "change", 1)
    world.apply("PRO_MONTHLY", "refund", 0)
    [sub] = deliver(list(world.sim.held), world.clock())
    assert (sub.status, sub.quantity, sub.prior_status) == ("past_due", 2, "active")
    assert sub.grace_until == world.clock()  # no grace after a refund
    assert sub.units_granted == 1000
    world.apply("PRO_MONTHLY", "advance", 30)
    world.apply("PRO_MONTHLY", "renew", 0)
    [sub] = deliver(list(world.sim.held), world.clock())
    assert (sub.status, sub.access_open, sub.usage_remaining) == ("active", True, 1000)


def test_a_shuffled_lifecycle_on_every_store(lz: Licenzy) -> None:
    world = World()
    world.buy("PRO_MONTHLY", async_payment=False, settles=None)
    world.buy("CREDITS_1K", async_payment=False, settles=None)
    for product, op in [("PRO_MONTHLY", "advance"), ("PRO_MONTHLY", "change"),
                        ("PRO_MONTHLY", "renew"),
                        ("PRO_MONTHLY", "fail"), ("PRO_MONTHLY", "dispute"),
                        ("PRO_MONTHLY", "retry"), ("PRO_MONTHLY", "close_won"),
                        ("CREDITS_1K", "dispute"), ("CREDITS_1K", "close_lost"),
                        ("PRO_MONTHLY", "advance"), ("PRO_MONTHLY", "fail"),
                        ("PRO_MONTHLY", "cancel")]:
        world.apply(product, op, 12)
    events = list(world.sim.held)
    shuffled = events * 2
    random.Random(7).shuffle(shuffled)
    store_lz = Licenzy(store=lz.store, products=catalog(), clock=FrozenClock(world.clock()),
                       stripe_webhook_secret=SECRET)
    outcomes = []
    for event in shuffled:
        payload = json.dumps(event).encode()
        outcomes.append(store_lz.handle_webhook(payload, sign_payload(payload, SECRET)).outcome)

    assert outcomes.count("duplicate") == len(events)
    got = sorted(store_lz.store.list_entitlements(store_lz.mode, SUBJECT), key=lambda r: r.id)
    assert [_comparable(r) for r in got] == [
        _comparable(r) for r in deliver(events, world.clock())]
    assert [r.status for r in sorted(got, key=lambda r: r.kind)] == ["canceled", "disputed"]


def _comparable(record: EntitlementRecord) -> EntitlementRecord:
    """SQL stores may keep datetimes naive; compare them in UTC."""
    fields: dict[str, Any] = {name: aware(value) for name, value in vars(record).items()
                              if isinstance(value, datetime)}
    return dataclasses.replace(record, **fields)
