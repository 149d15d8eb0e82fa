"""licenzy-embed benchmarks: every hot path against its floor, side by side in one run.

``make bench`` (``.venv/bin/python benchmarks/run.py``) runs every section and rewrites the
generated parts of ``BENCHMARKS.md`` (between its ``<!-- bench:… -->`` markers; the prose
around them stays). Options:

* ``--quick``: smaller sizes and durations, a smoke run of a minute or two;
* ``--only SECTION[,SECTION]``: some of access, spend, throughput, webhooks, servers, remote,
  scale (only those parts of the file are rewritten);
* ``--store STORE[,STORE]``: some of memory, sqlite, postgresql, mariadb;
* ``--profile``: also write pyinstrument profiles of the spend and access paths to
  ``benchmarks/profiles/``;
* ``--output PATH``: another file than ``BENCHMARKS.md``.

How it measures (``_measure.py``): a path and its floor — the same work done bare — take turns
in alternating rounds in one process, and each gets the median of its rounds; the ratio of the
two is the figure that means something on a busy machine. Servers that are down are reported
and skipped. No test asserts a time; these figures are read, not enforced.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _databases import (
    STORES,
    analyze,
    bulk_insert,
    capture,
    explain,
    open_store,
    plain_engine,
    server_versions,
    template_row,
)
from _measure import Row, Section, fmt_rate, fmt_time, interleaved, machine, throughput
from _workers import FEATURE, PRODUCTS, SUBJECT, WEBHOOK_SECRET, spend_loop
from apps.common import BARE_DECREMENT, BARE_INSERT

import stripe
from licenzy_embed import InMemoryStore, Licenzy
from licenzy_embed.stores import _sql_schema as schema
from licenzy_embed.stores._sql_probe import Probe
from licenzy_embed.testing import StripeSimulator

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
PROFILES = Path(__file__).resolve().parent / "profiles"
SPAWN = multiprocessing.get_context("spawn")
SECTIONS = ("access", "spend", "throughput", "webhooks", "servers", "remote", "scale")


@dataclass
class Options:
    quick: bool
    stores: tuple[str, ...]
    profile: bool

    def command(self, section: str, store: str | None = None) -> str:
        parts = [".venv/bin/python benchmarks/run.py", f"--only {section}"]
        if store:
            parts.append(f"--store {store}")
        if self.quick:
            parts.append("--quick")
        return " ".join(parts)

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


def log(message: str) -> None:
    print(message, flush=True)


@contextmanager
def licenzy_on(store_name: str, **options: Any) -> Iterator[tuple[Licenzy, str | None]]:
    with open_store(store_name) as (store, url):
        yield Licenzy(store=store, products=PRODUCTS, **options), url


def keys(prefix: str) -> Callable[[], str]:
    counter = itertools.count()
    run = uuid.uuid4().hex[:8]
    return lambda: f"{prefix}-{run}-{next(counter)}"


def within(ratio: float, limit: float) -> bool:
    return ratio <= limit


# ---------------------------------------------------------------------------- floors
def memory_access_floor(store: InMemoryStore, mode: str, subject: str,
                        codes: frozenset[str] | None = None) -> Callable[[], bool]:
    """A dict walk over the same rows (the fields the rule reads) and ``now()``; with
    ``codes``, each row's product code looked up in them too (the feature's rule)."""
    rows = {(mode, subject): [
        (r.access_open, r.access_until, r.requires_units, r.usage_remaining, r.product_code)
        for r in store.list_entitlements(mode, subject)]}

    def floor() -> bool:
        now = datetime.now(timezone.utc)
        return any(open_ and (until is None or until > now) and (not needs or (left or 0) > 0)
                   for open_, until, needs, left, _ in rows.get((mode, subject), ()))

    def feature_floor() -> bool:
        now = datetime.now(timezone.utc)
        return any(open_ and (until is None or until > now) and (not needs or (left or 0) > 0)
                   and code in codes  # type: ignore[operator]
                   for open_, until, needs, left, code in rows.get((mode, subject), ()))

    return floor if codes is None else feature_floor


def captured(lz: Licenzy, call: Callable[[], Any]) -> tuple[str, Any]:
    """The one statement ``call`` sent (its SQL and parameters, as the driver got them)."""
    seen, stop = capture(lz.store.engine)  # type: ignore[attr-defined]
    try:
        assert call()
    finally:
        stop()
    ((statement, parameters),) = seen
    return statement, parameters


def sql_access_floor(url: str, statement: str, parameters: Any) -> tuple[Callable[[], Any],
                                                                        sa.Engine]:
    """The very SELECT the store sent, through a plain pooled engine (a Connection per
    call, as an app's own query would run)."""
    engine = plain_engine(url)

    def floor() -> Any:
        with engine.connect() as conn:
            return conn.exec_driver_sql(statement, parameters).first()

    return floor, engine


def driver_access_floor(url: str, statement: str, parameters: Any) -> tuple[Callable[[], Any],
                                                                           Any]:
    """The same SELECT on one DBAPI connection held open (in autocommit where the driver
    has it): no pool, no SQLAlchemy — the driver alone, what no embedded check can beat."""
    engine = plain_engine(url)
    raw = engine.raw_connection()
    dbapi = raw.dbapi_connection
    if engine.dialect.name == "postgresql":
        dbapi.autocommit = True  # type: ignore[union-attr]
    elif engine.dialect.name == "sqlite":
        dbapi.isolation_level = None  # type: ignore[union-attr]
    else:
        dbapi.autocommit(True)  # type: ignore[union-attr]
    cursor = dbapi.cursor()  # type: ignore[union-attr]

    def floor() -> Any:
        cursor.execute(statement, parameters)
        return cursor.fetchone()

    def close() -> None:
        cursor.close()
        raw.invalidate()
        engine.dispose()

    return floor, close


def memory_spend_floor() -> Callable[[], None]:
    """One lock, an idempotency insert and a conditional decrement, on dicts."""
    lock = threading.Lock()
    seen: dict[str, int] = {}
    units = [10**12]
    key = keys("floor")

    def floor() -> None:
        with lock:
            k = key()
            if k in seen:
                return
            seen[k] = 1
            if units[0] >= 1:
                units[0] -= 1

    return floor


def sql_spend_floor(lz: Licenzy, url: str, subject: str) -> tuple[Callable[[], None],
                                                                   sa.Engine]:
    """One transaction: the idempotency record's insert and the conditional decrement, on a
    plain engine, the statements built once."""
    (ent,) = lz.store.list_entitlements(lz.mode, subject)
    insert, decrement = BARE_INSERT, BARE_DECREMENT
    engine = plain_engine(url)
    key = keys("floor")
    mode = lz.mode

    def floor() -> None:
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            conn.execute(insert, {"mode": mode, "subject_ref": subject, "idempotency_key": key(),
                                  "units": 1, "allocations": "[]", "usage_remaining": 0,
                                  "created_at": now})
            conn.execute(decrement, {"b_mode": mode, "b_id": ent.id, "b_units": 1})

    return floor, engine


# ---------------------------------------------------------------------------- 1. access
def section_access(opts: Options) -> Section:
    section = Section("access", "1. `check_access` against its floor")
    n_mem, n_sql, rounds = opts.pick((20_000, 300, 9), (5_000, 100, 5))
    for name in opts.stores:
        log(f"  access: {name}")
        with licenzy_on(name) as (lz, url):
            lz.grant(SUBJECT, "BENCH_UNITS", reason="benchmark")
            for feature in (None, FEATURE):
                label = "`check_access`" if feature is None else (
                    f"`check_access(…, {feature!r})`")

                def check(feature: str | None = feature) -> Any:
                    return lz.check_access(SUBJECT, feature)

                closers: list[Callable[[], None]] = []
                if url is None:
                    paths = {"lz": check, "floor": memory_access_floor(
                        lz.store, lz.mode, SUBJECT,  # type: ignore[arg-type]
                        None if feature is None else frozenset(
                            lz.catalog.codes_listing(feature)))}
                    floor_name = "dict walk of the same rows + `now()`" + (
                        "" if feature is None else " + the product's code in the feature's")
                else:
                    statement, parameters = captured(lz, check)
                    floor, engine = sql_access_floor(url, statement, parameters)
                    driver, close = driver_access_floor(url, statement, parameters)
                    closers += [engine.dispose, close]
                    paths = {"lz": check, "floor": floor, "driver": driver}
                    floor_name = "the same SELECT, plain pooled engine"
                try:
                    got = interleaved(paths, n_mem if url is None else n_sql, rounds)
                finally:
                    for closer in closers:
                        closer()
                ratio = got["lz"] / got["floor"]
                if url is None:
                    budget, holds = "≤ 2 µs and ≤ 2\u00d7", got["lz"] <= 2e-6 and ratio <= 2
                else:
                    budget, holds = "≤ 1.2\u00d7", ratio <= 1.2
                section.rows.append(Row(f"{label}, {name}", fmt_time(got["lz"]), floor_name,
                                        fmt_time(got["floor"]), f"{ratio:.2f}\u00d7", budget,
                                        holds, opts.command("access", name)))
                if "driver" in got:
                    section.rows.append(Row(
                        f"{label}, {name}", fmt_time(got["lz"]),
                        "the same SELECT on the driver alone (one open connection, no pool)",
                        fmt_time(got["driver"]), f"{got['lz'] / got['driver']:.2f}\u00d7",
                        "— (reference)", None, opts.command("access", name)))
            if opts.profile:
                profile(f"access_{name}", lambda: lz.check_access(SUBJECT),
                        n_mem if url is None else n_sql)
    section.notes.append(
        "The budget's floor is the same SELECT through a plain SQLAlchemy engine, as an app's "
        "own query runs (a pooled Connection per call; on PostgreSQL the driver's BEGIN and "
        "the pool's ROLLBACK around it). The check runs below that layer (a prebuilt "
        "statement on a pooled DBAPI connection, in autocommit on PostgreSQL: "
        "`stores/_sql_probe.py`), so it can come in under its floor; the reference row sets it "
        "against the driver alone on one connection held open, the least any check can cost.")
    return section


# ---------------------------------------------------------------------------- 2. spend
def section_spend(opts: Options) -> Section:
    section = Section("spend", "2a. `consume_usage` and reserve + commit against one bare "
                               "transaction")
    n_mem, n_sql, rounds = opts.pick((3_000, 40, 7), (1_000, 15, 5))
    for name in opts.stores:
        log(f"  spend: {name}")
        with licenzy_on(name) as (lz, url):
            lz.grant(SUBJECT, "BENCH_UNITS", reason="benchmark")
            key = keys("spend")
            engine = None
            if url is None:
                floor = memory_spend_floor()
                floor_name = "lock + dict insert + conditional decrement"
            else:
                floor, engine = sql_spend_floor(lz, url, SUBJECT)
                floor_name = "one transaction: idempotency INSERT + conditional UPDATE"

            def consume(key: Callable[[], str] = key) -> None:
                lz.consume_usage(SUBJECT, 1, idempotency_key=key())

            def reserve_commit(key: Callable[[], str] = key) -> None:
                lz.reserve_usage(SUBJECT, 1, idempotency_key=key()).commit()

            try:
                got = interleaved({"consume": consume, "reserve": reserve_commit,
                                   "floor": floor}, n_mem if url is None else n_sql, rounds)
            finally:
                if engine is not None:
                    engine.dispose()
            for path, label in (("consume", "`consume_usage`"),
                                ("reserve", "`reserve_usage` + `commit`")):
                ratio = got[path] / got["floor"]
                budget, holds = ("≤ 1.5\u00d7", ratio <= 1.5) if (
                    url is not None and path == "consume") else ("—", None)
                section.rows.append(Row(f"{label}, {name}", fmt_time(got[path]), floor_name,
                                        fmt_time(got["floor"]), f"{ratio:.2f}\u00d7", budget, holds,
                                        opts.command("spend", name)))
            if url is not None:
                section.rows.append(statement_cost(lz, url, name, opts))
            if opts.profile:
                profile(f"consume_{name}", consume, n_mem if url is None else n_sql * 5)
    section.notes.append(
        "reserve + commit is two transactions (the hold, then its settlement); it is set "
        "against the same one-transaction floor, so its ratio is expected near twice the "
        "spend's. The last row per database is what one statement costs inside an open "
        "transaction: the entitlement's row read by primary key through SQLAlchemy Core (as "
        "the store and the floor send theirs), against the same SQL and parameters on the "
        "driver's cursor; a spend sends 6 or 7 statements, the floor 2.")
    return section


def statement_cost(lz: Licenzy, url: str, name: str, opts: Options) -> Row:
    """One prebuilt SELECT by primary key inside one open transaction, through SQLAlchemy
    Core and on the driver's own cursor, interleaved."""
    (ent,) = lz.store.list_entitlements(lz.mode, SUBJECT)
    table = schema.entitlements
    statement = sa.select(table).where(table.c.mode == sa.bindparam("b_mode"),
                                       table.c.id == sa.bindparam("b_id"))
    params = {"b_mode": lz.mode, "b_id": ent.id}
    engine = plain_engine(url)
    probe = Probe(engine, statement)
    raw_params = probe.parameters(params)
    try:
        with engine.connect() as conn, conn.begin():
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

            def core() -> Any:
                return conn.execute(statement, params).first()

            def driver() -> Any:
                cursor.execute(probe.sql, raw_params)
                return cursor.fetchone()

            n, rounds = opts.pick((400, 7), (100, 3))
            got = interleaved({"core": core, "driver": driver}, n, rounds)
            cursor.close()
    finally:
        engine.dispose()
    return Row(f"one statement in a transaction, SQLAlchemy Core, {name}",
               fmt_time(got["core"]), "the same statement on the driver's cursor",
               fmt_time(got["driver"]), f"{got['core'] / got['driver']:.2f}\u00d7", "—",
               None, opts.command("spend", name))


def section_throughput(opts: Options) -> Section:
    section = Section("throughput", "2b. Spend throughput: threads and processes, one hot "
                                    "subject and many subjects")
    duration = opts.pick(3.0, 1.0)
    per_worker = 8
    for name in opts.stores:
        log(f"  throughput: {name}")
        with licenzy_on(name) as (lz, url):
            subjects = [f"bench-many-{i}" for i in range(8 * per_worker)]
            for s in [SUBJECT, *subjects]:
                lz.grant(s, "BENCH_UNITS", reason="benchmark")
            figures: dict[tuple[str, str], float] = {}
            for workers, kind in ((1, "thread"), (8, "thread"), (4, "process")):
                for spread in ("one hot subject", "many subjects"):
                    def subjects_of(i: int, spread: str = spread,
                                    subjects: list[str] = subjects) -> list[str]:
                        if spread == "one hot subject":
                            return [SUBJECT]
                        return subjects[i * per_worker:(i + 1) * per_worker]

                    plural = "es" if kind == "process" else "s" if workers > 1 else ""
                    label = f"{workers} {kind}{plural}"
                    if kind == "process":
                        if url is None:
                            continue  # each process would have its own InMemoryStore
                        rate = spend_processes(url, [subjects_of(i) for i in range(workers)],
                                               duration)
                    else:
                        def make_call(i: int, subjects_of: Any = subjects_of) -> Any:
                            cycle = itertools.cycle(subjects_of(i))
                            key = keys(f"t{i}")
                            return lambda: lz.consume_usage(next(cycle), 1,
                                                            idempotency_key=key())
                        rate = throughput(make_call, workers, duration)
                    figures[(label, spread)] = rate
            base = figures.get(("1 thread", "one hot subject"))
            for (label, spread), rate in figures.items():
                ratio = f"{rate / base:.2f}\u00d7" if base else "—"
                section.rows.append(Row(f"`consume_usage`, {name}, {label}, {spread}",
                                        fmt_rate(rate), "1 thread, one hot subject",
                                        fmt_rate(base) if base else "—", ratio,
                                        command=opts.command("throughput", name)))
    section.notes.append(
        "Ratios here are against one thread on one subject of the same store. On 2 cores, "
        "threads share one GIL: more threads help only while a spend waits on the database. "
        "One hot subject serialises on its row lock (SQLite: on the database's one write "
        "lock, whatever the subject).")
    return section


def spend_processes(url: str, subjects: list[list[str]], duration: float) -> float:
    barrier = SPAWN.Barrier(len(subjects) + 1)
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=spend_loop, args=(url, s, duration, barrier, results))
             for s in subjects]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    start = time.perf_counter()
    counts = [results.get(timeout=120 + duration) for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join(timeout=30)
    return sum(counts) / max(elapsed, duration)


# ---------------------------------------------------------------------------- 3. webhooks
def signed_events(lz: Licenzy, count: int, tag: str) -> list[tuple[bytes, str]]:
    """``count`` deliveries of checkout.session.completed for a usage pack (each its own
    buyer), signed the way Stripe signs them."""
    sim = StripeSimulator.for_licenzy(lz)
    with sim.hold_deliveries():
        for i in range(count):
            session = lz.create_checkout_session(f"buyer-{tag}-{i}", "BENCH_UNITS",
                                                 idempotency_key=f"buy-{tag}-{i}")
            sim.complete_checkout(session)
    events = [e for e in sim.held if e["type"] == "checkout.session.completed"]
    sim.held.clear()
    return [sim.signed(e) for e in events]


def verify(payload: bytes, header: str) -> None:
    stripe.WebhookSignature.verify_header(payload.decode(), header, WEBHOOK_SECRET, 300)


def section_webhooks(opts: Options) -> Section:
    section = Section("webhooks", "3. Webhook processing against signature verification alone")
    count, chunk = opts.pick((240, 20), (60, 10))
    for name in opts.stores:
        log(f"  webhooks: {name}")
        with licenzy_on(name, stripe_webhook_secret=WEBHOOK_SECRET) as (lz, _):
            deliveries = signed_events(lz, count, "wh")
            fresh: list[float] = []
            dup: list[float] = []
            floor: list[float] = []
            for r in range(0, len(deliveries), chunk):
                batch = deliveries[r:r + chunk]
                # The redelivery always follows the first delivery (else it would be one).
                for which in (("fresh", "dup", "floor") if (r // chunk) % 2 == 0
                              else ("floor", "fresh", "dup")):
                    start = time.perf_counter()
                    for payload, header in batch:
                        if which == "floor":
                            verify(payload, header)
                        elif which == "fresh":
                            assert lz.handle_webhook(payload, header).outcome == "processed"
                        else:
                            assert lz.handle_webhook(payload, header).outcome == "duplicate"
                    per = (time.perf_counter() - start) / len(batch)
                    {"fresh": fresh, "dup": dup, "floor": floor}[which].append(per)
            f, d, v = (statistics.median(x) for x in (fresh, dup, floor))
            for label, value in (("new event (checkout.session.completed, usage pack)", f),
                                 ("redelivered event", d)):
                section.rows.append(Row(f"{label}, {name}", f"{1 / value:,.0f} events/s",
                                        "signature verification alone (stripe SDK)",
                                        f"{1 / v:,.0f} /s", f"{value / v:.1f}\u00d7 the time",
                                        command=opts.command("webhooks", name)))
    section.notes.append(
        "Each round delivers a batch of new events, then the same batch again (answered "
        "`duplicate`: one indexed read, pinned in tests/sql/test_statements.py), and verifies "
        "the batch's signatures alone with the stripe SDK, the floor taking turns before and "
        "after the deliveries.")
    return section


# ---------------------------------------------------------------------------- 4. servers
SERVERS = {
    "Flask, gunicorn": ["{bin}/gunicorn", "-w", "2", "-b", "127.0.0.1:{port}",
                        "--chdir", "{apps}", "flask_app:app"],
    "Django, gunicorn": ["{bin}/gunicorn", "-w", "2", "-b", "127.0.0.1:{port}",
                         "--chdir", "{apps}", "django_app:application"],
    # uvicorn's workers under gunicorn: `uvicorn --workers 2` itself answered a plain
    # endpoint at ~180 req/s here (40 ms stalls per request, a delayed-ACK pattern), against
    # ~9 000 with one worker, which would hide any decorator cost.
    "Starlette, uvicorn": ["{bin}/gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
                           "-b", "127.0.0.1:{port}", "--chdir", "{apps}", "asgi_app:app"],
    "FastAPI, uvicorn": ["{bin}/gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
                         "-b", "127.0.0.1:{port}", "--chdir", "{apps}", "fastapi_app:app"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/plain")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not answer")


def wrk(port: int, path: str, seconds: float) -> tuple[float, int]:
    """Requests per second and non-2xx answers of one bounded wrk run on loopback."""
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{max(1, round(seconds))}s",
                          f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    return float(rate.group(1)), int(bad.group(1)) if bad else 0


def section_servers(opts: Options) -> Section:
    section = Section("servers", "4. Decorator overhead on a real server (wrk on loopback)")
    if shutil.which("wrk") is None:
        section.notes.append("wrk is not installed (`apt-get install -y wrk`): skipped.")
        return section
    seconds, rounds = opts.pick((3.0, 3), (1.0, 1))
    bin_dir = str(Path(sys.executable).parent)
    for store in [s for s in opts.stores if s in ("memory", "sqlite", "postgresql")]:
        for server, template in SERVERS.items():
            log(f"  servers: {server} on {store}")
            with licenzy_on(store) as (lz, url):
                # memory: each worker builds and grants its own store (benchmarks/apps/common)
                url = url or "memory"
                lz.grant("bench-server-user", "BENCH_UNITS", reason="benchmark")
                port = free_port()
                argv = [a.format(bin=bin_dir, port=port, apps=APPS) for a in template]
                env = {**os.environ, "LICENZY_BENCH_URL": url}
                proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
                try:
                    wait_ready(port)
                    rates: dict[str, list[float]] = {"/plain": [], "/access": [],
                                                     "/consume": []}
                    if url != "memory":
                        rates.update({"/bare-check": [], "/bare-spend": []})
                    bad: dict[str, int] = dict.fromkeys(rates, 0)
                    paths = list(rates)
                    for path in paths:
                        wrk(port, path, 1)  # warm every worker's pool
                    for r in range(rounds):
                        for path in (paths if r % 2 == 0 else paths[::-1]):
                            rate, errors = wrk(port, path, seconds)
                            rates[path].append(rate)
                            bad[path] += errors
                finally:
                    proc.terminate()
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                plain = statistics.median(rates["/plain"])
                for path, label, limit in (
                        ("/access", "`requires_access`", 0.9),
                        ("/bare-check", "no library: the check's bare SELECT in the view", None),
                        ("/consume", "`consumes_usage(1)`", 0.5),
                        ("/bare-spend", "no library: the spend's bare transaction in the view",
                         None)):
                    if path not in rates:
                        continue
                    got = statistics.median(rates[path])
                    ratio = got / plain
                    note = f" ({bad[path]} non-2xx!)" if bad[path] else ""
                    section.rows.append(Row(
                        f"{label} view, {server}, {store}" if limit else (
                            f"{label}, {server}, {store}"),
                        f"{got:,.0f} req/s{note}",
                        "the same view undecorated", f"{plain:,.0f} req/s", f"{ratio:.2f}\u00d7",
                        f"≥ {limit}\u00d7" if limit else "— (reference)",
                        (ratio >= limit and not bad[path]) if limit else None,
                        opts.command("servers", store)))
    section.notes.append(
        "Two workers per server (gunicorn sync workers; uvicorn's worker class under "
        "gunicorn for Starlette and FastAPI), wrk with one thread "
        "and 8 connections on 127.0.0.1, all on the same 2 cores as the database, so the "
        "load generator and the database take CPU from the server: the ratios compare views "
        "under the same conditions, the absolute rates are not a capacity figure. Apps: "
        "`benchmarks/apps/`. The reference rows do the floors' work in a view with no "
        "library at all (the access check's SELECT; the spend's bare INSERT + UPDATE "
        "transaction, on the same hot subject; in a worker thread on uvicorn, as the "
        "decorators do): what one database read, or one durable write, per request costs "
        "this server, whoever does it. The memory rows give each worker process its own "
        "InMemoryStore, granted at start: the decorators' own cost, with no database.")
    return section


# ---------------------------------------------------------------------------- 5. remote
class _AccessAPI(BaseHTTPRequestHandler):
    """A small HTTP service wrapping the same check: POST /v1/access/check."""

    lz: Licenzy
    protocol_version = "HTTP/1.1"  # keep-alive, as a client of a hosted API would
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

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


def section_remote(opts: Options) -> Section:
    section = Section("remote", "5. Embedded against remote: the same check in process and "
                                "through an HTTP service on loopback")
    n, rounds = opts.pick((300, 7), (100, 3))
    for name in opts.stores:
        log(f"  remote: {name}")
        with licenzy_on(name) as (lz, _):
            lz.grant(SUBJECT, "BENCH_UNITS", reason="benchmark")
            handler = type("Handler", (_AccessAPI,), {"lz": lz})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            conn = HTTPConnection("127.0.0.1", server.server_address[1])
            payload = json.dumps({"subject_ref": SUBJECT}).encode()  # bytes: one send()

            def remote(conn: HTTPConnection = conn, payload: bytes = payload) -> Any:
                conn.request("POST", "/v1/access/check", body=payload,
                             headers={"Content-Type": "application/json"})
                return json.loads(conn.getresponse().read())

            try:
                got = interleaved({"embedded": lambda: lz.check_access(SUBJECT),
                                   "remote": remote}, n, rounds)
            finally:
                conn.close()
                server.shutdown()
                server.server_close()
            section.rows.append(Row(
                f"`check_access` in process, {name}", fmt_time(got["embedded"]),
                "the same check through HTTP (keep-alive, no TLS)", fmt_time(got["remote"]),
                f"remote is {got['remote'] / got['embedded']:.1f}\u00d7 slower",
                command=opts.command("remote", name)))
    section.notes.append(
        "The service answers from the same store in the same process over loopback without "
        "TLS: a lower bound on what a hosted entitlement API costs per request.")
    return section


# ---------------------------------------------------------------------------- 6. scale
def clone(record: Any, **changes: Any) -> Any:
    """A copy of a frozen dataclass with ``changes``, without running its ``__init__``:
    ``dataclasses.replace`` made loading 10^6 rows take minutes."""
    copy = object.__new__(type(record))
    copy.__dict__.update(record.__dict__, **changes)
    return copy


def grow_memory(store: InMemoryStore, mode: str, have: int, want: int,
                templates: dict[str, Any]) -> None:
    t = store._tables
    ent, hold, entry, event, usage = (templates[k] for k in ("ent", "hold", "ledger", "event",
                                                            "usage"))
    ledger = t.ledger.setdefault((mode, entry.subject_ref), [])
    gc.disable()  # else each collection walks every object loaded so far: quadratic
    try:
        _grow_memory(t, mode, have, want, ent, hold, entry, event, usage, ledger)
    finally:
        gc.enable()


def _grow_memory(t: Any, mode: str, have: int, want: int, ent: Any, hold: Any, entry: Any,
                 event: Any, usage: Any, ledger: list[Any]) -> None:
    for i in range(have, want):
        e = clone(ent, id=f"ent_bulk_{i}", subject_ref=f"bulk-subject-{i}")
        t.entitlements[(mode, e.id)] = e
        t.by_subject[(mode, e.subject_ref)] = [e.id]
        h = clone(hold, id=f"hold_bulk_{i}", idempotency_key=f"bulk-{i}")
        t.holds[(mode, h.id)] = h
        t.holds_by_key[(mode, h.subject_ref, h.idempotency_key)] = h.id
        ledger.append(clone(entry, id=f"led_bulk_{i}"))
        t.events[(mode, f"evt_bulk_{i}")] = clone(event, event_id=f"evt_bulk_{i}")
        t.usage[(mode, usage.subject_ref, f"bulk-{i}")] = clone(usage,
                                                              idempotency_key=f"bulk-{i}")


def grow_sql(engine: sa.Engine, have: int, want: int, templates: dict[str, Any]) -> None:
    ledger = {k: v for k, v in templates["ledger"].items() if k != "seq"}
    for table, template, vary in (
        (schema.entitlements, templates["ent"],
         lambda i: (f"ent_bulk_{i}", f"bulk-subject-{i}")),
        (schema.holds, templates["hold"], lambda i: (f"hold_bulk_{i}", f"bulk-{i}")),
        (schema.ledger, ledger, lambda i: (f"led_bulk_{i}",)),
        (schema.processed_events, templates["event"], lambda i: (f"evt_bulk_{i}",)),
        (schema.usage_records, templates["usage"], lambda i: (f"bulk-{i}",)),
    ):
        varying = {schema.entitlements: ("id", "subject_ref"),
                   schema.holds: ("id", "idempotency_key"), schema.ledger: ("id",),
                   schema.processed_events: ("event_id",),
                   schema.usage_records: ("idempotency_key",)}[table]
        bulk_insert(engine, table, template, varying, (vary(i) for i in range(have, want)))
    analyze(engine)


def scale_templates(lz: Licenzy, url: str | None) -> dict[str, Any]:
    """One row of each growing table, as the library wrote it, to copy in bulk."""
    lz.grant("bulk-template", "BENCH_UNITS", reason="template")
    lz.reserve_usage(SUBJECT, 1, idempotency_key="template-hold").commit()
    lz.consume_usage(SUBJECT, 1, idempotency_key="template-spend")
    if url is None:
        store: InMemoryStore = lz.store  # type: ignore[assignment]
        t = store._tables
        (ent,) = store.list_entitlements(lz.mode, "bulk-template")
        hold = next(h for h in t.holds.values() if h.idempotency_key == "template-hold")
        return {"ent": ent, "hold": hold, "ledger": store.list_ledger(lz.mode, SUBJECT)[0],
                "event": next(iter(t.events.values())),
                "usage": t.usage[(lz.mode, SUBJECT, "template-spend")]}
    engine = lz.store.engine  # type: ignore[attr-defined]
    return {
        "ent": template_row(engine, schema.entitlements, subject_ref="bulk-template"),
        "hold": template_row(engine, schema.holds, idempotency_key="template-hold"),
        "ledger": template_row(engine, schema.ledger, subject_ref=SUBJECT),
        "event": template_row(engine, schema.processed_events, outcome="processed"),
        "usage": template_row(engine, schema.usage_records, idempotency_key="template-spend"),
    }


def section_scale(opts: Options) -> Section:
    section = Section("scale", "6. Scale: cost against history size")
    section.notes.append(
        "\"N rows each\": N subjects (one entitlement each), N settled holds, N ledger rows, N "
        "usage records and N processed events in the database.")
    levels = opts.pick((1_000, 100_000, 1_000_000), (1_000, 20_000))
    n, rounds, events_per_level = opts.pick((40, 5, 30), (15, 3, 10))
    for name in opts.stores:
        with licenzy_on(name, stripe_webhook_secret=WEBHOOK_SECRET) as (lz, url):
            lz.grant(SUBJECT, "BENCH_UNITS", reason="benchmark")
            deliveries = {level: signed_events(lz, events_per_level, f"scale{level}")
                          for level in levels}
            payload, header = deliveries[levels[0]].pop()
            lz.handle_webhook(payload, header)  # one processed event to copy
            explained = deliveries[levels[-1]].pop()
            templates = scale_templates(lz, url)
            key = keys("scale")
            have = 0
            base: dict[str, float] = {}
            n_calls = n * (20 if url is None else 1)
            for level in levels:
                log(f"  scale: {name}, {level:,} rows per table")
                start = time.perf_counter()
                if url is None:
                    grow_memory(lz.store, lz.mode, have, level, templates)  # type: ignore[arg-type]
                else:
                    grow_sql(lz.store.engine, have, level, templates)  # type: ignore[attr-defined]
                load_s = time.perf_counter() - start
                have = level
                got = interleaved({
                    "check": lambda: lz.check_access(SUBJECT),
                    "consume": lambda key=key: lz.consume_usage(SUBJECT, 1,
                                                                idempotency_key=key()),
                    "reserve": lambda key=key: lz.reserve_usage(SUBJECT, 1,
                                                                idempotency_key=key()).commit(),
                }, n_calls, rounds)
                batch = deliveries[level]
                start = time.perf_counter()
                for payload, header in batch:
                    assert lz.handle_webhook(payload, header).outcome == "processed"
                got["webhook"] = (time.perf_counter() - start) / len(batch)
                for path, label in (("check", "`check_access`"), ("consume", "`consume_usage`"),
                                    ("reserve", "reserve + commit"),
                                    ("webhook", "new webhook event")):
                    base.setdefault(path, got[path])
                    ratio = got[path] / base[path]
                    section.rows.append(Row(
                        f"{label}, {name}, {level:,} rows each", fmt_time(got[path]),
                        f"same at {levels[0]:,}",
                        fmt_time(base[path]), f"{ratio:.2f}\u00d7", "flat (≤ 1.5\u00d7)",
                        ratio <= 1.5, opts.command("scale", name)))
                log(f"    loaded in {load_s:.0f} s")
            if url is not None:
                section.notes += plans(lz, name, levels[-1], explained)
        with licenzy_on(name) as (lz, _):
            entitlements_per_subject(lz, name, opts, section)
    section.notes.append(
        "The settled holds, the ledger rows and the usage (idempotency) records all belong "
        "to the hot subject the paths act on — the worst case for a lookup by subject; the "
        "other subjects each have one "
        "entitlement. Rows are copied in bulk from rows the library wrote (COPY on "
        "PostgreSQL, executemany elsewhere), then ANALYZEd.")
    return section


def plans(lz: Licenzy, name: str, level: int, delivery: tuple[bytes, str]) -> list[str]:
    """EXPLAIN of every statement a reserve, a commit, a spend, a check and a webhook (new,
    then redelivered) send, at the largest size."""
    engine = lz.store.engine  # type: ignore[attr-defined]
    seen, stop = capture(engine)
    hold = lz.reserve_usage(SUBJECT, 1, idempotency_key="explain-hold")
    hold.commit()
    lz.consume_usage(SUBJECT, 1, idempotency_key="explain-spend")
    lz.check_access(SUBJECT)
    lz.check_access("nobody")
    lz.handle_webhook(*delivery)
    assert lz.handle_webhook(*delivery).outcome == "duplicate"
    stop()
    lines = [f"Plans on {name} with {level:,} rows per table (every SELECT and UPDATE a "
             "reserve, commit, spend, allowed and denied check, new and redelivered webhook sent):",
             ""]
    done = set()
    for statement, parameters in seen:
        verb = statement.lstrip().split()[0].upper()
        if verb not in ("SELECT", "UPDATE") or statement in done:
            continue
        done.add(statement)
        target = re.search(r"(?:FROM|UPDATE)\s+(\w+)", statement)
        where = re.search(r"WHERE (.*?)(?: ORDER BY| LIMIT| FOR UPDATE| RETURNING|$)",
                          statement.replace("\n", " "))
        text = re.sub(r"%\(\w+\)s(?:::\w+)?", "?", re.sub(r"licenzy_\w+\.", "",
                                                          where.group(1) if where else ""))
        try:
            plan = explain(engine, statement, parameters)
        except sa.exc.SQLAlchemyError as exc:
            plan = f"(EXPLAIN failed: {type(exc).__name__})"
        lines.append(f"- {verb} {target.group(1) if target else '?'} WHERE "
                     f"`{text[:140]}` → {plan}")
    return lines


def entitlements_per_subject(lz: Licenzy, name: str, opts: Options, section: Section) -> None:
    n, rounds = opts.pick((40, 5), (15, 3))
    n_calls = n * (20 if isinstance(lz.store, InMemoryStore) else 1)
    key = keys("many")
    base: dict[str, float] = {}
    granted = 0
    for count in (1, 10, 100):
        for i in range(granted, count):
            lz.grant("bench-many-ents", "BENCH_UNITS", reason=f"pack {i}")
        granted = count
        got = interleaved({
            "check": lambda: lz.check_access("bench-many-ents"),
            "consume": lambda: lz.consume_usage("bench-many-ents", 1, idempotency_key=key()),
        }, n_calls, rounds)
        for path, label in (("check", "`check_access`"), ("consume", "`consume_usage`")):
            base.setdefault(path, got[path])
            section.rows.append(Row(
                f"{label}, {name}, {count} entitlements on the subject", fmt_time(got[path]),
                "same with 1", fmt_time(base[path]), f"{got[path] / base[path]:.2f}\u00d7",
                "may grow (the subject's own rows)", None, opts.command("scale", name)))


# ---------------------------------------------------------------------------- profiles
def profile(name: str, fn: Callable[[], Any], calls: int) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        log("  (pyinstrument is not installed: no profile)")
        return
    PROFILES.mkdir(exist_ok=True)
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(calls):
        fn()
    profiler.stop()
    path = PROFILES / f"{name}.txt"
    path.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    log(f"  profile written to {path.relative_to(ROOT)}")


# ---------------------------------------------------------------------------- report
RUNNERS: dict[str, Callable[[Options], Section]] = {
    "access": section_access, "spend": section_spend, "throughput": section_throughput,
    "webhooks": section_webhooks, "servers": section_servers, "remote": section_remote,
    "scale": section_scale,
}


def write_report(path: Path, parts: dict[str, str]) -> None:
    """Replace each generated part between its markers, keeping everything else."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    for name, body in parts.items():
        begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
        block = f"{begin}\n{body.rstrip()}\n{end}"
        if begin in text and end in text:
            start, stop = text.index(begin), text.index(end) + len(end)
            text = text[:start] + block + text[stop:]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def parse(argv: list[str]) -> tuple[Options, tuple[str, ...], Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"sections, comma separated: {', '.join(SECTIONS)}")
    parser.add_argument("--store", default=",".join(STORES),
                        help=f"stores, comma separated: {', '.join(STORES)}")
    parser.add_argument("--profile", action="store_true",
                        help="write pyinstrument profiles to benchmarks/profiles/")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    stores = tuple(s.strip() for s in args.store.split(",") if s.strip())
    for s in sections:
        if s not in SECTIONS:
            parser.error(f"unknown section {s!r}; choose from {', '.join(SECTIONS)}")
    for s in stores:
        if s not in STORES:
            parser.error(f"unknown store {s!r}; choose from {', '.join(STORES)}")
    return Options(args.quick, stores, args.profile), sections, Path(args.output)


def reachable(stores: tuple[str, ...]) -> tuple[str, ...]:
    ok = []
    for name in stores:
        try:
            with open_store(name):
                ok.append(name)
        except Exception as exc:  # a server that is down is reported, not fatal
            log(f"  {name}: unavailable ({type(exc).__name__}: {str(exc)[:120]}), skipped")
    return tuple(ok)


def main(argv: list[str]) -> int:
    opts, sections, output = parse(argv)
    # A terminated run still drops its databases: SIGTERM unwinds like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    log(f"licenzy-embed benchmarks: {', '.join(sections)} on {', '.join(opts.stores)}"
        f"{' (quick)' if opts.quick else ''}")
    opts = replace(opts, stores=reachable(opts.stores))
    versions = {k: v for k, v in server_versions().items()
                if (k == "PostgreSQL" and "postgresql" in opts.stores)
                or (k == "MariaDB" and "mariadb" in opts.stores)}
    command = " ".join([".venv/bin/python benchmarks/run.py", *argv])
    for name in sections:
        log(f"{name}:")
        section = RUNNERS[name](opts)
        body = section.markdown()
        print(body, flush=True)
        # Written as each section ends, so an interrupted run keeps what it measured.
        elapsed = time.perf_counter() - started
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        write_report(output, {name: body, "machine": (
            f"Last run {when}: `{command}` ({', '.join(sections)}; "
            f"{elapsed / 60:.1f} min so far)\n\n" + machine(versions))})
    log(f"wrote {output} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
