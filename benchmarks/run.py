"""Benchmarks: ratios measured side by side in one run, never absolute thresholds in tests.

What it compares, for the same work in the same process:

* ``check_access`` on InMemoryStore, SQLite, PostgreSQL and MariaDB, against the pattern our
  users replace — an HTTP round trip per request to an entitlement API (here a local
  ``http.server`` on loopback answering the same check from the same store, so the figure is
  a *lower bound* on what a hosted API costs: no TLS, no internet);
* ``consume_usage`` on each store.

Run with ``make bench``. Servers that are down are reported and skipped.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from licenzy_embed import InMemoryStore, Licenzy, Product
from licenzy_embed.stores.base import Store

PRODUCTS = [Product("CREDITS_1M", kind="usage_pack", price="price_bench", units=1_000_000)]
PG_URL = os.environ.get("LICENZY_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/licenzy_test")
MY_URL = os.environ.get("LICENZY_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/licenzy_test")


def per_call(fn: Callable[[], Any], n: int, repeats: int = 5) -> float:
    """Median seconds per call over ``repeats`` runs of ``n`` calls."""
    fn()  # warm up connections and caches
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n)
    return statistics.median(runs)


def stores() -> list[tuple[str, Callable[[], Store]]]:
    found: list[tuple[str, Callable[[], Store]]] = [("memory", InMemoryStore)]
    try:
        from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
    except ImportError as exc:
        print(f"  (SQL stores skipped: {exc})")
        return found
    tmp = f"/tmp/licenzy-bench-{uuid.uuid4().hex}.db"
    found.append(("sqlite", lambda: SQLAlchemyStore(f"sqlite:///{tmp}", create_tables=True)))
    found.append(("postgresql", lambda: SQLAlchemyStore(PG_URL, create_tables=True)))
    found.append(("mariadb", lambda: SQLAlchemyStore(MY_URL, create_tables=True)))
    return found


class _AccessAPI(BaseHTTPRequestHandler):
    """A stand-in for a hosted entitlement API: POST /v1/access/check."""

    lz: Licenzy

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = json.dumps(self.lz.check_access(body["subject_ref"]).to_dict()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def hosted_api_check(lz: Licenzy, subject: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    handler = type("Handler", (_AccessAPI,), {"lz": lz})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
    payload = json.dumps({"subject_ref": subject})

    def call() -> Any:
        conn.request("POST", "/v1/access/check", body=payload,
                     headers={"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())

    def stop() -> None:
        conn.close()
        server.shutdown()
        server.server_close()

    return call, stop


def measure(name: str, store: Store) -> list[tuple[str, float, float]]:
    lz = Licenzy(store=store, products=PRODUCTS)
    subject = f"bench-{uuid.uuid4().hex}"
    lz.grant(subject, "CREDITS_1M", reason="benchmark")
    n = 2000 if name == "memory" else 300
    counter = iter(range(10**9))
    rows = [(
        name,
        per_call(lambda: lz.check_access(subject), n),
        per_call(lambda: lz.consume_usage(subject, 1, idempotency_key=f"k{next(counter)}"),
                 n // 4),
    )]
    if name == "memory":
        call, stop = hosted_api_check(lz, subject)
        try:
            rows.append(("HTTP API round trip (loopback)", per_call(call, 300), float("nan")))
        finally:
            stop()
    return rows


def main() -> int:
    print("licenzy-embed benchmarks (median per call; ratios are against the in-memory store)")
    rows: list[tuple[str, float, float]] = []
    for name, factory in stores():
        try:
            store = factory()
        except Exception as exc:  # a server that is down is reported, not fatal
            print(f"  {name}: unavailable ({type(exc).__name__}: {exc})")
            continue
        try:
            rows.extend(measure(name, store))
        finally:
            store.close()

    base_access, base_consume = rows[0][1], rows[0][2]
    print(f"{'store':34} {'check_access':>14} {'x memory':>9} "
          f"{'consume_usage':>14} {'x memory':>9}")
    for name, access, consume in rows:
        consume_txt = "-" if consume != consume else f"{consume * 1e6:11.1f} us"
        ratio_txt = "-" if consume != consume else f"{consume / base_consume:8.1f}x"
        print(f"{name:34} {access * 1e6:11.1f} us {access / base_access:8.1f}x "
              f"{consume_txt:>14} {ratio_txt:>9}")
    http_row = next((r for r in rows if r[0].startswith("HTTP")), None)
    if http_row:
        for name, access, _ in rows:
            if not name.startswith("HTTP"):
                print(f"an in-process check on {name} is {http_row[1] / access:.1f}x faster than "
                      f"one loopback HTTP call to an entitlement API")
    return 0


if __name__ == "__main__":
    sys.exit(main())
