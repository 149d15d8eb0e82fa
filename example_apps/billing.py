"""The billing setup the example apps share: one ``Licenzy``, built from the environment.

    LICENZY_DATABASE_URL   where entitlements live (default: sqlite:///licenzy-example.db,
                           which every worker process of a server shares)
    STRIPE_API_KEY         sk_test_… / sk_live_…; unset → the local Stripe simulator
    STRIPE_WEBHOOK_SECRET  whsec_… from `stripe listen` or the dashboard
    PRICE_PRO_MONTHLY, PRICE_CREDITS_100, PRICE_WEEK_PASS   your Stripe price ids
"""

from __future__ import annotations

import os
from datetime import timedelta

from licenzy_embed import Licenzy, Product
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

LOCAL_WEBHOOK_SECRET = "whsec_local_example"


def products() -> list[Product]:
    env = os.environ.get
    return [
        Product("PRO_MONTHLY", kind="subscription",
                price=env("PRICE_PRO_MONTHLY", "price_pro_monthly"), units=1000),
        Product("CREDITS_100", kind="usage_pack",
                price=env("PRICE_CREDITS_100", "price_credits_100"), units=100),
        Product("WEEK_PASS", kind="time_pass",
                price=env("PRICE_WEEK_PASS", "price_week_pass"), duration=timedelta(days=7)),
    ]


def build_licenzy() -> Licenzy:
    base = os.environ.get("APP_BASE_URL", "http://127.0.0.1:8000")
    return Licenzy(
        store=SQLAlchemyStore(
            os.environ.get("LICENZY_DATABASE_URL", "sqlite:///licenzy-example.db"),
            create_tables=True,  # applies the bundled migrations; a no-op once they ran
        ),
        products=products(),
        stripe_api_key=os.environ.get("STRIPE_API_KEY") or None,
        stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET),
        success_url=f"{base}/billing/success",
        cancel_url=f"{base}/billing/cancel",
    )


lz = build_licenzy()
if not os.environ.get("STRIPE_API_KEY"):
    # Key-less: checkout goes to the local Stripe simulator, which attaches itself.
    from licenzy_embed.testing import StripeSimulator

    StripeSimulator.for_licenzy(lz)
