"""Code that runs in separate processes (``multiprocessing`` with the "spawn" start method, so
each worker is a fresh interpreter with its own engine and connections, like an app worker).

Each worker builds its own ``Licenzy`` on the shared database URL, then waits on a barrier so
that the contested part starts in every process at once, and returns plain data.
"""

from __future__ import annotations

import multiprocessing
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from licenzy_embed import InsufficientUsage, Licenzy
from licenzy_embed.ledger import LedgerEntry
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import FrozenClock

from ..conftest import START, catalog

SPAWN = multiprocessing.get_context("spawn")
WEBHOOK_SECRET = "whsec_multiprocess_test"
# Generous: a guard against a hung worker, never a measurement.
GUARD_S = 180


def licenzy(url: str, *, clock: FrozenClock | None = None, **options: Any) -> Licenzy:
    """A Licenzy on its own store (engine) of ``url``, at START unless given a clock."""
    return Licenzy(store=SQLAlchemyStore(url), products=catalog(),
                   clock=clock or FrozenClock(START), **options)


# ---------------------------------------------------------------------------- running
@dataclass
class Workers:
    """Processes started together; results come back through one queue."""

    processes: list[Any]
    results: Any
    count: int
    barrier: Any  # kept referenced: its semaphore must outlive the children's start-up

    def collect(self) -> list[Any]:
        """Each worker's return value, in worker order (raises if a worker failed)."""
        got: dict[int, Any] = {}
        try:
            while len(got) < self.count:
                index, ok, value = self.results.get(timeout=GUARD_S)
                if not ok:
                    raise AssertionError(f"worker {index} failed:\n{value}")
                got[index] = value
        finally:
            self.stop()
        return [got[i] for i in range(self.count)]

    def next_message(self) -> tuple[int, Any]:
        index, ok, value = self.results.get(timeout=GUARD_S)
        if not ok:
            self.stop()
            raise AssertionError(f"worker {index} failed:\n{value}")
        return index, value

    def kill(self, index: int) -> None:
        process = self.processes[index]
        process.kill()
        process.join(GUARD_S)

    def stop(self) -> None:
        for process in self.processes:
            process.join(GUARD_S)
            if process.is_alive():  # never expected; do not leave it behind
                process.kill()
                process.join(GUARD_S)
        for process in self.processes:
            process.close()
        self.results.close()
        self.results.join_thread()


def start(target: Callable[..., Any], args: list[tuple[Any, ...]]) -> Workers:
    """Start ``target(barrier, report, *args[i])`` in one process per entry."""
    barrier = SPAWN.Barrier(len(args))
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=_entry, args=(i, target, barrier, results, a),
                               daemon=True)
                 for i, a in enumerate(args)]
    for process in processes:
        process.start()
    return Workers(processes, results, len(args), barrier)


def run(target: Callable[..., Any], args: list[tuple[Any, ...]]) -> list[Any]:
    return start(target, args).collect()


def _entry(index: int, target: Callable[..., Any], barrier: Any, results: Any,
           args: tuple[Any, ...]) -> None:
    def report(value: Any) -> None:
        results.put((index, True, value))

    try:
        value = target(barrier, report, *args)
    except BaseException:
        results.put((index, False, traceback.format_exc()))
    else:
        if value is not None:
            report(value)
    finally:
        results.close()
        results.join_thread()


