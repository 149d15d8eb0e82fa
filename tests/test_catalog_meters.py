"""Features and meters in the catalog (SPEC §10): validated when the product is built, and
the catalog answers which products grant a name (what a denial offers to buy)."""

from __future__ import annotations

from typing import Any

import pytest

from licenzy_embed import InvalidRequest, Product
from licenzy_embed.catalog import Catalog

from .contract._meters import metered_catalog


def product(**fields: Any) -> Product:
    base: dict[str, Any] = {"kind": "subscription", "price": "price_x"}
    return Product("X", **(base | fields))


def test_units_is_the_shorthand_of_a_meter_named_units() -> None:
    assert product(units=10).meters == {"units": 10}
    assert product(meters={"units": 10}).units == 10
    assert product(units=10) == product(meters={"units": 10})
    both = product(units=5, meters={"api_calls": 10})
    assert both.meters == {"units": 5, "api_calls": 10} and both.metered
    assert not product(features=("reports",)).metered
    with pytest.raises(ValueError, match="not both"):
        product(units=5, meters={"units": 5})


@pytest.mark.parametrize(("fields", "message"), [
    ({"features": ("Reports",)}, "feature 'Reports' must match"),
    ({"features": ("",)}, "feature '' must match"),
    ({"features": ("a" * 65,)}, "must match"),
    ({"features": "reports"}, "features must be a tuple"),
    ({"features": ("reports", "reports")}, "listed twice"),
    ({"meters": {"API calls": 5}}, "meter 'API calls' must match"),
    ({"meters": {"api_calls": 0}}, "positive integer"),
    ({"meters": {"api_calls": 10**12 + 1}}, "positive integer"),
    ({"meters": {"api_calls": True}}, "positive integer"),
    ({"meters": {"api_calls": "5"}}, "positive integer"),
    ({"meters": [("api_calls", 5)]}, "must be a dict"),
    ({"kind": "usage_pack"}, "at least one meter"),
    ({"kind": "usage_pack", "meters": {}}, "at least one meter"),
    ({"kind": "time_pass", "meters": {"api_calls": 5}}, "no units or meters"),
])
def test_bad_features_and_meters_are_refused_at_construction(fields: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(ValueError, match=message):
        product(**fields)


def test_names_may_use_digits_dots_colons_and_dashes() -> None:
    ok = product(features=("ai:gpt-4.1", "0day"), meters={"tokens.in": 5, "x_y-z": 1})
    assert ok.features == ("ai:gpt-4.1", "0day")


def test_granting_lists_products_in_catalog_order() -> None:
    catalog = Catalog(metered_catalog())
    codes = lambda **kw: [p.code for p in catalog.granting(**kw)]  # noqa: E731
    assert codes(feature="reports") == ["TEAM_MONTHLY", "STARTER_MONTHLY", "DAY_PASS"]
    assert codes(feature="exports") == ["TEAM_MONTHLY", "BUNDLE_PACK"]  # a meter, as a feature
    assert codes(meter="api_calls") == ["TEAM_MONTHLY", "API_PACK", "BUNDLE_PACK",
                                        "API_PACK_7D"]
    assert codes() == [p.code for p in metered_catalog()]
    assert catalog.codes_listing("reports") == ("TEAM_MONTHLY", "STARTER_MONTHLY", "DAY_PASS")
    assert catalog.codes_listing("exports") == ()
    assert catalog.feature("sso") == "sso" and catalog.meter("exports") == "exports"
    for call in (lambda: catalog.feature("ssso"), lambda: catalog.meter("reports"),
                 lambda: catalog.feature(None), lambda: catalog.meter("EXPORTS")):
        with pytest.raises(InvalidRequest):
            call()
