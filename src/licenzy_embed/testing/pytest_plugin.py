"""pytest plugin (entry point ``pytest11``): ready fixtures for an app's own tests.

Installed with the package, so an app's tests can ask for them without any conftest:

* ``licenzy_clock`` — a :class:`~licenzy_embed.testing.FrozenClock` (2026-01-01 UTC) that only
  moves when the test says so;
* ``licenzy_store`` — a fresh :class:`~licenzy_embed.InMemoryStore`;
* ``licenzy_products`` — the catalog; a demo one by default, which apps override with their own
  fixture of the same name;
* ``licenzy`` — a test-mode :class:`~licenzy_embed.Licenzy` built from the three above, with the
  Stripe simulator attached as its gateway;
* ``stripe_simulator`` — that simulator, to complete checkouts, renew, fail, cancel, refund and
  dispute with real signed events.

Fixture names are prefixed so they never shadow an app's own ``store`` or ``clock`` fixtures.

For the length of the test session the plugin also attaches the simulator to every key-less
``Licenzy`` as it is built (``licenzy_embed.licenzy.when_built_without_key``), so an app whose
tests build their own key-less instance can sell in them too; outside pytest a key-less
``Licenzy`` has no gateway until ``StripeSimulator.for_licenzy(lz)`` attaches one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from ..catalog import Product
from ..stores.memory import InMemoryStore
from .clock import FrozenClock

if TYPE_CHECKING:
    from ..licenzy import KeylessHook, Licenzy
    from .simulator import StripeSimulator

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
_replaced: list[KeylessHook | None] = []


def pytest_configure(config: pytest.Config) -> None:
    from ..licenzy import when_built_without_key
    from .simulator import StripeSimulator

    _replaced.append(when_built_without_key(StripeSimulator.for_licenzy))


def pytest_unconfigure(config: pytest.Config) -> None:
    from ..licenzy import when_built_without_key

    if _replaced:
        when_built_without_key(_replaced.pop())


def demo_products() -> list[Product]:
    """The catalog of the README examples; override ``licenzy_products`` with your own."""
    return [
        Product("PRO_MONTHLY", kind="subscription", price="price_pro_monthly", units=1000),
        Product("CREDITS_1K", kind="usage_pack", price="price_credits_1k", units=1000),
        Product("WEEK_PASS", kind="time_pass", price="price_week_pass",
                duration=timedelta(days=7)),
    ]


@pytest.fixture
def licenzy_clock() -> FrozenClock:
    """A FrozenClock at 2026-01-01 UTC that moves only with ``licenzy_clock.advance(days=…)``:
    grace periods and expiries are tested without sleeping."""
    return FrozenClock(DEFAULT_START)


@pytest.fixture
def licenzy_store() -> Iterator[InMemoryStore]:
    """A fresh InMemoryStore per test, closed afterwards."""
    store = InMemoryStore()
    yield store
    store.close()


@pytest.fixture
def licenzy_products() -> list[Product]:
    """The catalog ``licenzy`` sells: PRO_MONTHLY (subscription, price_pro_monthly, 1000
    units), CREDITS_1K (usage pack, price_credits_1k, 1000 units) and WEEK_PASS (time pass,
    price_week_pass, 7 days). Define your own ``licenzy_products`` fixture to use yours."""
    return demo_products()


@pytest.fixture
def licenzy(licenzy_store: InMemoryStore, licenzy_products: list[Product],
            licenzy_clock: FrozenClock) -> Licenzy:
    """A test-mode Licenzy (no Stripe key) on ``licenzy_store``, ``licenzy_products`` and
    ``licenzy_clock``; checkout goes to the Stripe simulator."""
    from ..licenzy import Licenzy
    from .simulator import StripeSimulator

    lz = Licenzy(
        store=licenzy_store,
        products=licenzy_products,
        clock=licenzy_clock,
        success_url="https://app.test/billing/success",
        cancel_url="https://app.test/billing/cancel",
    )
    StripeSimulator.for_licenzy(lz)
    return lz


@pytest.fixture
def stripe_simulator(licenzy: Licenzy) -> StripeSimulator:
    """The StripeSimulator ``licenzy`` checks out with: ``complete_checkout``, ``renew``,
    ``fail_payment``, ``cancel``, ``refund``… deliver real signed events to it."""
    from .simulator import StripeSimulator

    return StripeSimulator.for_licenzy(licenzy)
