"""Soak: several app processes on one database for a few minutes, with the database cut from
under them, then the money invariants checked in the database itself.

    python scripts/soak.py                                  # SQLite file, 4 processes, 180 s
    python scripts/soak.py --url postgresql+psycopg://postgres@127.0.0.1/licenzy_test \\
        --processes 4 --seconds 180

What runs (each worker a fresh interpreter, started with "spawn", like an app worker):

* Webhooks: the parent buys packs and passes with ``StripeSimulator`` (deliveries held), and
  hands every event to two workers, each worker's share shuffled: every event arrives at
  least twice, out of order, from two processes. A delivery that meets an outage is
  delivered again later, as Stripe does.
* Access checks, spends (``consume_usage``) and holds (``reserve_usage``, then commit or
  abandon to expire) on subjects every worker shares. A call that meets an outage is retried
  with the same idempotency key.
* Database cuts every ``--cut-every`` seconds: on PostgreSQL the parent terminates every
  backend of the workers (``pg_terminate_backend``); on SQLite it holds the write lock
  longer than the workers' busy timeout.

At the end, after a sweep of expired holds, it checks in the database: every balance equals
its grants minus its committed spends in the ledger; no balance is negative; every event was
recorded once and granted once; every spend a worker saw succeed is charged exactly once and
every refused one not at all; no hold is left held past its expiry. It prints the figures as
JSON and exits 1 when an invariant fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import sqlite3
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from licenzy_embed import (
    InsufficientUsage,
    Licenzy,
    Product,
    ReservationExpired,
    StoreUnavailable,
)
from licenzy_embed.stores import _sql_schema as schema
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore, migrate
from licenzy_embed.testing import StripeSimulator, sign_payload

SECRET = "whsec_soak"
SPAWN = multiprocessing.get_context("spawn")
PACK_UNITS = 1000
# Short waits, so that a cut turns into StoreUnavailable quickly and the retries are many.
WORKER_TIMEOUTS = {"connect_timeout": 2, "statement_timeout": 2, "lock_timeout": 1}
SQLITE_BUSY_S = 0.5
HOLD_TTL_S = 2
# How long past the run a worker keeps retrying what an outage interrupted.
SETTLE_S = 60


def products() -> list[Product]:
    return [
        Product("CREDITS_1K", kind="usage_pack", price="price_soak_credits", units=PACK_UNITS),
        Product("WEEK_PASS", kind="time_pass", price="price_soak_pass",
                duration=timedelta(days=7)),
    ]


def worker_store(url: str) -> SQLAlchemyStore:
    if make_url(url).get_backend_name() == "sqlite":
        return SQLAlchemyStore(url, sqlite_busy_timeout=SQLITE_BUSY_S)
    return SQLAlchemyStore(url, **WORKER_TIMEOUTS)


# ---------------------------------------------------------------------------- worker
class Retrying:
    """Calls that meet an outage are made again (same arguments, same key) until they answer
    or the settle time is over."""

    def __init__(self, rng: random.Random, give_up_at: float) -> None:
        self.rng = rng
        self.give_up_at = give_up_at
        self.unavailable = 0

    def __call__(self, call: Any) -> Any:
        while True:
            try:
                return call()
            except StoreUnavailable:
                self.unavailable += 1
                if time.monotonic() > self.give_up_at:
                    raise
                time.sleep(self.rng.uniform(0.01, 0.1))


def work(index: int, url: str, subjects: list[str], deliveries: list[tuple[str, str]],
         seconds: float, seed: int, start_at: float, results: Any) -> None:
    try:
        results.put((index, True, _work(index, url, subjects, deliveries, seconds, seed,
                                        start_at)))
    except BaseException:
        results.put((index, False, traceback.format_exc()))


def _work(index: int, url: str, subjects: list[str], deliveries: list[tuple[str, str]],
          seconds: float, seed: int, start_at: float) -> dict[str, Any]:
    # Each outage is logged at WARNING by the store; here they are counted instead.
    logging.getLogger("licenzy_embed").setLevel(logging.ERROR)
    lz = Licenzy(store=worker_store(url), products=products(), stripe_webhook_secret=SECRET)
    rng = random.Random(seed)
    while time.time() < start_at:
        time.sleep(0.01)
    stop = time.monotonic() + seconds
    retry = Retrying(rng, stop + SETTLE_S)
    pending = list(deliveries)
    spends: dict[str, tuple[str, int, str]] = {}
    holds: dict[str, tuple[str, int, str, int]] = {}
    events: dict[str, str] = {}
    counts: Counter[str] = Counter(checks=0, checks_unavailable=0, deliveries=0)

    def deliver(event_id: str, body: str) -> None:
        payload = body.encode()
        try:
            # Signed when sent, as Stripe signs each attempt.
            result = retry(lambda: lz.handle_webhook(payload, sign_payload(payload, SECRET)))
        except StoreUnavailable:
            events.setdefault(event_id, "unknown")
            return
        events[event_id] = result.outcome if events.get(event_id) in (None, "unknown") else (
            events[event_id])
        counts["deliveries"] += 1

    n = 0
    try:
        while time.monotonic() < stop:
            n += 1
            subject = rng.choice(subjects)
            roll = rng.random()
            if pending and roll < 0.1:
                deliver(*pending.pop())
            elif roll < 0.4:
                try:
                    lz.check_access(subject)
                    counts["checks"] += 1
                except StoreUnavailable:
                    counts["checks_unavailable"] += 1
            elif roll < 0.85:
                key, units = f"spend-{index}-{n}", rng.randint(1, 5)
                try:
                    retry(partial(lz.consume_usage, subject, units, idempotency_key=key))
                    spends[key] = (subject, units, "ok")
                except InsufficientUsage:
                    spends[key] = (subject, units, "refused")
                except StoreUnavailable:
                    spends[key] = (subject, units, "unknown")
            else:
                key, units = f"hold-{index}-{n}", rng.randint(1, 5)
                try:
                    hold = retry(partial(lz.reserve_usage, subject, units, idempotency_key=key,
                                         ttl=timedelta(seconds=HOLD_TTL_S)))
                except InsufficientUsage:
                    holds[key] = (subject, units, "refused", 0)
                    continue
                except StoreUnavailable:
                    holds[key] = (subject, units, "unknown", 0)
                    continue
                if rng.random() < 0.3:
                    holds[key] = (subject, units, "abandoned", 0)  # left to expire
                    continue
                spent = rng.randint(1, units)
                try:
                    retry(partial(hold.commit, spent))
                    holds[key] = (subject, units, "committed", spent)
                except ReservationExpired:  # outlived its ttl while the database was cut
                    holds[key] = (subject, units, "expired", 0)
                except StoreUnavailable:
                    holds[key] = (subject, units, "unknown", 0)
        # Whatever Stripe still has to deliver, it delivers after the run.
        while pending:
            deliver(*pending.pop())
    finally:
        lz.store.close()
    counts["unavailable_retried"] = retry.unavailable
    return {"spends": spends, "holds": holds, "events": events, "counts": dict(counts)}


# ---------------------------------------------------------------------------- parent
def purchases(url: str, subjects: list[str], seed: int) -> list[dict[str, Any]]:
    """Buy two packs for every subject and a pass for every third; return the events Stripe
    would send (held, not delivered)."""
    lz = Licenzy(store=SQLAlchemyStore(url), products=products(), stripe_webhook_secret=SECRET)
    try:
        sim = StripeSimulator.for_licenzy(lz)
        with sim.hold_deliveries():
            for i, subject in enumerate(subjects):
                codes = ["CREDITS_1K", "CREDITS_1K"] + (["WEEK_PASS"] if i % 3 == 0 else [])
                for j, code in enumerate(codes):
                    session = lz.create_checkout_session(subject, code,
                                                         idempotency_key=f"buy-{subject}-{j}")
                    sim.complete_checkout(session)
        events, sim.held = list(sim.held), []
        return events
    finally:
        lz.store.close()


class Cutter:
    """Cuts the workers' database: PostgreSQL backends terminated, or SQLite's write lock held
    past their busy timeout."""

    def __init__(self, url: str, tag: str) -> None:
        self.url, self.tag = url, tag
        self.backend = make_url(url).get_backend_name()
        self.cuts = 0
        self.connections_killed = 0

    def cut(self) -> None:
        if self.backend == "postgresql":
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
            try:
                with engine.connect() as conn:
                    killed = conn.exec_driver_sql(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %(tag)s", {"tag": self.tag}).scalar()
                    conn.commit()
            finally:
                engine.dispose()
            self.connections_killed += int(killed or 0)
        elif self.backend == "sqlite":
            blocker = sqlite3.connect(make_url(self.url).database or "", isolation_level=None,
                                      timeout=30)
            try:
                blocker.execute("BEGIN IMMEDIATE")
                time.sleep(SQLITE_BUSY_S * 3)
                blocker.execute("ROLLBACK")
            finally:
                blocker.close()
        else:
            raise SystemExit(f"soak cuts PostgreSQL or SQLite, not {self.backend}")
        self.cuts += 1


def check(url: str, subjects: list[str], events: list[dict[str, Any]],
          outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The invariants, read from the database after a sweep of expired holds."""
    lz = Licenzy(store=SQLAlchemyStore(url), products=products(), stripe_webhook_secret=SECRET)
    failures: list[str] = []
    try:
        time.sleep(HOLD_TTL_S + 1)  # every hold a worker left is past its expiry now
        swept = lz.release_expired_holds()
        store = lz.store
        assert isinstance(store, SQLAlchemyStore)
        ent, led, use, hol, pev = (schema.entitlements, schema.ledger, schema.usage_records,
                                   schema.holds, schema.processed_events)
        mine = lambda t: sa.and_(t.c.mode == lz.mode, t.c.subject_ref.in_(subjects))  # noqa: E731
        with store.engine.connect() as conn:
            balances = conn.execute(sa.select(ent.c.id, ent.c.subject_ref, ent.c.product_code,
                                              ent.c.usage_remaining).where(mine(ent))).all()
            ledger_sum = dict(conn.execute(
                sa.select(led.c.entitlement_id, sa.func.sum(led.c.units_delta))
                .where(mine(led)).group_by(led.c.entitlement_id)).all())
            grants = Counter(r[0] for r in conn.execute(
                sa.select(led.c.entitlement_id).where(mine(led), led.c.action == "granted")))
            usage_keys = {(r[0], r[1]): int(r[2]) for r in conn.execute(
                sa.select(use.c.subject_ref, use.c.idempotency_key, use.c.units)
                .where(mine(use)))}
            consumed: Counter[str] = Counter()
            for subject, delta in conn.execute(
                    sa.select(led.c.subject_ref, led.c.units_delta)
                    .where(mine(led), led.c.action == "consumed")):
                consumed[subject] -= int(delta)
            hold_rows = {(r[0], r[1]): (r[2], r[3], r[4]) for r in conn.execute(
                sa.select(hol.c.subject_ref, hol.c.idempotency_key, hol.c.status,
                          hol.c.committed_units, hol.c.expires_at).where(mine(hol)))}
            recorded = Counter(r[0] for r in conn.execute(
                sa.select(pev.c.event_id).where(pev.c.mode == lz.mode,
                                                pev.c.event_id.in_([e["id"] for e in events]))))
        now = lz.now()

        # 1. Every balance equals its grants minus its spends in the ledger; none negative.
        for entitlement_id, subject, _code, remaining in balances:
            if remaining is None:
                continue
            if int(remaining) != int(ledger_sum.get(entitlement_id) or 0):
                failures.append(f"{entitlement_id} ({subject}): balance {remaining} != ledger "
                                f"{ledger_sum.get(entitlement_id)}")
            if int(remaining) < 0:
                failures.append(f"{entitlement_id} ({subject}): negative balance {remaining}")
        # 2. Every event recorded once; each purchase granted once.
        for event in events:
            if recorded[event["id"]] != 1:
                failures.append(f"event {event['id']} recorded {recorded[event['id']]} times")
        bought = sum(1 for e in events if e["type"] == "checkout.session.completed")
        if len(balances) != bought:
            failures.append(f"{len(balances)} entitlements for {bought} purchases")
        for entitlement_id, _, _, _ in balances:
            if grants[entitlement_id] != 1:
                failures.append(f"{entitlement_id} granted {grants[entitlement_id]} times")
        # 3. Spends: each success charged once, each refusal not at all.
        charged: Counter[str] = Counter()
        unknown = 0
        for outcome in outcomes:
            for key, (subject, units, result) in outcome["spends"].items():
                stored = usage_keys.get((subject, key))
                if result == "ok":
                    charged[subject] += units
                    if stored != units:
                        failures.append(f"spend {key} succeeded but is recorded as {stored}")
                elif result == "refused" and stored is not None:
                    failures.append(f"spend {key} was refused but charged {stored}")
                elif result == "unknown":
                    unknown += 1
                    charged[subject] += stored or 0
            for key, (subject, _units, result, spent) in outcome["holds"].items():
                row = hold_rows.get((subject, key))
                if result == "committed" and (row is None or row[0] != "committed"
                                              or row[1] != spent):
                    failures.append(f"hold {key} committed {spent} but stored as {row}")
                if result in ("abandoned", "expired") and row is not None and row[0] not in (
                        "expired", "released"):
                    failures.append(f"hold {key} was abandoned but is {row[0]}")
        for subject in subjects:
            if consumed[subject] != charged[subject]:
                failures.append(f"{subject}: ledger consumed {consumed[subject]}, workers were "
                                f"charged {charged[subject]}")
        # 4. No hold left held past its expiry.
        stale = [k for k, (status, _, expires) in hold_rows.items()
                 if status == "held" and expires <= now]
        if stale:
            failures.append(f"{len(stale)} holds still held past their expiry: {stale[:5]}")
        return {
            "entitlements": len(balances),
            "units_granted": sum(PACK_UNITS for _, _, c, _ in balances if c == "CREDITS_1K"),
            "units_consumed": sum(consumed.values()),
            "units_committed_from_holds": sum(
                r[1] or 0 for r in hold_rows.values() if r[0] == "committed"),
            "holds": dict(Counter(r[0] for r in hold_rows.values())),
            "holds_swept_at_end": swept,
            "events": len(events),
            "spends_with_unknown_outcome": unknown,
            "failures": failures,
        }
    finally:
        lz.store.close()


