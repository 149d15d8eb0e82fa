"""customer.subscription.* and invoice.* events, in the current and the older payload shape."""

from __future__ import annotations

import copy

import pytest

from licenzy_embed import InsufficientUsage, Licenzy
from licenzy_embed.webhooks import WebhookResult

from . import payloads
from .conftest import DAY, Scenario

META = {"subject_ref": "user_1", "product_code": "PRO_MONTHLY"}
PRICE = "price_pro_monthly"


@pytest.fixture(params=payloads.SHAPES)
def shape(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Sub:
    """One Stripe subscription of user_1 to PRO_MONTHLY, whose events the test sends."""

    def __init__(self, stripe_events: Scenario, shape: str) -> None:
        self.s = stripe_events
        self.shape = shape
        self.id = payloads.new_id("sub")
        self.customer = payloads.new_id("cus")
        self.start = stripe_events.now

    def period(self, n: int) -> tuple[int, int]:
        return (self.start + n * 30 * DAY, self.start + (n + 1) * 30 * DAY)

    def snapshot(self, event_type: str, status: str, *, period: int = 0,
                 price: str = PRICE, created: int | None = None, plan_only: bool = False,
                 metadata: dict[str, str] | None = None) -> WebhookResult:
        return self.s.send(event_type, payloads.subscription(
            sub_id=self.id, status=status, price=price, shape=self.shape,
            customer=self.customer, metadata=META if metadata is None else metadata,
            period=self.period(period), plan_only=plan_only), created=created)

    def invoice(self, event_type: str, *, period: int = 0, paid: bool = True,
                reason: str = "subscription_cycle", created: int | None = None,
                payment_intent: str | None = None, amount: int = 2000,
                invoice_id: str | None = None) -> WebhookResult:
        return self.s.send(event_type, payloads.invoice(
            sub_id=self.id, price=PRICE, shape=self.shape, period=self.period(period),
            paid=paid, billing_reason=reason, customer=self.customer, sub_metadata=META,
            payment_intent=payment_intent, amount=amount, invoice_id=invoice_id),
            created=created)


@pytest.fixture
def sub(stripe_events: Scenario, shape: str) -> Sub:
    return Sub(stripe_events, shape)


def test_created_event_creates_an_active_subscription(lz: Licenzy, stripe_events: Scenario,
                                                      sub: Sub) -> None:
    result = sub.snapshot("customer.subscription.created", "active")

    assert result.outcome == "processed"
    ent = stripe_events.only("user_1")
    assert (ent.kind, ent.status, ent.available, ent.availability_reason) == (
        "subscription", "active", True, "subscription_active")
    assert ent.usage_remaining == 0  # units come with the period's paid invoice
    assert ent.expires_at is not None and ent.expires_at.timestamp() == sub.period(0)[1]
    [change] = stripe_events.changes_of("subscription.updated")
    assert change.data["status"] == "active"


def test_subject_from_the_customer_link_when_there_is_no_metadata(
        lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k")
    with lz.store.transaction(lz.mode) as tx:
        link = tx.get_customer("user_1")
    assert link is not None
    sub.customer = link.stripe_customer_id
    sub.snapshot("customer.subscription.created", "active", metadata={})
    assert stripe_events.only("user_1").status == "active"


def test_legacy_plan_id_matches_the_product(lz: Licenzy, stripe_events: Scenario,
                                            sub: Sub) -> None:
    sub.snapshot("customer.subscription.created", "active", plan_only=True,
                 metadata={"subject_ref": "user_1"})
    assert stripe_events.only("user_1").product_code == "PRO_MONTHLY"


def test_trialing_is_available(lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    sub.snapshot("customer.subscription.created", "trialing")
    ent = stripe_events.only("user_1")
    assert (ent.available, ent.availability_reason) == (True, "subscription_trialing")


def test_past_due_keeps_access_for_the_grace_from_the_unpaid_period(
        lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    sub.snapshot("customer.subscription.created", "active")
    stripe_events.advance(30)
    sub.snapshot("customer.subscription.updated", "past_due", period=1)

    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.availability_reason) == (
        "past_due", True, "past_due_grace")
    stripe_events.advance(2.9)
    assert lz.check_access("user_1")
    # A retry failing two days later does not restart the grace.
    sub.invoice("invoice.payment_failed", period=1, paid=False)
    stripe_events.advance(0.2)
    assert not lz.check_access("user_1")
    assert stripe_events.only("user_1").availability_reason == "subscription_past_due"


def test_deleted_cancels_for_good(lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    sub.snapshot("customer.subscription.created", "active")
    t = stripe_events.now
    sub.snapshot("customer.subscription.deleted", "canceled", created=t + 10)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.availability_reason) == (
        "canceled", False, "subscription_canceled")
    assert [c.data["status"] for c in stripe_events.changes_of("subscription.deleted")] == [
        "canceled"]
    # A later snapshot or paid invoice cannot bring a canceled subscription back.
    result = sub.snapshot("customer.subscription.updated", "active", created=t + 20)
    sub.invoice("invoice.paid", period=1, created=t + 30)
    assert result.note and "already ended" in result.note
    assert stripe_events.only("user_1").status == "canceled"


def test_paused_then_resumed(lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    t = stripe_events.now
    sub.snapshot("customer.subscription.created", "active", created=t)
    sub.snapshot("customer.subscription.paused", "paused", created=t + 1)
    assert (stripe_events.only("user_1").status, lz.check_access("user_1").allowed) == (
        "paused", False)
    sub.snapshot("customer.subscription.resumed", "active", created=t + 2)
    assert (stripe_events.only("user_1").status, lz.check_access("user_1").allowed) == (
        "active", True)


def test_plan_change_follows_the_new_price(lz: Licenzy, stripe_events: Scenario,
                                           sub: Sub) -> None:
    t = stripe_events.now
    sub.snapshot("customer.subscription.created", "active", created=t)
    sub.snapshot("customer.subscription.updated", "active", price="price_basic_monthly",
                 created=t + 1)
    ent = stripe_events.only("user_1")
    assert (ent.product_code, ent.usage_remaining) == ("BASIC_MONTHLY", None)
    # The older snapshot, delivered late, does not switch it back.
    sub.snapshot("customer.subscription.updated", "active", created=t)
    assert stripe_events.only("user_1").product_code == "BASIC_MONTHLY"


def test_an_older_snapshot_does_not_roll_the_status_back(lz: Licenzy,
                                                         stripe_events: Scenario,
                                                         sub: Sub) -> None:
    t = stripe_events.now
    sub.snapshot("customer.subscription.updated", "past_due", created=t + 100)
    late = sub.snapshot("customer.subscription.updated", "active", created=t + 50)

    assert late.outcome == "processed"
    assert late.note and "newer" in late.note
    assert stripe_events.only("user_1").status == "past_due"


def test_incomplete_loses_a_tie_on_created(lz: Licenzy, stripe_events: Scenario,
                                           sub: Sub) -> None:
    """Stripe sends subscription.created (incomplete) and updated (active) in the same
    second, in any order, with ids that say nothing of their order."""
    t = stripe_events.now
    sub.snapshot("customer.subscription.updated", "active", created=t)
    sub.snapshot("customer.subscription.created", "incomplete", created=t)
    assert stripe_events.only("user_1").status == "active"


def test_unknown_subject_is_acknowledged(lz: Licenzy, stripe_events: Scenario,
                                         sub: Sub) -> None:
    result = sub.snapshot("customer.subscription.created", "active", metadata={})
    assert result.outcome == "processed"
    assert result.note == "no subject matched the subscription"
    assert lz.store.get_processed_event(lz.mode, result.event_id) is not None


# ---------------------------------------------------------------------------- invoices
def test_invoice_paid_resets_units_once_per_period(lz: Licenzy, stripe_events: Scenario,
                                                   sub: Sub) -> None:
    sub.snapshot("customer.subscription.created", "active")
    sub.invoice("invoice.paid", period=0, reason="subscription_create")
    lz.consume_usage("user_1", 400, idempotency_key="u1")

    same_period = sub.invoice("invoice.payment_succeeded", period=0,
                              reason="subscription_create")
    assert same_period.outcome == "processed"
    assert stripe_events.only("user_1").usage_remaining == 600

    stripe_events.advance(30)
    sub.invoice("invoice.paid", period=1)
    ent = stripe_events.only("user_1")
    assert ent.usage_remaining == 1000  # reset, not rolled over (600 + 1000)
    assert ent.expires_at is not None and ent.expires_at.timestamp() == sub.period(1)[1]
    lz.consume_usage("user_1", 10, idempotency_key="u2")
    sub.invoice("invoice.paid", period=0)  # a late copy of an older period's payment
    assert stripe_events.only("user_1").usage_remaining == 990
    resets = [e for e in lz.ledger("user_1") if e.action == "units_reset"]
    assert [e.units_delta for e in resets] == [1000, 400]
    assert {e.source for e in resets} == {"stripe"}


def test_invoice_paid_and_payment_succeeded_announce_one_payment(
        lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    invoice_id = payloads.new_id("in")
    sub.invoice("invoice.paid", period=0, invoice_id=invoice_id)
    sub.invoice("invoice.payment_succeeded", period=0, invoice_id=invoice_id)
    announced = stripe_events.changes_of("invoice.payment_succeeded")
    assert [c.data["invoice_id"] for c in announced] == [invoice_id]
    assert announced[0].data["subject_ref"] == "user_1"


def test_invoice_paid_recovers_a_past_due_subscription(lz: Licenzy, stripe_events: Scenario,
                                                       sub: Sub) -> None:
    t = stripe_events.now
    sub.invoice("invoice.payment_failed", period=1, paid=False, created=t)
    assert stripe_events.only("user_1").status == "past_due"
    assert [c.type for c in stripe_events.changes if c.type.startswith("invoice")] == [
        "invoice.payment_failed"]
    sub.invoice("invoice.paid", period=1, created=t + 3600)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("active", True)


def test_failed_first_invoice_leaves_it_incomplete(lz: Licenzy, stripe_events: Scenario,
                                                   sub: Sub) -> None:
    sub.invoice("invoice.payment_failed", paid=False, reason="subscription_create")
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available) == ("incomplete", False)


def test_trial_start_invoice_does_not_turn_trialing_into_active(
        lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    t = stripe_events.now
    sub.snapshot("customer.subscription.created", "trialing", created=t)
    sub.invoice("invoice.paid", reason="subscription_create", amount=0, created=t + 1)
    assert stripe_events.only("user_1").status == "trialing"


def test_invoice_without_subscription_is_not_ours(lz: Licenzy, stripe_events: Scenario,
                                                  shape: str) -> None:
    result = stripe_events.send("invoice.paid", payloads.invoice(
        sub_id=None, price=PRICE, shape=shape, period=(0, 0)))
    assert (result.outcome, result.note) == ("processed", "not a subscription invoice")
    assert stripe_events.changes == []


# -- units are granted only by the paid invoice of a period
def test_the_first_period_grants_its_units_once_whatever_comes_first(
        lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    """checkout.session.completed creates the subscription before its invoice is paid: it
    must not grant the period's units on top of the paid invoice's."""
    session = lz.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=session.session_id, mode="subscription", subscription=sub.id,
        customer=sub.customer, metadata=META))
    with pytest.raises(InsufficientUsage):
        lz.consume_usage("user_1", 900, idempotency_key="u1")
    sub.snapshot("customer.subscription.created", "active")
    sub.invoice("invoice.paid", reason="subscription_create")
    lz.consume_usage("user_1", 900, idempotency_key="u2")
    sub.invoice("invoice.payment_succeeded", reason="subscription_create")

    assert stripe_events.only("user_1").usage_remaining == 100
    granted = [e.units_delta or 0 for e in lz.ledger("user_1") if (e.units_delta or 0) > 0]
    assert sum(granted) == 1000  # one period, one grant


def test_the_trial_invoice_grants_the_first_period(lz: Licenzy, stripe_events: Scenario,
                                                   sub: Sub) -> None:
    sub.snapshot("customer.subscription.created", "trialing")
    assert stripe_events.only("user_1").usage_remaining == 0
    sub.invoice("invoice.paid", reason="subscription_create", amount=0)
    ent = stripe_events.only("user_1")
    assert (ent.status, ent.usage_remaining) == ("trialing", 1000)


# -- proration invoices (a plan or quantity change mid-period) are not a new period
def test_a_proration_invoice_does_not_reset_the_units(lz: Licenzy, stripe_events: Scenario,
                                                      sub: Sub) -> None:
    sub.snapshot("customer.subscription.created", "active")
    sub.invoice("invoice.paid", reason="subscription_create")
    lz.consume_usage("user_1", 1000, idempotency_key="u1")
    stripe_events.advance(10)
    now, end = stripe_events.now, sub.period(0)[1]
    stripe_events.send("invoice.paid", payloads.invoice(
        sub_id=sub.id, price=PRICE, shape=sub.shape, period=(now, end), proration=True,
        billing_reason="subscription_update", customer=sub.customer, sub_metadata=META))

    ent = stripe_events.only("user_1")
    assert (ent.status, ent.usage_remaining) == ("active", 0)
    assert ent.expires_at is not None and ent.expires_at.timestamp() == end
    assert [e.action for e in lz.ledger("user_1")].count("units_reset") == 1


def test_an_invoice_with_prorations_and_a_new_period_grants_that_period(
        lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    """A change that resets the billing cycle bills prorations and the new period together:
    the period comes from the line that is not a proration, whatever the lines' order."""
    sub.snapshot("customer.subscription.created", "active")
    sub.invoice("invoice.paid", reason="subscription_create")
    lz.consume_usage("user_1", 1000, idempotency_key="u1")
    stripe_events.advance(10)
    now = stripe_events.now
    invoice = payloads.invoice(
        sub_id=sub.id, price=PRICE, shape=sub.shape, period=(now, sub.period(0)[1]),
        proration=True, billing_reason="subscription_update", customer=sub.customer,
        sub_metadata=META)
    new_period = copy.deepcopy(invoice["lines"]["data"][0])
    new_period["period"] = {"start": now, "end": now + 30 * DAY}
    if sub.shape == "current":
        new_period["parent"]["subscription_item_details"]["proration"] = False
    else:
        new_period["proration"] = False
    invoice["lines"]["data"].append(new_period)
    stripe_events.send("invoice.paid", invoice)

    ent = stripe_events.only("user_1")
    assert ent.usage_remaining == 1000
    assert ent.expires_at is not None and ent.expires_at.timestamp() == now + 30 * DAY


# -- past_due grace runs from when the subscription went past due
def test_grace_runs_from_when_the_subscription_went_past_due(
        lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    """A send_invoice subscription goes past due when its invoice is overdue, weeks into the
    period: the grace starts then, not at the period start."""
    sub.snapshot("customer.subscription.created", "active")
    stripe_events.advance(15)
    sub.snapshot("customer.subscription.updated", "past_due")

    ent = stripe_events.only("user_1")
    assert (ent.status, ent.available, ent.availability_reason) == (
        "past_due", True, "past_due_grace")
    stripe_events.advance(2.9)
    assert lz.check_access("user_1")
    stripe_events.advance(0.2)
    assert not lz.check_access("user_1")


@pytest.mark.parametrize("order", ["in_order", "reversed"])
def test_grace_starts_at_the_earliest_past_due_claim_of_the_period(
        lz: Licenzy, stripe_events: Scenario, sub: Sub, order: str) -> None:
    t0 = stripe_events.now
    sub.snapshot("customer.subscription.created", "active", created=t0)
    claims = [t0 + 15 * DAY, t0 + 16 * DAY]  # went past due, then another update
    for created in (claims if order == "in_order" else claims[::-1]):
        sub.snapshot("customer.subscription.updated", "past_due", created=created)
    [record] = stripe_events.records("user_1")
    assert record.grace_until is not None
    assert record.grace_until.timestamp() == t0 + 18 * DAY

    # The next period's failure has a grace of its own.
    stripe_events.advance(30)
    sub.snapshot("customer.subscription.updated", "active", period=1,
                 created=t0 + 30 * DAY)
    sub.snapshot("customer.subscription.updated", "past_due", period=1,
                 created=t0 + 31 * DAY)
    [record] = stripe_events.records("user_1")
    assert record.grace_until is not None
    assert record.grace_until.timestamp() == t0 + 34 * DAY


# -- a checkout session does not know about a trial
@pytest.mark.parametrize("order", ["subscription_first", "checkout_first"])
def test_a_trial_reads_trialing_whatever_the_checkout_event_says(
        lz: Licenzy, stripe_events: Scenario, sub: Sub, order: str) -> None:
    t = stripe_events.now
    session = payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="subscription", subscription=sub.id,
        payment_status="no_payment_required", customer=sub.customer, metadata=META)
    if order == "checkout_first":
        stripe_events.send("checkout.session.completed", session, created=t + 1)
        assert stripe_events.only("user_1").status == "trialing"
    sub.snapshot("customer.subscription.created", "trialing", created=t)
    if order == "subscription_first":
        stripe_events.send("checkout.session.completed", session, created=t + 1)

    ent = stripe_events.only("user_1")
    assert (ent.status, ent.availability_reason) == ("trialing", "subscription_trialing")


def test_a_paid_checkout_does_not_override_what_a_subscription_event_said(
        lz: Licenzy, stripe_events: Scenario, sub: Sub) -> None:
    t = stripe_events.now
    sub.snapshot("customer.subscription.created", "past_due", created=t)
    stripe_events.send("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="subscription", subscription=sub.id,
        customer=sub.customer, metadata=META), created=t + 1)
    assert stripe_events.only("user_1").status == "past_due"
