"""What every benchmark server shares: the store (``LICENZY_BENCH_URL``), the catalog and the
one subject every request acts as, so the decorated and the plain views differ only by the
decorator.

``bare_check`` and ``bare_spend`` are the floors' work done in a view: the access check's
SELECT and the spend's bare transaction (an idempotency INSERT and a conditional UPDATE) on a
plain engine of the process's own. A view that does only that shows what any database check
or durable spend per request costs a server, whatever library does it.
"""

from __future__ import annotations

import itertools
import os
import uuid
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from licenzy_embed import Licenzy, Product
from licenzy_embed.stores import InMemoryStore
from licenzy_embed.stores import _sql_schema as schema
from licenzy_embed.stores.sqlalchemy import _HAS_ACCESS, SQLAlchemyStore

SUBJECT = "bench-server-user"
MODE = "test"
PRODUCTS = [Product("BENCH_UNITS", kind="usage_pack", price="price_bench_units",
                    units=10**12)]


def licenzy() -> Licenzy:
    """The benchmark's instance. ``LICENZY_BENCH_URL=memory``: an InMemoryStore per worker
    process, granted here, which leaves the decorators' own cost with no database at all."""
    url = os.environ["LICENZY_BENCH_URL"]
    if url == "memory":
        lz = Licenzy(store=InMemoryStore(), products=PRODUCTS)
        lz.grant(SUBJECT, "BENCH_UNITS", reason="benchmark")
        return lz
    return Licenzy(store=SQLAlchemyStore(url), products=PRODUCTS)


def subject(*_: object) -> str:
    return SUBJECT


_bare: dict[str, Any] = {}
_ENT, _USAGE = schema.entitlements, schema.usage_records
# The spend's floor (also benchmarks/run.py's, section 2a): the idempotency record's INSERT and
# the conditional decrement, built once.
BARE_INSERT = _USAGE.insert()
BARE_DECREMENT = (_ENT.update()
              .where(_ENT.c.mode == sa.bindparam("b_mode"), _ENT.c.id == sa.bindparam("b_id"),
                     _ENT.c.usage_remaining >= sa.bindparam("b_units"))
              .values(usage_remaining=_ENT.c.usage_remaining - sa.bindparam("b_units")))


def _engine() -> sa.Engine:
    # Built on first use, so each (forked) worker has its own pool.
    engine = _bare.get("engine")
    if engine is None:
        engine = _bare["engine"] = sa.create_engine(os.environ["LICENZY_BENCH_URL"])
        with engine.connect() as conn:
            _bare["entitlement"] = conn.execute(
                sa.select(_ENT.c.id).where(_ENT.c.mode == MODE, _ENT.c.subject_ref == SUBJECT)
            ).scalar_one()
        _bare["keys"] = itertools.count()
        _bare["prefix"] = uuid.uuid4().hex
    return engine  # type: ignore[no-any-return]


def bare_check() -> bool:
    """The access check's SELECT, on a plain pooled engine."""
    with _engine().connect() as conn:
        return conn.execute(_HAS_ACCESS, {"mode": MODE, "subject_ref": SUBJECT,
                                          "now": datetime.now(timezone.utc)}).first() is not None


def bare_spend() -> None:
    """One durable transaction: the idempotency record's INSERT and the conditional
    decrement of the subject's entitlement."""
    engine = _engine()
    with engine.begin() as conn:
        conn.execute(BARE_INSERT, {"mode": MODE, "subject_ref": SUBJECT,
                               "idempotency_key": f"{_bare['prefix']}-{next(_bare['keys'])}",
                               "units": 1, "allocations": "[]", "usage_remaining": 0,
                               "created_at": datetime.now(timezone.utc)})
        conn.execute(BARE_DECREMENT, {"b_mode": MODE, "b_id": _bare["entitlement"], "b_units": 1})