def soak(url: str | None = None, *, processes: int = 4, seconds: float = 180,
         cut_every: float = 3.0, subjects: int = 6, seed: int | None = None) -> dict[str, Any]:
    """Run the soak and return its figures (``failures`` lists broken invariants)."""
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    tmp = None
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="licenzy-soak-")
        url = f"sqlite:///{Path(tmp.name) / 'soak.db'}"
    migrate(url)
    tag = f"licenzy_soak_{run}"
    worker_url = url
    if make_url(url).get_backend_name() == "postgresql":
        worker_url = make_url(url).update_query_dict({"application_name": tag}).render_as_string(
            hide_password=False)
    names = [f"soak_{run}_{i}" for i in range(subjects)]
    events = purchases(url, names, seed)
    shares: list[list[tuple[str, str]]] = [[] for _ in range(processes)]
    for event in events:
        body = json.dumps(event, separators=(",", ":"))
        for target in rng.sample(range(processes), min(2, processes)):
            shares[target].append((str(event["id"]), body))
    for share in shares:
        rng.shuffle(share)

    results = SPAWN.Queue()
    start_at = time.time() + 3 + processes  # every worker imported and connected by then
    workers = [SPAWN.Process(target=work, args=(i, worker_url, names, shares[i], seconds,
                                               seed + i, start_at, results), daemon=True)
               for i in range(processes)]
    for process in workers:
        process.start()
    cutter = Cutter(url, tag)
    while time.time() < start_at:
        time.sleep(0.05)
    while True:
        time.sleep(rng.uniform(0.5, 1.5) * cut_every)
        if time.time() >= start_at + seconds:
            break
        cutter.cut()
    outcomes: dict[int, Any] = {}
    broken: list[str] = []
    for _ in workers:
        index, ok, value = results.get(timeout=seconds + SETTLE_S + 300)
        if ok:
            outcomes[index] = value
        else:
            broken.append(f"worker {index} failed:\n{value}")
    for process in workers:
        process.join(60)
    figures = check(url, names, events, list(outcomes.values()))
    figures["failures"] = broken + figures["failures"]
    totals: Counter[str] = Counter()
    for outcome in outcomes.values():
        totals.update(outcome["counts"])
        totals["spends_ok"] += sum(1 for s in outcome["spends"].values() if s[2] == "ok")
        totals["spends_refused"] += sum(1 for s in outcome["spends"].values()
                                        if s[2] == "refused")
    figures = {
        "backend": make_url(url).get_backend_name(), "processes": processes,
        "seconds": seconds, "seed": seed, "subjects": subjects,
        "cuts": cutter.cuts, "connections_killed": cutter.connections_killed,
        **dict(totals), **figures}
    if tmp is not None:
        tmp.cleanup()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="PostgreSQL or SQLite URL (default: a new SQLite file)")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--cut-every", type=float, default=3.0,
                        help="mean seconds between database cuts")
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    figures = soak(args.url, processes=args.processes, seconds=args.seconds,
                   cut_every=args.cut_every, subjects=args.subjects, seed=args.seed)
    print(json.dumps(figures, indent=2, default=str))
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
