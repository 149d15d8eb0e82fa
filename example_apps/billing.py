"""The billing setup the example apps share: one ``Licenzy``, built from the environment.

    LICENZY_DATABASE_URL   where entitlements live (default: example_apps/licenzy-example.db,
                           a SQLite file every worker process of a server shares)
    STRIPE_API_KEY         sk_test_… / sk_live_…; unset → the local Stripe simulator
    STRIPE_WEBHOOK_SECRET  whsec_… from `stripe listen` or the dashboard
    PRICE_PRO_MONTHLY, PRICE_CREDITS_100, PRICE_WEEK_PASS   your Stripe price ids
    APP_BASE_URL           where the browser reaches the app (default http://127.0.0.1:$PORT,
                           PORT defaulting to 8000): Checkout sends the buyer back to
                           SUCCESS_PATH or CANCEL_PATH there

Without ``STRIPE_API_KEY`` an app calls :func:`start_local_checkout` when it starts: the
simulator's checkout URLs then open a local checkout page whose Pay and Decline buttons
post the signed events to the app's webhook route over HTTP, as Stripe would.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from licenzy_embed import Licenzy, Product
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import LocalCheckout

LOCAL_WEBHOOK_SECRET = "whsec_local_example"
# Every example app answers these two pages (next to the library's routes under /billing).
SUCCESS_PATH = "/billing/success"
CANCEL_PATH = "/billing/cancel"
DEFAULT_DATABASE_URL = f"sqlite:///{Path(__file__).resolve().parent / 'licenzy-example.db'}"


def products() -> list[Product]:
    env = os.environ.get
    return [
        # Few units a month, so that running out takes a handful of clicks in the examples.
        Product("PRO_MONTHLY", kind="subscription",
                price=env("PRICE_PRO_MONTHLY", "price_pro_monthly"), units=50),
        Product("CREDITS_100", kind="usage_pack",
                price=env("PRICE_CREDITS_100", "price_credits_100"), units=100),
        Product("WEEK_PASS", kind="time_pass",
                price=env("PRICE_WEEK_PASS", "price_week_pass"), duration=timedelta(days=7)),
    ]


def port() -> int:
    """The port the example apps listen on: ``PORT``, else 8000."""
    return int(os.environ.get("PORT", "8000"))


def base_url() -> str:
    return os.environ.get("APP_BASE_URL") or f"http://127.0.0.1:{port()}"


def build_licenzy() -> Licenzy:
    base = base_url()
    return Licenzy(
        store=SQLAlchemyStore(
            os.environ.get("LICENZY_DATABASE_URL", DEFAULT_DATABASE_URL),
            create_tables=True,  # applies the bundled migrations; a no-op once they ran
        ),
        products=products(),
        stripe_api_key=os.environ.get("STRIPE_API_KEY") or None,
        stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET),
        success_url=f"{base}{SUCCESS_PATH}",
        cancel_url=f"{base}{CANCEL_PATH}",
    )


lz = build_licenzy()
if not os.environ.get("STRIPE_API_KEY"):
    # Key-less: checkout goes to the local Stripe simulator, which attaches itself.
    from licenzy_embed.testing import StripeSimulator

    StripeSimulator.for_licenzy(lz)


def start_local_checkout(licenzy: Licenzy | None = None, *,
                         webhook_path: str = "/billing/webhooks/stripe") -> LocalCheckout | None:
    """Serve the local checkout page (on a free port, in a thread) for a key-less app; with
    ``STRIPE_API_KEY`` set, Stripe's own Checkout is used and this returns None.

    Called when the app starts (not at import), so that importing this module starts nothing:
    each server process gets its own page, next to the simulator that made its sessions."""
    if os.environ.get("STRIPE_API_KEY"):
        return None
    checkout = LocalCheckout(licenzy or lz, f"{base_url()}{webhook_path}")
    print(f"licenzy-embed: test mode, local checkout page at {checkout.start()}", flush=True)
    return checkout
