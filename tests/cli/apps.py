"""Apps the CLI tests point ``--app`` at, configured by environment variables the tests set
(``CliRunner.invoke(env=…)``), the way a real app reads its settings.

``make_lz`` is a factory (the CLI closes the store it built); ``lz`` is an instance the module
holds, on an in-memory store; the rest are the mistakes ``--app`` must explain.
"""

from __future__ import annotations

import os

import stripe
from licenzy_embed import InMemoryStore, Licenzy
from licenzy_embed.stores.base import Store
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import FrozenClock

from ..conftest import START, catalog

DATABASE_ENV = "LICENZY_CLI_TEST_DATABASE_URL"  # a SQLAlchemy URL, or "memory"
STRIPE_URL_ENV = "LICENZY_CLI_TEST_STRIPE_URL"  # the Stripe stand-in; unset: the simulator
STRIPE_KEY_ENV = "LICENZY_CLI_TEST_STRIPE_KEY"
WEBHOOK_SECRET_ENV = "LICENZY_CLI_TEST_WEBHOOK_SECRET"


def build(database: str, *, stripe_url: str | None = None, api_key: str | None = None,
          webhook_secret: str | None = None) -> Licenzy:
    store: Store = InMemoryStore() if database == "memory" else SQLAlchemyStore(database)
    client = None
    if stripe_url is not None:
        api_key = api_key or "sk_test_local"
        client = stripe.StripeClient(api_key, base_addresses={"api": stripe_url},
                                     max_network_retries=0)
    return Licenzy(store=store, products=catalog(), clock=FrozenClock(START),
                   stripe_api_key=api_key, stripe_client=client,
                   stripe_webhook_secret=webhook_secret)


def make_lz() -> Licenzy:
    return build(os.environ[DATABASE_ENV], stripe_url=os.environ.get(STRIPE_URL_ENV),
                 api_key=os.environ.get(STRIPE_KEY_ENV),
                 webhook_secret=os.environ.get(WEBHOOK_SECRET_ENV))


lz = build("memory")
answer = 42


def not_a_licenzy() -> int:
    return 42


def unconfigured() -> Licenzy:
    return build(os.environ["LICENZY_CLI_TEST_UNSET"])
