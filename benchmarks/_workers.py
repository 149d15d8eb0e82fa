"""What the benchmark runs in other processes (spawned: fresh interpreters, each with its own
engine, like an app's workers), and the catalog every section shares."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from licenzy_embed import Licenzy, Product

SUBJECT = "bench-hot-subject"
WEBHOOK_SECRET = "whsec_benchmark"
PRODUCTS = [Product("BENCH_UNITS", kind="usage_pack", price="price_bench_units",
                    units=10**12, features=("reports",))]
FEATURE = "reports"


def spend_loop(url: str, subjects: list[str], duration: float, barrier: Any,
               results: Any) -> None:
    """Spend one unit at a time, cycling over ``subjects``, for ``duration`` seconds after
    every worker is ready; put the number of spends on ``results``."""
    from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

    lz = Licenzy(store=SQLAlchemyStore(url), products=PRODUCTS)
    prefix = uuid.uuid4().hex
    keys = itertools.count()
    cycle = itertools.cycle(subjects)
    lz.consume_usage(subjects[0], 1, idempotency_key=f"{prefix}-warm")
    barrier.wait()
    stop = time.perf_counter() + duration
    done = 0
    while time.perf_counter() < stop:
        lz.consume_usage(next(cycle), 1, idempotency_key=f"{prefix}-{next(keys)}")
        done += 1
    lz.store.close()
    results.put(done)
