"""The product catalog: what can be bought, as what kind of entitlement, at which Stripe price.

Validated once when ``Licenzy`` is built so that a typo in a price id or a pack without units is
a start-up ``ValueError``, not a customer who paid and got nothing.

A product grants ``features`` (on/off while its entitlement is available) and ``meters`` (unit
balances per billing period or per pack). ``units=N`` is the shorthand for one meter named
``units``, the only meter there was before features and meters (SPEC §10).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from . import validation
from .errors import InvalidRequest, UnknownProduct

Kind = Literal["subscription", "usage_pack", "time_pass"]
KINDS: tuple[Kind, ...] = ("subscription", "usage_pack", "time_pass")
# Stripe's Price ids (price_1MoBy5LkdIwHu7ix…); webhooks name the price, so anything else here
# (a Product id, a lookup key, a stray newline) would match no event and grant nothing.
PRICE_ID = re.compile(r"price_[A-Za-z0-9_]{1,250}")
# Feature and meter names: lower case, so "Reports" and "reports" cannot both exist.
NAME = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
UNITS = "units"  # the meter ``units=N`` names


@dataclass(frozen=True)
class Product:
    """One sellable product. Each meter's count is per billing period for a subscription and
    per pack for a usage pack; ``duration`` is how long a time pass (or an expiring pack)
    lasts. ``units`` is the count of the ``units`` meter (None when there is none)."""

    code: str
    kind: Kind
    price: str
    units: int | None = None
    duration: timedelta | None = None
    features: tuple[str, ...] = ()
    meters: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __init__(
        self,
        code: str,
        *,
        kind: Kind,
        price: str,
        units: int | None = None,
        duration: timedelta | None = None,
        features: Iterable[str] = (),
        meters: Mapping[str, int] | None = None,
    ) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "price", price)
        object.__setattr__(self, "duration", duration)
        if isinstance(features, str) or not isinstance(features, Iterable):
            raise ValueError(f"{code}: features must be a tuple of names, like ('reports',)")
        object.__setattr__(self, "features", tuple(features))
        if meters is not None and not isinstance(meters, Mapping):
            raise ValueError(f"{code}: meters must be a dict of meter name -> units")
        given = dict(meters or {})
        if units is not None:
            if UNITS in given:
                raise ValueError(f"{code}: give units=N or meters={{'units': N}}, not both")
            given = {UNITS: units, **given}
        object.__setattr__(self, "units", given.get(UNITS))
        object.__setattr__(self, "meters", given)
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.code, str) or not validation.is_valid_product_code(self.code):
            raise ValueError(f"product code {self.code!r} must match [A-Z0-9_]{{1,64}}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.code}: kind must be one of {', '.join(KINDS)}")
        if not isinstance(self.price, str) or not self.price.strip():
            raise ValueError(f"{self.code}: price must be a Stripe Price id")
        if not PRICE_ID.fullmatch(self.price):
            hint = (" (that is a Product id: use the id of one of its prices)"
                    if self.price.startswith("prod_") else "")
            raise ValueError(f"{self.code}: price must be a Stripe Price id like "
                             f"price_1MoBy5LkdIwHu7ix, not {self.price!r}{hint}")
        for name in self.features:
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise ValueError(f"{self.code}: feature {name!r} must match "
                                 "[a-z0-9][a-z0-9_.:-]{0,63}")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"{self.code}: a feature is listed twice")
        for name, count in self.meters.items():
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise ValueError(f"{self.code}: meter {name!r} must match "
                                 "[a-z0-9][a-z0-9_.:-]{0,63}")
            if isinstance(count, bool) or not isinstance(count, int) or not (
                1 <= count <= validation.MAX_UNITS
            ):
                what = "units" if name == UNITS else f"meter {name!r}"
                raise ValueError(f"{self.code}: {what} must be a positive integer "
                                 f"(1 to {validation.MAX_UNITS})")
        if self.duration is not None and (
            not isinstance(self.duration, timedelta) or self.duration <= timedelta(0)
        ):
            raise ValueError(f"{self.code}: duration must be a positive timedelta")
        if self.kind == "usage_pack" and not self.meters:
            raise ValueError(f"{self.code}: a usage_pack needs units (or at least one meter)")
        if self.kind == "time_pass" and self.meters:
            raise ValueError(f"{self.code}: a time_pass has no units or meters")
        if self.kind == "subscription" and self.duration is not None:
            raise ValueError(
                f"{self.code}: a subscription's period comes from Stripe, not a duration"
            )

    @property
    def metered(self) -> bool:
        return bool(self.meters)

    def grants(self, name: str) -> bool:
        """Does an available entitlement of this product grant ``name`` (a feature it lists,
        or one of its meters, while that meter has units left)?"""
        return name in self.features or name in self.meters


class Catalog:
    """Products by code and by Stripe price: one price per product code per mode."""

    def __init__(self, products: Iterable[Product]) -> None:
        self._by_code: dict[str, Product] = {}
        self._by_price: dict[str, Product] = {}
        for product in products:
            if not isinstance(product, Product):
                raise ValueError(f"catalog entries must be Product, got {product!r}")
            if product.code in self._by_code:
                raise ValueError(f"duplicate product code {product.code}")
            if product.price in self._by_price:
                raise ValueError(f"duplicate price {product.price}")
            self._by_code[product.code] = product
            self._by_price[product.price] = product
        if not self._by_code:
            raise ValueError("the catalog needs at least one product")
        self.feature_names = frozenset(f for p in self._by_code.values() for f in p.features)
        self.meter_names = frozenset(m for p in self._by_code.values() for m in p.meters)
        # feature -> (the codes listing it, the meter of that name or None): what the store
        # is asked, decided once per name instead of on every check.
        self._grants: dict[str, tuple[frozenset[str], str | None]] = {
            name: (frozenset(self.codes_listing(name)),
                   name if name in self.meter_names else None)
            for name in self.feature_names | self.meter_names}

    def grants(self, feature: object) -> tuple[frozenset[str], str | None]:
        """What grants ``feature``: the codes of the products that list it and the meter of
        that name (None when there is none). A name no product grants is ``InvalidRequest``,
        as with :meth:`feature`."""
        grants = self._grants.get(feature) if isinstance(feature, str) else None
        if grants is None:
            self.feature(feature)  # raises: the name is malformed or granted by nothing
            raise AssertionError(feature)  # pragma: no cover - feature() raised
        return grants

    def feature(self, name: object) -> str:
        """``name`` when some product grants it (a feature, or a meter read as one), else
        ``InvalidRequest``: a name no product grants is a typo at the call site, and denying
        it would hide the typo behind a paywall."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InvalidRequest("feature must match [a-z0-9][a-z0-9_.:-]{0,63}")
        if name not in self.feature_names and name not in self.meter_names:
            raise InvalidRequest(f"no product of the catalog grants the feature {name!r}")
        return name

    def meter(self, name: object) -> str:
        """``name`` when some product has that meter, else ``InvalidRequest`` (a typo)."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InvalidRequest("meter must match [a-z0-9][a-z0-9_.:-]{0,63}")
        if name not in self.meter_names:
            raise InvalidRequest(f"no product of the catalog has the meter {name!r}")
        return name

    def granting(self, *, feature: str | None = None,
                 meter: str | None = None) -> tuple[Product, ...]:
        """The products that would grant ``feature`` (listed, or as a meter) or carry
        ``meter``, in catalog order; every product when neither is given. What a denial
        offers to buy."""
        products = tuple(self._by_code.values())
        if feature is not None:
            return tuple(p for p in products if p.grants(feature))
        if meter is not None:
            return tuple(p for p in products if meter in p.meters)
        return products

    def codes_listing(self, feature: str) -> tuple[str, ...]:
        """The codes of the products that list ``feature`` itself (not as a meter)."""
        return tuple(p.code for p in self._by_code.values() if feature in p.features)

    def get(self, code: str) -> Product:
        """The product for a validated code, or ``UnknownProduct``."""
        validation.product_code(code)
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownProduct(code) from None

    def by_code(self, code: str) -> Product | None:
        """The product of a stored entitlement's code (None: no longer in the catalog)."""
        return self._by_code.get(code)

    def by_price(self, price_id: str) -> Product | None:
        return self._by_price.get(price_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)
