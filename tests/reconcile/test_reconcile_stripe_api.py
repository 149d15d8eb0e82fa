"""``reconcile`` through the official SDK against a local server standing in for Stripe's
API (``tests/_stripe_standin.py``), on every store. The shop buys through the simulator; the
operations instance has a test key whose ``StripeClient`` points at the stand-in, which
answers from what the simulator made — so what was lost is still in "Stripe"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

import stripe
from licenzy_embed import Licenzy
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock, StripeSimulator
from licenzy_embed.webhooks import HANDLED_EVENTS

from .._stripe_standin import SimulatedStripe, serving
from ..conftest import catalog
from .test_reconcile_simulator import BROKEN, HEALED, access, lose_three

SECRET = "whsec_reconcile_standin"


@pytest.fixture
def shop(store: Store, clock: FrozenClock) -> Licenzy:
    return Licenzy(store=store, products=catalog(), clock=clock, stripe_webhook_secret=SECRET)


@pytest.fixture
def api(shop: Licenzy) -> Iterator[SimulatedStripe]:
    with serving(SimulatedStripe(StripeSimulator.for_licenzy(shop))) as standin:
        yield standin


@pytest.fixture
def ops(store: Store, clock: FrozenClock, api: SimulatedStripe) -> Licenzy:
    client = stripe.StripeClient("sk_test_reconcile", base_addresses={"api": api.url},
                                 max_network_retries=0)
    return Licenzy(store=store, products=catalog(), clock=clock, stripe_api_key="sk_test_x",
                   stripe_client=client, stripe_webhook_secret=SECRET)


def test_lost_webhooks_are_found_and_fixed_through_the_events_api(
        shop: Licenzy, ops: Licenzy, api: SimulatedStripe, clock: FrozenClock) -> None:
    sim, lost = lose_three(shop)
    assert access(ops) == BROKEN

    dry = ops.reconcile(dry_run=True)
    assert sorted(c.subject_ref for c in dry.changes) == ["new_user", "pack_user", "sub_user"]
    assert access(ops) == BROKEN  # the dry run wrote nothing

    report = ops.reconcile()
    assert access(ops) == HEALED
    assert [c.to_dict() for c in report.changes] == [c.to_dict() for c in dry.changes]
    assert report.events_applied == len(lost) and report.duplicates > 0

    listed = [r for r in api.requests if r.path == "/v1/events"]
    assert len(listed) >= 2 * 2  # paginated (pages of 3), for each of the two runs
    first = listed[0].form
    assert sorted(v for k, v in first.items() if k.startswith("types[")) == sorted(
        HANDLED_EVENTS)
    assert int(first["created[gte]"]) == clock.timestamp() - int(timedelta(days=30)
                                                                 .total_seconds())
    assert any(r.form.get("starting_after") for r in listed)  # the SDK paged on
    assert any(p.startswith("/v1/subscriptions/") for p in api.paths())
    assert any(p.startswith("/v1/payment_intents/") for p in api.paths())

    # The late webhook copies answer duplicate; a second reconcile changes nothing.
    assert {r.outcome for r in sim.deliver(lost)} == {"duplicate"}  # type: ignore[attr-defined]
    again = ops.reconcile()
    assert (again.changes, again.events_applied, again.claims_applied) == ([], 0, 0)


def test_events_stripe_no_longer_has_are_healed_from_current_state(
        shop: Licenzy, ops: Licenzy, api: SimulatedStripe) -> None:
    lose_three(shop)
    api.forget_events()
    report = ops.reconcile()
    assert report.events_seen == 0 and report.claims_applied == 2
    assert sorted(c.subject_ref for c in report.changes) == ["pack_user", "sub_user"]
    assert not ops.check_access("sub_user") and not ops.check_access("pack_user")


def test_an_unreachable_stripe_is_one_clear_error_and_changes_nothing(
        shop: Licenzy, ops: Licenzy, api: SimulatedStripe) -> None:
    from licenzy_embed.errors import PaymentProviderError

    lose_three(shop)
    api.fail_next = (500, {"error": {"type": "api_error", "message": "Stripe is down"}})
    with pytest.raises(PaymentProviderError, match="listing events"):
        ops.reconcile()
    assert access(ops) == BROKEN
