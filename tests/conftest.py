from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from licenzy_embed import Licenzy, Product
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock

from ._stores import FACTORIES, store_params

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def catalog() -> list[Product]:
    return [
        Product("PRO_MONTHLY", kind="subscription", price="price_pro_monthly", units=1000),
        Product("BASIC_MONTHLY", kind="subscription", price="price_basic_monthly"),
        Product("CREDITS_1K", kind="usage_pack", price="price_credits_1k", units=1000),
        Product("CREDITS_100", kind="usage_pack", price="price_credits_100", units=100),
        Product("CREDITS_30D", kind="usage_pack", price="price_credits_30d", units=500,
                duration=timedelta(days=30)),
        Product("WEEK_PASS", kind="time_pass", price="price_week_pass",
                duration=timedelta(days=7)),
        Product("LIFETIME", kind="time_pass", price="price_lifetime"),
    ]


@pytest.fixture(params=store_params())
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    with FACTORIES[request.param]() as s:  # type: ignore[attr-defined]
        yield s


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def lz(store: Store, clock: FrozenClock) -> Licenzy:
    return Licenzy(store=store, products=catalog(), clock=clock)
