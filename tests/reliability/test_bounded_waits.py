"""Bounded waits on a sick database (issue 13): every wait ends in ``StoreUnavailable`` (503)
and charges nothing.

* A black-holed connection — a TCP proxy between the store and the server stops delivering,
  while the kernel still acknowledges every byte — fails ``check_access`` and
  ``consume_usage`` after the configured timeouts instead of hanging until the server's
  worker timeout.
* A spend that waits for a row lock another transaction holds gives up after the lock
  timeout and writes nothing; its retry with the same key, once the lock is released, is
  charged exactly once.

No timing is asserted: each call runs under a generous guard that only tells a hang apart
from an answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from licenzy_embed import Licenzy, StoreUnavailable
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import FrozenClock, StripeSimulator

from ..conftest import START, catalog
from ..sql.databases import SERVERS
from .proxy import TCPProxy

SERVER_BACKENDS = [pytest.param("postgres", marks=pytest.mark.postgres),
                   pytest.param("mysql", marks=pytest.mark.mysql)]
# Small timeouts, so the test is quick; PostgreSQL's connect timeout is whole seconds, >= 2,
# and MariaDB's lock wait whole seconds, >= 1.
TIMEOUTS = {"connect_timeout": 2, "statement_timeout": 2, "lock_timeout": 1}
HANG_GUARD_S = 90  # never reached by a bounded wait; reached only by a hang


def answer(call: Callable[[], Any]) -> Any:
    """What ``call`` returned or raised, or a failure if it is still waiting at the guard."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), f"still waiting after {HANG_GUARD_S} s: the wait is unbounded"
    return outcome[0]


def unavailable(call: Callable[[], Any]) -> StoreUnavailable:
    outcome = answer(call)
    assert isinstance(outcome, StoreUnavailable), outcome
    assert outcome.status == 503
    return outcome


def state(lz: Licenzy, subject: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return ([e.to_dict() for e in lz.entitlements(subject)],
            [e.to_dict() for e in lz.ledger(subject)])


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield SERVERS[request.param].fresh_url()


def licenzy(url: str) -> Licenzy:
    return Licenzy(store=SQLAlchemyStore(url, **TIMEOUTS), products=catalog(),
                   clock=FrozenClock(START))


@pytest.mark.parametrize("server_url", SERVER_BACKENDS, indirect=True)
def test_a_black_holed_connection_answers_503_and_charges_nothing(server_url: str) -> None:
    upstream = make_url(server_url)
    with TCPProxy(upstream.host or "127.0.0.1", upstream.port or 0) as proxy:
        url = upstream.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False)
        lz = licenzy(url)
        try:
            lz.grant("user_1", "CREDITS_100", reason="bought")
            assert lz.check_access("user_1")  # the pool holds a live connection now
            before = state(lz, "user_1")

            proxy.blackhole()
            check = unavailable(lambda: lz.check_access("user_1"))
            spend = unavailable(lambda: lz.consume_usage("user_1", 5, idempotency_key="k"))
            for failed in (check, spend):
                # The client is told plainly; the driver's text stays in detail (the log).
                assert str(proxy.port) not in str(failed) and "127.0.0.1" not in str(failed)
                assert failed.to_dict()["message"] == str(failed)
                assert failed.detail

            proxy.restore()
            assert lz.check_access("user_1")
            assert state(lz, "user_1") == before  # the spend sent into the hole wrote nothing
            assert lz.consume_usage("user_1", 5, idempotency_key="k").usage_remaining == 95
            replay = lz.consume_usage("user_1", 5, idempotency_key="k")
            assert (replay.replayed, replay.usage_remaining) == (True, 95)
            assert [e.units_delta for e in lz.ledger("user_1")] == [100, -5]
        finally:
            lz.store.close()


def test_a_new_connection_into_a_black_hole_fails_after_the_connect_timeout() -> None:
    SERVERS["postgres"].require()
    upstream = make_url(SERVERS["postgres"].fresh_url())
    with TCPProxy(upstream.host or "127.0.0.1", upstream.port or 0) as proxy:
        proxy.blackhole()
        url = upstream.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False)
        lz = licenzy(url)
        try:
            failed = unavailable(lambda: lz.check_access("user_1"))
            assert "timeout" in (failed.detail or "").lower()
        finally:
            lz.store.close()