# ---------------------------------------------------------------------------- workers
def spend_until_empty(barrier: Any, report: Any, url: str, subject: str,
                      seed: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Spend random amounts until a refusal says nothing is left. Returns the successes as
    (consumed, usage_remaining) and the refusals as (requested, usage_remaining)."""
    lz = licenzy(url)
    rng = random.Random(seed)
    ok: list[tuple[int, int]] = []
    refused: list[tuple[int, int]] = []
    barrier.wait(GUARD_S)
    try:
        for i in range(10_000):
            units = rng.randint(1, 5)
            try:
                result = lz.consume_usage(subject, units, idempotency_key=f"w{seed}-{i}")
            except InsufficientUsage as exc:
                refused.append((exc.requested, exc.usage_remaining))
                if exc.usage_remaining == 0:
                    break
            else:
                ok.append((result.consumed, result.usage_remaining))
    finally:
        lz.store.close()
    return ok, refused


def spend_shared_keys(barrier: Any, report: Any, url: str, subject: str, keys: list[str],
                      units: int, seed: int) -> list[tuple[str, int, int, bool]]:
    """Spend under every key of ``keys`` (in an order of this worker's own)."""
    lz = licenzy(url)
    order = list(keys)
    random.Random(seed).shuffle(order)
    barrier.wait(GUARD_S)
    try:
        out = []
        for key in order:
            r = lz.consume_usage(subject, units, idempotency_key=key)
            out.append((key, r.consumed, r.usage_remaining, r.replayed))
        return out
    finally:
        lz.store.close()


def deliver_webhook(barrier: Any, report: Any, url: str, payload: bytes, header: str,
                    times: int) -> list[str]:
    """Deliver one signed Stripe event ``times`` times, as a webhook route would."""
    lz = licenzy(url, stripe_webhook_secret=WEBHOOK_SECRET)
    barrier.wait(GUARD_S)
    try:
        return [lz.handle_webhook(payload, header).outcome for _ in range(times)]
    finally:
        lz.store.close()


def hold_and_hang(barrier: Any, report: Any, url: str, subject: str, units: int,
                  ttl_s: int) -> None:
    """Reserve units, say so, then hang until killed (a worker that died mid-request)."""
    lz = licenzy(url)
    hold = lz.reserve_usage(subject, units, idempotency_key="doomed-request",
                            ttl=timedelta(seconds=ttl_s))
    report((hold.id, hold.expires_at))
    time.sleep(3600)


def hang_inside_transaction(barrier: Any, report: Any, url: str, subject: str,
                            units: int) -> None:
    """Take units inside an open transaction, say so, then hang until killed: the database
    must undo everything when the process dies."""
    lz = licenzy(url)
    with lz.store.transaction(lz.mode) as tx:
        (record,) = tx.lock_subject(subject)
        tx.adjust_units(record.id, -units, lz.now())
        tx.add_ledger(LedgerEntry.new(
            mode=lz.mode, subject_ref=subject, action="consumed", source="runtime",
            reason="never committed", at=lz.now(), entitlement_id=record.id,
            units_delta=-units))
        report(record.id)
        time.sleep(3600)


def first_life(barrier: Any, report: Any, url: str, subject: str) -> dict[str, Any]:
    """An app process's first run: buy, spend, hold; then exit normally."""
    lz = licenzy(url)
    try:
        pack = lz.grant(subject, "CREDITS_100", reason="first life")
        lz.consume_usage(subject, 30, idempotency_key="before-restart")
        hold = lz.reserve_usage(subject, 20, idempotency_key="held-across-restart")
        return {"pack": pack.id, "hold": hold.id}
    finally:
        lz.store.close()


def second_life(barrier: Any, report: Any, url: str, subject: str,
                hold_id: str) -> dict[str, Any]:
    """The same app after a restart: what the first run left is all there."""
    lz = licenzy(url)
    try:
        before = [e.to_dict() for e in lz.entitlements(subject)]
        replay = lz.consume_usage(subject, 30, idempotency_key="before-restart")
        reservation = lz.get_reservation(hold_id)
        assert reservation is not None
        committed = reservation.commit(15)
        after = lz.consume_usage(subject, 5, idempotency_key="after-restart")
        return {
            "before": before,
            "replayed": (replay.replayed, replay.usage_remaining),
            "committed": (committed.consumed, committed.usage_remaining),
            "after": after.usage_remaining,
            "ledger": [(e.action, e.units_delta) for e in lz.ledger(subject)],
        }
    finally:
        lz.store.close()


def migrate_together(barrier: Any, report: Any, url: str) -> str | None:
    from licenzy_embed.stores.sqlalchemy import migrate

    barrier.wait(GUARD_S)
    return migrate(url)



def spend_meter_until_empty(barrier: Any, report: Any, url: str, subject: str, meter: str,
                            seed: int) -> tuple[str, list[tuple[int, int]],
                                                list[tuple[int, int]]]:
    """``spend_until_empty`` for one meter, on the catalog of several meters: returns the
    meter with the successes and the refusals."""
    from ..contract._meters import metered_catalog

    lz = Licenzy(store=SQLAlchemyStore(url), products=metered_catalog(),
                 clock=FrozenClock(START))
    rng = random.Random(seed)
    ok: list[tuple[int, int]] = []
    refused: list[tuple[int, int]] = []
    barrier.wait(GUARD_S)
    try:
        for i in range(10_000):
            units = rng.randint(1, 5)
            try:
                result = lz.consume_usage(subject, units, idempotency_key=f"w{seed}-{i}",
                                          meter=meter)
            except InsufficientUsage as exc:
                assert exc.meter == meter
                refused.append((exc.requested, exc.usage_remaining))
                if exc.usage_remaining == 0:
                    break
            else:
                assert result.meter == meter
                ok.append((result.consumed, result.usage_remaining))
    finally:
        lz.store.close()
    return meter, ok, refused
