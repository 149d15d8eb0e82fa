"""The product catalog: what can be bought, as what kind of entitlement, at which Stripe price.

Validated once when ``Licenzy`` is built so that a typo in a price id or a pack without units is
a start-up ``ValueError``, not a customer who paid and got nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from . import validation
from .errors import UnknownProduct

Kind = Literal["subscription", "usage_pack", "time_pass"]
KINDS: tuple[Kind, ...] = ("subscription", "usage_pack", "time_pass")
# Stripe's Price ids (price_1MoBy5LkdIwHu7ix…); webhooks name the price, so anything else here
# (a Product id, a lookup key, a stray newline) would match no event and grant nothing.
PRICE_ID = re.compile(r"price_[A-Za-z0-9_]{1,250}")


@dataclass(frozen=True)
class Product:
    """One sellable product. ``units`` is per billing period for a subscription and per pack for
    a usage pack; ``duration`` is how long a time pass (or an expiring pack) lasts."""

    code: str
    kind: Kind
    price: str
    units: int | None = None
    duration: timedelta | None = None

    def __init__(
        self,
        code: str,
        *,
        kind: Kind,
        price: str,
        units: int | None = None,
        duration: timedelta | None = None,
    ) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "price", price)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "duration", duration)
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
        if self.units is not None and (
            isinstance(self.units, bool) or not isinstance(self.units, int)
            or not 1 <= self.units <= validation.MAX_UNITS
        ):
            raise ValueError(f"{self.code}: units must be a positive integer")
        if self.duration is not None and (
            not isinstance(self.duration, timedelta) or self.duration <= timedelta(0)
        ):
            raise ValueError(f"{self.code}: duration must be a positive timedelta")
        if self.kind == "usage_pack" and self.units is None:
            raise ValueError(f"{self.code}: a usage_pack needs units")
        if self.kind == "time_pass" and self.units is not None:
            raise ValueError(f"{self.code}: a time_pass has no units")
        if self.kind == "subscription" and self.duration is not None:
            raise ValueError(
                f"{self.code}: a subscription's period comes from Stripe, not a duration"
            )

    @property
    def metered(self) -> bool:
        return self.units is not None


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

    def get(self, code: str) -> Product:
        """The product for a validated code, or ``UnknownProduct``."""
        validation.product_code(code)
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownProduct(code) from None

    def by_price(self, price_id: str) -> Product | None:
        return self._by_price.get(price_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)
