"""Catalog and configuration validation: mistakes are a ValueError when Licenzy is built."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from licenzy_embed import InMemoryStore, InvalidRequest, Licenzy, Product, UnknownProduct
from licenzy_embed.catalog import Catalog

from .conftest import catalog


def build(products: list[Product], **kwargs: Any) -> Licenzy:
    return Licenzy(store=InMemoryStore(), products=products, **kwargs)


def test_the_test_catalog_is_valid() -> None:
    lz = build(catalog())
    assert len(lz.catalog) == 7
    assert lz.catalog.get("CREDITS_1K").units == 1000
    assert lz.catalog.by_price("price_week_pass") == lz.catalog.get("WEEK_PASS")
    assert lz.catalog.by_price("price_unknown") is None
    assert {p.code for p in lz.catalog} == {p.code for p in catalog()}


def test_duplicate_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate product code PRO"):
        build([Product("PRO", kind="subscription", price="price_a"),
               Product("PRO", kind="subscription", price="price_b")])


def test_duplicate_prices_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate price price_a"):
        build([Product("PRO", kind="subscription", price="price_a"),
               Product("PACK", kind="usage_pack", price="price_a", units=5)])


def test_an_empty_catalog_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one product"):
        build([])


def test_catalog_entries_must_be_products() -> None:
    with pytest.raises(ValueError, match="must be Product"):
        Catalog([{"code": "PRO"}])  # type: ignore[list-item]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "usage_pack"}, "a usage_pack needs units"),
    ({"kind": "usage_pack", "units": 0}, "units must be a positive integer"),
    ({"kind": "usage_pack", "units": -5}, "units must be a positive integer"),
    ({"kind": "usage_pack", "units": True}, "units must be a positive integer"),
    ({"kind": "usage_pack", "units": 2.5}, "units must be a positive integer"),
    ({"kind": "usage_pack", "units": 10**13}, "units must be a positive integer"),
    ({"kind": "subscription", "units": 0}, "units must be a positive integer"),
    ({"kind": "time_pass", "duration": timedelta(0)}, "duration must be a positive timedelta"),
    ({"kind": "time_pass", "duration": timedelta(days=-1)},
     "duration must be a positive timedelta"),
    ({"kind": "usage_pack", "units": 5, "duration": 30}, "duration must be a positive timedelta"),
    ({"kind": "time_pass", "units": 5}, "a time_pass has no units"),
    ({"kind": "subscription", "duration": timedelta(days=30)}, "period comes from Stripe"),
    ({"kind": "lifetime"}, "kind must be one of"),
    ({"kind": "usage_pack", "units": 5, "price": ""}, "price must be a Stripe Price id"),
    ({"kind": "usage_pack", "units": 5, "price": None}, "price must be a Stripe Price id"),
    ({"kind": "usage_pack", "units": 5, "price": "prod_123"}, r"not 'prod_123' \(that is a Pro"),
    ({"kind": "usage_pack", "units": 5, "price": "price_abc\n"}, r"not 'price_abc\\n'"),
    ({"kind": "usage_pack", "units": 5, "price": " price_abc"}, "price must be a Stripe Price"),
    ({"kind": "usage_pack", "units": 5, "price": "price_"}, "price must be a Stripe Price id"),
    ({"kind": "usage_pack", "units": 5, "price": "plan_basic"}, "like price_1MoBy5"),
    ({"kind": "usage_pack", "units": 5, "price": "pro-monthly"}, "like price_1MoBy5"),
])
def test_bad_products_are_refused(kwargs: dict[str, Any], message: str) -> None:
    fields = {"price": "price_x", **kwargs}
    with pytest.raises(ValueError, match=message):
        build([Product("PRODUCT", **fields)])


def test_price_ids_in_the_stripe_format_are_accepted() -> None:
    for price in ("price_1MoBy5LkdIwHu7ixZhnattbh", "price_pro_monthly", "price_X"):
        assert Product("PRO", kind="subscription", price=price).price == price


@pytest.mark.parametrize("code", ["pro", "A-B", "A" * 65, "", "PRO MONTHLY", None])
def test_bad_product_codes_are_refused_in_the_catalog(code: Any) -> None:
    with pytest.raises(ValueError, match=r"\[A-Z0-9_\]"):
        Product(code, kind="subscription", price="price_x")


def test_longest_product_code_is_fine() -> None:
    product = Product("A" * 64, kind="usage_pack", price="price_x", units=1)
    assert product.metered
    assert not Product("B", kind="time_pass", price="price_y").metered


def test_unknown_and_malformed_codes_at_runtime() -> None:
    lz = build(catalog())
    with pytest.raises(UnknownProduct):
        lz.catalog.get("NOPE")
    with pytest.raises(InvalidRequest):
        lz.catalog.get("nope")


@pytest.mark.parametrize(("key", "mode"), [
    (None, "test"),
    ("sk_test_51Habc", "test"),
    ("rk_test_51Habc", "test"),
    ("sk_live_51Habc", "live"),
    ("rk_live_51Habc", "live"),
])
def test_mode_comes_from_the_key(key: str | None, mode: str) -> None:
    assert build(catalog(), stripe_api_key=key).mode == mode


@pytest.mark.parametrize("key", ["pk_test_x", "pk_live_x", "whsec_x", "sk_x", "", "sk_test_",
                                 "SK_TEST_x", "test", 123, b"sk_test_x"])
def test_bad_keys_are_refused(key: Any) -> None:
    with pytest.raises(ValueError, match="stripe_api_key"):
        build(catalog(), stripe_api_key=key)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"store": object()}, "store must implement"),
    ({"past_due_grace": timedelta(days=-1)}, "past_due_grace"),
    ({"past_due_grace": 3}, "past_due_grace"),
    ({"hold_ttl": timedelta(0)}, "hold_ttl"),
    ({"webhook_tolerance": 0}, "webhook_tolerance"),
    ({"webhook_tolerance": True}, "webhook_tolerance"),
])
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"store": InMemoryStore(), "products": catalog(), **kwargs}
    with pytest.raises(ValueError, match=message):
        Licenzy(**arguments)


def test_settings_are_kept() -> None:
    lz = build(catalog(), past_due_grace=timedelta(days=7), hold_ttl=timedelta(minutes=1))
    assert (lz.past_due_grace, lz.hold_ttl) == (timedelta(days=7), timedelta(minutes=1))
