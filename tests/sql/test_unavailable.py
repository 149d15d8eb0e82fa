"""Database failures become ``StoreUnavailable`` (503, fail closed) and leave nothing half
written: a server that is not there, a connection killed in the middle of a spend, a SQLite
writer that waits too long, tables that were never migrated."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from licenzy_embed import InsufficientUsage, Licenzy, StoreUnavailable
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

from ..conftest import START, catalog
from .databases import SERVERS, SQLITE

CLOSED = {
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:1/licenzy_test",
    "mysql": "mysql+pymysql://root@127.0.0.1:1/licenzy_test",
    "sqlite": "sqlite:////nonexistent-directory/licenzy.db",
}


def state(lz: Licenzy, subject: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return ([e.to_dict() for e in lz.entitlements(subject)],
            [e.to_dict() for e in lz.ledger(subject)])


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_a_database_that_is_not_there_fails_closed(name: str) -> None:
    store = SQLAlchemyStore(CLOSED[name])  # engines connect lazily: building works
    lz = Licenzy(store=store, products=catalog())
    try:
        for call in (lambda: lz.check_access("user_1"),
                     lambda: lz.consume_usage("user_1", 1, idempotency_key="k"),
                     lambda: lz.grant("user_1", "CREDITS_100", reason="x"),
                     lambda: lz.entitlements("user_1"),
                     lambda: lz.ledger("user_1")):
            with pytest.raises(StoreUnavailable) as failed:
                call()
            assert failed.value.status == 503
            assert failed.value.code == "entitlements_unavailable"
    finally:
        store.close()
    with pytest.raises(StoreUnavailable):
        SQLAlchemyStore(CLOSED[name], create_tables=True)


def test_tables_that_were_never_migrated_say_how_to_fix_it(empty_url: str) -> None:
    store = SQLAlchemyStore(empty_url)
    try:
        with pytest.raises(StoreUnavailable) as failed:
            store.has_access("test", "user_1", _now())
        assert "licenzy-embed migrate" in (failed.value.detail or "")
        assert "migrate" not in failed.value.message
        with pytest.raises(StoreUnavailable), store.transaction("test") as tx:
            tx.lock_subject("user_1")
    finally:
        store.close()


def _now() -> datetime:
    return START


def _kill_connection_before(lz: Licenzy, backend: str, marker: str) -> list[int]:
    """Kill the store's connection from the server side just before it runs the statement
    containing ``marker`` — in the middle of that operation's transaction."""
    server = SERVERS[backend]
    killed: list[int] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if marker not in statement or killed:
            return
        dbapi = conn.connection.dbapi_connection
        if backend == "postgres":
            pid = dbapi.info.backend_pid
            server.admin(f"SELECT pg_terminate_backend({pid})")
        else:
            pid = dbapi.thread_id()
            server.admin(f"KILL {pid}")
        killed.append(pid)

    event.listen(lz.store.engine, "before_cursor_execute", before)  # type: ignore[attr-defined]
    return killed


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
@pytest.mark.parametrize("marker", ["INSERT INTO licenzy_usage_records",
                                    "INSERT INTO licenzy_ledger"])
def test_a_connection_killed_mid_spend_writes_nothing(
        backend: str, marker: str, open_licenzy: Callable[..., Licenzy]) -> None:
    lz = open_licenzy()
    subject = "user_cut_off"
    lz.grant(subject, "CREDITS_100", reason="a")
    lz.consume_usage(subject, 10, idempotency_key="before")
    before = state(lz, subject)

    killed = _kill_connection_before(lz, backend, marker)
    with pytest.raises(StoreUnavailable):
        lz.consume_usage(subject, 25, idempotency_key="cut-off")
    assert killed, "the connection was killed mid-transaction"

    # Nothing of the spend was written; the store recovers on a fresh connection, and the
    # key was not burnt: a retry spends once.
    assert state(lz, subject) == before
    assert lz.consume_usage(subject, 25, idempotency_key="cut-off").usage_remaining == 65
    replay = lz.consume_usage(subject, 25, idempotency_key="cut-off")
    assert (replay.replayed, replay.usage_remaining) == (True, 65)


SERVER_BACKENDS = [pytest.param("postgres", marks=pytest.mark.postgres),
                   pytest.param("mysql", marks=pytest.mark.mysql)]


