"""The whole flow in one script, with no network: checkout → signed Stripe webhooks → access →
metered usage → renewal → failed payment and grace → cancellation.

Run it with ``python example_apps/quickstart.py`` (``make demo`` serves the same flow as a web
app to click through). Without ``stripe_api_key`` the Stripe simulator stands in: it makes
real, signed Stripe event payloads and delivers them through ``Licenzy.handle_webhook`` exactly
as the webhook route of an app would. State lives in a SQLite file in a temporary folder (removed
when the script ends) when SQLAlchemy is installed, else in memory.

Each step's heading is printed before the step runs, so the events it causes appear under it.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone

from licenzy_embed import InMemoryStore, InsufficientUsage, Licenzy, Product
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock, StripeSimulator


def make_store(cleanup: ExitStack) -> tuple[Store, str]:
    try:
        from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
    except ImportError:
        return InMemoryStore(), "in memory"
    folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="licenzy-quickstart-"))
    path = os.path.join(folder, "licenzy.db")
    return SQLAlchemyStore(f"sqlite:///{path}", create_tables=True), f"SQLite file {path}"


def step(lz: Licenzy, title: str) -> None:
    """The heading of what happens next: the events it causes are printed under it."""
    print(f"\n== {title}  [{lz.now():%Y-%m-%d %H:%M}]")


def show(lz: Licenzy, subject: str) -> None:
    access = lz.customer_access(subject)
    print(f"   has_access={access.has_access} status={access.status}")
    for e in access.entitlements:
        print(f"   - {e.product_code:12} {e.kind:12} status={e.status:9} "
              f"available={e.available!s:5} reason={e.availability_reason:22} "
              f"usage_remaining={e.usage_remaining}")


def main() -> None:
    with ExitStack() as cleanup:
        run(cleanup)
    print("\ndemo finished")


def run(cleanup: ExitStack) -> None:
    store, where = make_store(cleanup)
    cleanup.callback(store.close)
    clock = FrozenClock(datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc))
    lz = Licenzy(
        store=store,
        products=[
            Product("PRO_MONTHLY", kind="subscription", price="price_pro_monthly", units=1000),
            Product("CREDITS_1K", kind="usage_pack", price="price_credits_1k", units=1000),
            Product("WEEK_PASS", kind="time_pass", price="price_week_pass",
                    duration=timedelta(days=7)),
        ],
        stripe_webhook_secret="whsec_demo_secret",
        success_url="https://app.example/billing/success",
        cancel_url="https://app.example/billing/cancel",
        clock=clock,
    )
    stripe = StripeSimulator.for_licenzy(lz)
    print(f"licenzy-embed quickstart — mode={lz.mode}, store: {where}")
    lz.on("*", lambda event: print(f"   event: {event.type}"))

    user = "user_1"
    step(lz, "before buying")
    show(lz, user)

    step(lz, "checkout created (grants nothing by itself)")
    session = lz.create_checkout_session(user, "PRO_MONTHLY", idempotency_key="order-1")
    print(f"   checkout: {session.to_dict()}")
    assert not lz.check_access(user), "checkout creation alone must never grant access"

    step(lz, "the customer pays: Stripe's signed webhooks arrive")
    events = stripe.complete_checkout(session)
    print(f"   signed webhooks delivered: {[event['type'] for event in events]}")
    show(lz, user)
    assert lz.check_access(user)

    step(lz, "spend 300 units, then retry the same request (same idempotency key)")
    print("  ", lz.consume_usage(user, 300, idempotency_key="req-1").to_dict())
    print("  ", lz.consume_usage(user, 300, idempotency_key="req-1").to_dict(), "(replayed)")
    try:
        lz.consume_usage(user, 5000, idempotency_key="req-2")
    except InsufficientUsage as exc:
        print(f"   5000 units refused: {exc.to_dict()}")

    step(lz, "hold 200 units for a job, then commit the 120 it used")
    hold = lz.reserve_usage(user, 200, idempotency_key="job-9")
    print(f"   held: {hold.to_dict()['status']}; committed 120:", hold.commit(120).to_dict())

    step(lz, "duplicate delivery of the same event changes nothing (no events follow)")
    replayed = stripe.deliver(stripe.deliveries[0].event)
    print(f"   outcome: {[getattr(r, 'outcome', r) for r in replayed]}")

    clock.advance(days=30)
    step(lz, "30 days later: renewal paid (units reset for the new period)")
    stripe.renew(user)
    show(lz, user)

    clock.advance(days=30)
    step(lz, "30 days later: the payment fails (past_due, within the grace period)")
    stripe.fail_payment(user)
    show(lz, user)
    assert lz.check_access(user)

    clock.advance(days=4)
    step(lz, "four days later: grace is over")
    show(lz, user)
    assert not lz.check_access(user)

    step(lz, "the subscription is canceled")
    stripe.cancel(user)
    show(lz, user)

    print("\nledger:")
    for entry in lz.ledger(user):
        print(f"   {entry.at:%Y-%m-%d} {entry.source:7} {entry.action:10} "
              f"delta={entry.units_delta!s:6} {entry.reason}")


if __name__ == "__main__":
    main()
