"""Apps the CLI tests point ``--app`` at, configured by environment variables the tests set
(``CliRunner.invoke(env=…)``), the way a real app reads its settings.

``make_lz`` is a factory (the CLI closes the store it built); ``lz`` is an instance the module
holds, on an in-memory store; the rest are the mistakes ``--app`` must explain.
"""

from __future__ import annotations

import os
from datetime import timedelta

import stripe
from licenzy_embed import ChangeEvent, InMemoryStore, Licenzy
from licenzy_embed.stores.base import Store
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import FrozenClock

from ..conftest import START, catalog
from ..contract._meters import metered_catalog

DATABASE_ENV = "LICENZY_CLI_TEST_DATABASE_URL"  # a SQLAlchemy URL, or "memory"
STRIPE_URL_ENV = "LICENZY_CLI_TEST_STRIPE_URL"  # the Stripe stand-in; unset: the simulator
STRIPE_KEY_ENV = "LICENZY_CLI_TEST_STRIPE_KEY"
WEBHOOK_SECRET_ENV = "LICENZY_CLI_TEST_WEBHOOK_SECRET"
# A file each change event's id is appended to by a callback the app registers; with
# CALLBACK_FAILS_ENV=1 that callback raises instead.
CALLBACK_FILE_ENV = "LICENZY_CLI_TEST_CALLBACK_FILE"
CALLBACK_FAILS_ENV = "LICENZY_CLI_TEST_CALLBACK_FAILS"
LATER_ENV = "LICENZY_CLI_TEST_SECONDS_LATER"  # the app's clock: START plus this many seconds
METERED_ENV = "LICENZY_CLI_TEST_METERED"  # "1": the catalog of features and meters


def build(database: str, *, stripe_url: str | None = None, api_key: str | None = None,
          webhook_secret: str | None = None, metered: bool = False) -> Licenzy:
    store: Store = InMemoryStore() if database == "memory" else SQLAlchemyStore(database)
    client = None
    if stripe_url is not None:
        api_key = api_key or "sk_test_local"
        client = stripe.StripeClient(api_key, base_addresses={"api": stripe_url},
                                     max_network_retries=0)
    return Licenzy(store=store, products=metered_catalog() if metered else catalog(),
                   clock=FrozenClock(START),
                   stripe_api_key=api_key, stripe_client=client,
                   stripe_webhook_secret=webhook_secret)


def make_lz() -> Licenzy:
    built = build(os.environ[DATABASE_ENV], stripe_url=os.environ.get(STRIPE_URL_ENV),
                  api_key=os.environ.get(STRIPE_KEY_ENV),
                  webhook_secret=os.environ.get(WEBHOOK_SECRET_ENV),
                  metered=os.environ.get(METERED_ENV) == "1")
    later = os.environ.get(LATER_ENV)
    if later:
        built.clock.advance(timedelta(seconds=int(later)))  # type: ignore[attr-defined]
    path = os.environ.get(CALLBACK_FILE_ENV)
    if path:
        fails = os.environ.get(CALLBACK_FAILS_ENV) == "1"

        def record(event: ChangeEvent) -> None:
            if fails:
                raise RuntimeError("the receiver is down")
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{event.id}\n")

        built.on("*", record)
    return built


lz = build("memory")
answer = 42


def not_a_licenzy() -> int:
    return 42


def unconfigured() -> Licenzy:
    return build(os.environ["LICENZY_CLI_TEST_UNSET"])