def _kill_pooled_connections(lz: Licenzy, backend: str) -> int:
    """Kill, from the server side, every connection the store's pool holds idle."""
    pool = lz.store.engine.pool  # type: ignore[attr-defined]
    records = list(pool._pool.queue)
    for record in records:
        dbapi = record.dbapi_connection
        if backend == "postgres":
            SERVERS[backend].admin(f"SELECT pg_terminate_backend({dbapi.info.backend_pid})")
        else:
            SERVERS[backend].admin(f"KILL {dbapi.thread_id()}")
    return len(records)


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_a_connection_killed_between_checks_is_replaced(
        backend: str, open_licenzy: Callable[..., Licenzy]) -> None:
    """No ping on a connection used a moment ago: the access check finds it dead, and —
    a read that changes nothing — asks again on a fresh connection, so the request still
    gets its answer."""
    lz = open_licenzy()
    lz.grant("user_1", "WEEK_PASS", reason="a")
    assert lz.check_access("user_1")
    assert _kill_pooled_connections(lz, backend) >= 1
    assert lz.check_access("user_1")
    assert not lz.check_access("user_2")
    assert lz.check_access("user_1", "units") is not None


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_a_connection_that_idled_is_pinged_before_a_write(
        backend: str, open_licenzy: Callable[..., Licenzy], monkeypatch: Any) -> None:
    """A connection that sat in the pool past ``PING_AFTER_IDLE_S`` is pinged at checkout;
    a dead one is replaced before the transaction sends anything, so the write succeeds."""
    from licenzy_embed.stores import sqlalchemy as module

    monkeypatch.setattr(module, "PING_AFTER_IDLE_S", 0.05)
    lz = open_licenzy()
    lz.grant("user_1", "CREDITS_100", reason="a")
    assert _kill_pooled_connections(lz, backend) >= 1
    time.sleep(0.1)
    assert lz.consume_usage("user_1", 5, idempotency_key="after-idle").usage_remaining == 95


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_a_write_on_a_connection_killed_a_moment_ago_fails_closed_then_recovers(
        backend: str, open_licenzy: Callable[..., Licenzy]) -> None:
    """Without the ping a hot connection's death surfaces on the write: 503, nothing
    written, and the pool is renewed, so the client's retry (same key) spends once."""
    lz = open_licenzy()
    lz.grant("user_1", "CREDITS_100", reason="a")
    before = state(lz, "user_1")
    assert _kill_pooled_connections(lz, backend) >= 1
    with pytest.raises(StoreUnavailable):
        lz.consume_usage("user_1", 5, idempotency_key="retried")
    assert state(lz, "user_1") == before
    assert lz.consume_usage("user_1", 5, idempotency_key="retried").usage_remaining == 95
    assert lz.consume_usage("user_1", 5, idempotency_key="retried").replayed


def test_a_sqlite_writer_that_waits_too_long_fails_closed(tmp_path: Any) -> None:
    url = SQLITE.fresh_url()
    store = SQLAlchemyStore(url, sqlite_busy_timeout=0.05)
    lz = Licenzy(store=store, products=catalog())
    blocker = sqlite3.connect(sa.make_url(url).database or "", isolation_level=None)
    try:
        lz.grant("user_1", "CREDITS_100", reason="a")
        before = state(lz, "user_1")
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        with pytest.raises(StoreUnavailable) as failed:
            lz.consume_usage("user_1", 5, idempotency_key="k")
        assert "locked" in (failed.value.detail or "")
        # Plain reads still work while a writer holds the lock (WAL) — a denied check and a
        # customer_access too: with no expired hold to release they take no write lock.
        assert lz.check_access("user_1")
        assert not lz.check_access("user_without_anything")
        assert lz.customer_access("user_1").has_access
        assert store.list_ledger("test", "user_1") == lz.ledger("user_1")
        assert [e.to_dict() for e in lz.ledger("user_1")] == before[1]
        blocker.execute("ROLLBACK")
        assert state(lz, "user_1") == before
        assert lz.consume_usage("user_1", 5, idempotency_key="k").usage_remaining == 95
        with pytest.raises(InsufficientUsage):
            lz.consume_usage("user_1", 500, idempotency_key="too-much")
    finally:
        blocker.close()
        store.close()
        SQLITE.remove(url)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_deadlock_is_a_retryable_outage(backend: str,
                                          open_licenzy: Callable[..., Licenzy]) -> None:
    """Two transactions locking two subjects in opposite orders: the database kills one to
    break the deadlock, and the store says the transaction may simply run again."""
    import threading

    lz = open_licenzy()
    for subject in ("left", "right"):
        lz.grant(subject, "CREDITS_100", reason="deadlock")
    both_locked_one = threading.Barrier(2)
    outcomes: list[BaseException | None] = []

    def lock(first: str, second: str) -> None:
        try:
            with lz.store.transaction(lz.mode) as tx:
                tx.lock_subject(first)
                both_locked_one.wait(timeout=10)
                tx.lock_subject(second)
            outcomes.append(None)
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=lock, args=pair)
               for pair in (("left", "right"), ("right", "left"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    failed = [o for o in outcomes if o is not None]
    assert len(outcomes) == 2 and len(failed) == 1, outcomes
    assert isinstance(failed[0], StoreUnavailable) and failed[0].retryable, failed[0]


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_pool_pre_ping_restores_the_ping_on_every_checkout(db_url: str) -> None:
    from licenzy_embed.stores import sqlalchemy as module

    pinged = SQLAlchemyStore(db_url, pool_pre_ping=True)
    idle_only = SQLAlchemyStore(db_url)
    try:
        assert pinged.engine.pool._pre_ping
        assert not idle_only.engine.pool._pre_ping
        # the idle ping is installed only where the pool does not ping already
        assert not any(getattr(f, "__qualname__", "").startswith("_ping_when_idle")
                       for f in pinged.engine.pool.dispatch.checkout)
        assert any(getattr(f, "__qualname__", "").startswith("_ping_when_idle")
                   for f in idle_only.engine.pool.dispatch.checkout)
        assert module.PING_AFTER_IDLE_S == 1.0
    finally:
        pinged.close()
        idle_only.close()
