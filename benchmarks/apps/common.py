"""What every benchmark server shares: the store (``LICENZY_BENCH_URL``), the catalog and the
one subject every request acts as, so the decorated and the plain views differ only by the
decorator."""

from __future__ import annotations

import os

from licenzy_embed import Licenzy, Product
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

SUBJECT = "bench-server-user"
PRODUCTS = [Product("BENCH_UNITS", kind="usage_pack", price="price_bench_units",
                    units=10**12)]


def licenzy() -> Licenzy:
    return Licenzy(store=SQLAlchemyStore(os.environ["LICENZY_BENCH_URL"]), products=PRODUCTS)


def subject(*_: object) -> str:
    return SUBJECT
