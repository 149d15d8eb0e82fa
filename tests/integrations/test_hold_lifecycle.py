"""The hold lifecycle every adapter shares (``integrations/_common.py``): a request given up
between reserve and commit is never charged.

The async adapters run their store calls in a thread pool. A job there can outlive the
request that queued it: AnyIO lets a worker thread run to its end after its task was
cancelled, and a job queued behind a busy pool starts only after the request was given up.
These tests make the pool busy on purpose, cancel the request while its job waits, then let
the job run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from licenzy_embed import Licenzy, Reservation
from licenzy_embed.integrations import _common

from ._support import credits, make_lz, remaining


def actions(lz: Licenzy) -> list[str]:
    return [e.action for e in lz.ledger("alice")]


class Pool:
    """A one-thread pool that can be made busy: after ``block()`` a job handed to it waits
    until ``unblock()``. Jobs run even when the awaiting task was cancelled (AnyIO's default
    for worker threads); ``submitted`` is set when a job was handed over."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.gate = threading.Event()
        self.submitted = asyncio.Event()
        self.futures: list[asyncio.Future[Any]] = []

    def block(self) -> None:
        self.gate.clear()
        self.submitted.clear()
        self.pool.submit(self.gate.wait)

    def unblock(self) -> None:
        self.gate.set()

    async def offload(self, job: Callable[[], Any]) -> Any:
        future = asyncio.wrap_future(self.pool.submit(job))
        self.futures.append(future)
        self.submitted.set()
        return await asyncio.shield(future)

    async def drain(self) -> None:
        self.gate.set()
        await asyncio.gather(*self.futures, return_exceptions=True)
        self.pool.shutdown(wait=True)


def test_a_request_cancelled_while_its_commit_waits_for_the_pool_is_not_charged() -> None:
    lz = make_lz()
    credits(lz, "alice")

    async def scenario() -> None:
        pool = Pool()
        hold = _common.AsyncHold(offload=pool.offload, shielded=pool.offload)
        await hold.take(lambda: _common.reserve(lz, "alice", 10, "k-1"))
        pool.block()  # every thread is busy when the view has answered 200
        settle = asyncio.ensure_future(hold.settle(200))
        await pool.submitted.wait()
        pool.submitted.clear()
        settle.cancel()  # the request is given up while its commit waits for a thread
        await pool.submitted.wait()  # its release is queued: the request was marked abandoned
        await pool.drain()  # now the commit job runs: it must find the request abandoned
        await asyncio.gather(settle, return_exceptions=True)
        assert settle.cancelled()

    asyncio.run(scenario())
    assert remaining(lz, "alice") == 100
    assert actions(lz).count("committed") == 0 and actions(lz)[-1] == "released"


def test_a_request_cancelled_while_its_reserve_waits_for_the_pool_holds_nothing() -> None:
    lz = make_lz()
    credits(lz, "alice")
    ran: list[str] = []

    async def scenario() -> None:
        pool = Pool()
        pool.block()

        async def view(reservation: Reservation) -> int:
            ran.append("view")
            return 200

        task = asyncio.ensure_future(_common.metered_async(
            lambda: _common.reserve(lz, "alice", 10, "k-2"), view, lambda status: status,
            offload=pool.offload, shielded=pool.offload))
        await pool.submitted.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        await pool.drain()  # the reserve job runs now, for a request nobody waits for

    asyncio.run(scenario())
    assert ran == []
    assert remaining(lz, "alice") == 100
    assert actions(lz)[-2:] == ["held", "released"]


def test_the_sync_lifecycle_asks_whether_the_request_was_abandoned_before_committing() -> None:
    lz = make_lz()
    credits(lz, "alice")
    outcome = _common.metered(lambda: _common.reserve(lz, "alice", 10, "k-3"),
                              lambda reservation: 200, lambda status: status,
                              abandoned=lambda: True)
    assert isinstance(outcome, _common.Denied)
    assert outcome.error.code == "request_abandoned" and outcome.error.status == 503
    assert remaining(lz, "alice") == 100
    outcome = _common.metered(lambda: _common.reserve(lz, "alice", 10, "k-4"),
                              lambda reservation: 200, lambda status: status)
    assert outcome == 200 and remaining(lz, "alice") == 90
