"""A catalog with features and several meters (SPEC §10), shared by the tests of meters in
the contract suite, the Stripe tests and the adapters' tests."""

from __future__ import annotations

from datetime import timedelta

from licenzy_embed import Licenzy, Product
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock


def metered_catalog() -> list[Product]:
    return [
        Product("TEAM_MONTHLY", kind="subscription", price="price_team_monthly",
                features=("reports", "sso"), meters={"api_calls": 1000, "exports": 50}),
        Product("STARTER_MONTHLY", kind="subscription", price="price_starter_monthly",
                features=("reports",)),
        Product("API_PACK", kind="usage_pack", price="price_api_pack",
                meters={"api_calls": 500}),
        Product("BUNDLE_PACK", kind="usage_pack", price="price_bundle_pack",
                meters={"api_calls": 100, "exports": 10}),
        Product("API_PACK_7D", kind="usage_pack", price="price_api_pack_7d",
                meters={"api_calls": 20}, duration=timedelta(days=7)),
        Product("CREDITS_100", kind="usage_pack", price="price_credits_100", units=100),
        Product("DAY_PASS", kind="time_pass", price="price_day_pass", features=("reports",),
                duration=timedelta(days=1)),
    ]


def metered_licenzy(store: Store, clock: FrozenClock, **options: object) -> Licenzy:
    return Licenzy(store=store, products=metered_catalog(), clock=clock,
                   **options)  # type: ignore[arg-type]


def upgrade(*codes: str) -> list[dict[str, str]]:
    """The ``upgrade`` body naming these products (in the order given: catalog order)."""
    kinds = {p.code: p.kind for p in metered_catalog()}
    return [{"product_code": code, "kind": kinds[code]} for code in codes]


API_CALLS = ("TEAM_MONTHLY", "API_PACK", "BUNDLE_PACK", "API_PACK_7D")
EXPORTS = ("TEAM_MONTHLY", "BUNDLE_PACK")
REPORTS = ("TEAM_MONTHLY", "STARTER_MONTHLY", "DAY_PASS")


def meters_of(lz: Licenzy, subject_ref: str) -> dict[str, dict[str, int]]:
    """Entitlement id -> meter -> units left."""
    return {e.id: dict(e.meters) for e in lz.entitlements(subject_ref)}