def _hold_rows(url: str, subject: str) -> tuple[sa.Engine, sa.Connection]:
    """Another transaction, holding ``subject``'s entitlement rows locked until rolled back."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    conn = engine.connect()
    conn.begin()
    locked = conn.exec_driver_sql(
        "SELECT id FROM licenzy_entitlements WHERE subject_ref = %(s)s FOR UPDATE",
        {"s": subject}).all()
    assert locked, "the blocker holds the subject's rows"
    return engine, conn


@pytest.mark.parametrize("server_url", SERVER_BACKENDS, indirect=True)
def test_a_held_row_lock_answers_503_then_the_retry_is_charged_once(server_url: str) -> None:
    lz = licenzy(server_url)
    subject = "user_locked_out"
    try:
        lz.grant(subject, "CREDITS_100", reason="bought")
        before = state(lz, subject)
        engine, blocker = _hold_rows(server_url, subject)
        try:
            failed = unavailable(
                lambda: lz.consume_usage(subject, 25, idempotency_key="request-1"))
            assert "lock" in (failed.detail or "").lower(), failed.detail
            assert not failed.retryable  # a timeout, not a deadlock the core would re-run
            # Nothing was charged, and the key is not burnt.
            with lz.store.transaction(lz.mode) as tx:
                assert tx.get_usage_record(subject, "request-1") is None
        finally:
            blocker.rollback()
            blocker.close()
            engine.dispose()
        assert state(lz, subject) == before

        retry = lz.consume_usage(subject, 25, idempotency_key="request-1")
        assert (retry.replayed, retry.usage_remaining) == (False, 75)
        again = lz.consume_usage(subject, 25, idempotency_key="request-1")
        assert (again.replayed, again.usage_remaining) == (True, 75)
        assert [e.units_delta for e in lz.ledger(subject)] == [100, -25]
    finally:
        lz.store.close()


@pytest.mark.parametrize("server_url", [SERVER_BACKENDS[0]], indirect=True)
def test_a_statement_over_the_statement_timeout_answers_503(server_url: str) -> None:
    """A statement the server runs too long (here: one that sleeps) is cancelled by the
    server's statement_timeout; the connection stays usable."""
    store = SQLAlchemyStore(server_url, **TIMEOUTS)
    try:
        def slow() -> Any:
            with store.transaction("test") as tx:
                tx._execute(sa.text("SELECT pg_sleep(30)"))  # as any store statement runs

        failed = unavailable(slow)
        assert "statement timeout" in (failed.detail or ""), failed.detail
        assert store.has_access("test", "nobody", START) is False
    finally:
        store.close()


@pytest.mark.parametrize("server_url", SERVER_BACKENDS, indirect=True)
def test_a_webhook_that_waits_too_long_for_a_lock_records_nothing(server_url: str) -> None:
    """A refund for a pack whose rows another transaction holds: the delivery answers 503
    (Stripe delivers it again) and leaves no trace — not its event id, which would make the
    redelivery a "duplicate" that never applies the refund."""
    lz = Licenzy(store=SQLAlchemyStore(server_url, **TIMEOUTS), products=catalog(),
                 clock=FrozenClock(START), stripe_webhook_secret="whsec_bounded_waits")
    subject = "user_refunded"
    try:
        sim = StripeSimulator.for_licenzy(lz)
        session = lz.create_checkout_session(subject, "CREDITS_100", idempotency_key="buy")
        sim.complete_checkout(session)  # delivered now
        before = state(lz, subject)
        with sim.hold_deliveries():
            refund_events = sim.refund(subject, "CREDITS_100")
        sim.held.clear()
        engine, blocker = _hold_rows(server_url, subject)
        try:
            for event in refund_events:
                payload, header = sim.signed(event)
                failed = unavailable(lambda p=payload, h=header: lz.handle_webhook(p, h))
                assert "lock" in (failed.detail or "").lower(), failed.detail
                assert lz.store.get_processed_event(lz.mode, str(event["id"])) is None
        finally:
            blocker.rollback()
            blocker.close()
            engine.dispose()
        assert state(lz, subject) == before
        outcomes = [lz.handle_webhook(*sim.signed(event)).outcome for event in refund_events]
        assert "processed" in outcomes
        (pack,) = lz.entitlements(subject)
        assert pack.status == "refunded" and not pack.available
        assert [lz.handle_webhook(*sim.signed(e)).outcome for e in refund_events] == (
            ["duplicate"] * len(refund_events))
    finally:
        lz.store.close()
