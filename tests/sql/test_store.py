"""SQLAlchemyStore beyond the shared contract: construction, sharing the app's engine,
identifiers compared byte for byte, exact instants and large numbers on every backend, the
duplicate-key race at the store level, mode isolation between separate stores on one
database, and an import that never needs SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from licenzy_embed import InsufficientUsage, Licenzy
from licenzy_embed.entitlement import EntitlementRecord, derive_access
from licenzy_embed.records import CustomerLink, ProcessedEvent
from licenzy_embed.stores import DuplicateKey, Store
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import FrozenClock

from ..conftest import START, catalog
from .databases import SQLITE


def record(subject: str, *, entitlement_id: str, **fields: object) -> EntitlementRecord:
    values: dict[str, object] = {
        "id": entitlement_id, "mode": "test", "subject_ref": subject,
        "product_code": "CREDITS_100", "kind": "usage_pack", "status": "active",
        "source": "admin", "created_at": START, "updated_at": START, "usage_remaining": 100,
        "units_granted": 100}
    return derive_access(EntitlementRecord(**(values | fields)))  # type: ignore[arg-type]


def event(event_id: str, mode: str = "test") -> ProcessedEvent:
    return ProcessedEvent(mode, event_id, "checkout.session.completed", "processed", "cs_1",
                          1_700_000_000, START)


# ---------------------------------------------------------------------------- construction
def test_it_is_a_store(sql_store: SQLAlchemyStore) -> None:
    assert isinstance(sql_store, Store)


@pytest.mark.parametrize("bad", ["", 42, None, b"sqlite://"])
def test_it_needs_a_url_or_an_engine(bad: object) -> None:
    with pytest.raises(ValueError, match="URL or a SQLAlchemy Engine"):
        SQLAlchemyStore(bad)  # type: ignore[arg-type]


def test_a_malformed_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a database URL"):
        SQLAlchemyStore("definitely not a url")


def test_engine_options_only_go_with_a_url() -> None:
    engine = sa.create_engine("sqlite://")
    try:
        with pytest.raises(ValueError, match="engine options"):
            SQLAlchemyStore(engine, pool_size=3)
    finally:
        engine.dispose()


@pytest.mark.parametrize("value", [-1, "30", True])
def test_the_busy_timeout_must_be_seconds(value: object) -> None:
    with pytest.raises(ValueError, match="sqlite_busy_timeout"):
        SQLAlchemyStore("sqlite://", sqlite_busy_timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "extra"), [
    ("postgresql+pg8000://u@127.0.0.1/db", "postgres"),
    ("mysql+mysqldb://u@127.0.0.1/db", "mysql"),
])
def test_a_missing_driver_names_the_extra_to_install(url: str, extra: str) -> None:
    with pytest.raises(ImportError, match=rf"pip install 'licenzy-embed\[{extra}\]'"):
        SQLAlchemyStore(url)


@pytest.mark.parametrize("url", ["oracle+oracledb://u@h/db", "mssql+pyodbc://u@h/db"])
def test_other_databases_are_refused_up_front(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        SQLAlchemyStore(url)


def test_the_repr_hides_the_password() -> None:
    store = SQLAlchemyStore("postgresql+psycopg://app:s3cret@127.0.0.1:1/db")
    try:
        assert "s3cret" not in repr(store) and "***" in repr(store)
    finally:
        store.close()


def test_importing_the_package_never_needs_sqlalchemy() -> None:
    code = (
        "import sys\n"
        "sys.modules['sqlalchemy'] = None  # as if the extra were not installed\n"
        "import licenzy_embed\n"
        "from licenzy_embed import Licenzy, InMemoryStore, Product\n"
        "assert not any(m.startswith('sqlalchemy') for m in sys.modules if sys.modules[m])\n"
        "try:\n"
        "    import licenzy_embed.stores.sqlalchemy\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert "pip install 'licenzy-embed[sqlalchemy]'" in done.stdout
    assert "[postgres]" in done.stdout and "[mysql]" in done.stdout


# ---------------------------------------------------------------------------- the app's engine
def test_it_shares_the_apps_own_engine(tmp_path: object) -> None:
    url = SQLITE.fresh_url()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:  # an app table, in the app's own transactions
            conn.exec_driver_sql("CREATE TABLE app_orders (id INTEGER PRIMARY KEY)")
        store = SQLAlchemyStore(engine)
        lz = Licenzy(store=store, products=catalog(), clock=FrozenClock(START))
        lz.grant("user_1", "CREDITS_100", reason="a")
        assert lz.consume_usage("user_1", 5, idempotency_key="k").usage_remaining == 95
        store.close()  # the app's engine stays the app's: still usable afterwards
        with engine.connect() as conn:
            conn.exec_driver_sql("INSERT INTO app_orders (id) VALUES (1)")
            conn.rollback()  # the app's own transactions are real transactions
            conn.exec_driver_sql("INSERT INTO app_orders (id) VALUES (2)")
            conn.commit()
            assert conn.exec_driver_sql("SELECT id FROM app_orders").scalars().all() == [2]
        again = SQLAlchemyStore(engine)
        assert again.list_entitlements("test", "user_1")[0].usage_remaining == 95
    finally:
        engine.dispose()
        SQLITE.remove(url)


def test_an_in_memory_sqlite_store_serves_every_thread() -> None:
    store = SQLAlchemyStore("sqlite://", create_tables=True)
    lz = Licenzy(store=store, products=catalog(), clock=FrozenClock(START))
    lz.grant("user_1", "CREDITS_100", reason="a")
    errors: list[BaseException] = []

    def spend(n: int) -> None:
        try:
            for i in range(5):
                lz.consume_usage("user_1", 2, idempotency_key=f"{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [e.usage_remaining for e in lz.entitlements("user_1")] == [40]
    store.close()


# ---------------------------------------------------------------------------- column fidelity
SUBJECTS = ["alice", "Alice", "ALICE", "alice ", " alice", "ali\u0301ce", "alíce", "ä", "a\u0308",
            "x" * 255, "日本語の利用者", "emoji-\U0001f600"]


def test_identifiers_compare_byte_for_byte(open_licenzy: Callable[..., Licenzy]) -> None:
    """MariaDB's default collations would fold case, trailing spaces and accents together; a
    key there must still be exactly the key it was."""
    lz = open_licenzy()
    for n, subject in enumerate(SUBJECTS):
        lz.grant(subject, "CREDITS_100", reason="a", units=100 + n)
    for n, subject in enumerate(SUBJECTS):
        (only,) = lz.entitlements(subject)
        assert (only.subject_ref, only.usage_remaining) == (subject, 100 + n)
    keys = ["k", "K", "k ", "ķ"]
    for n, key in enumerate(keys, start=1):
        assert lz.consume_usage("alice", n, idempotency_key=key).replayed is False
    assert lz.entitlements("alice")[0].usage_remaining == 100 - sum(range(1, len(keys) + 1))
    store = lz.store
    with store.transaction("test") as tx:
        tx.insert_processed_event(event("evt_A"))
        tx.insert_processed_event(event("evt_a"))
    assert store.get_processed_event("test", "evt_a") is not None
    assert store.get_processed_event("test", "EVT_A") is None


def test_instants_and_large_numbers_round_trip(sql_store: SQLAlchemyStore) -> None:
    eastern = timezone(timedelta(hours=-5))
    expires = datetime(2031, 7, 4, 9, 30, 15, 123456, tzinfo=eastern)
    big = 10**12
    stored = record("user_1", entitlement_id="ent_big", usage_remaining=big, units_granted=big,
                    expires_at=expires, quantity=7, period_key="sub_1:1767225600",
                    stripe_subscription_id="sub_1", stripe_customer_id="cus_1")
    with sql_store.transaction("test") as tx:
        tx.insert_entitlement(stored)
    (back,) = sql_store.list_entitlements("test", "user_1")
    assert back == stored
    assert back.expires_at == expires and back.expires_at.tzinfo == timezone.utc  # type: ignore[union-attr]
    assert back.expires_at.microsecond == 123456  # type: ignore[union-attr]
    with sql_store.transaction("test") as tx:
        assert tx.adjust_units("ent_big", -(big - 1), START) == 1
        assert tx.adjust_units("ent_big", big - 1, START) == big


def test_has_access_follows_the_derived_columns_to_the_microsecond(
        sql_store: SQLAlchemyStore) -> None:
    until = START + timedelta(days=7)
    with sql_store.transaction("test") as tx:
        tx.insert_entitlement(derive_access(EntitlementRecord(
            id="ent_pass", mode="test", subject_ref="user_1", product_code="WEEK_PASS",
            kind="time_pass", status="active", source="admin", created_at=START,
            updated_at=START, expires_at=until)))
    tick = timedelta(microseconds=1)
    assert sql_store.has_access("test", "user_1", until - tick)
    assert not sql_store.has_access("test", "user_1", until)
    assert not sql_store.has_access("live", "user_1", START)


# ---------------------------------------------------------------------------- duplicates
def test_a_duplicate_leaves_the_transaction_usable(sql_store: SQLAlchemyStore) -> None:
    """On PostgreSQL a failed statement would abort the whole transaction; a duplicate must
    not: the caller answers "duplicate" and may go on writing."""
    link = CustomerLink("test", "user_1", "cus_1", START)
    with sql_store.transaction("test") as tx:
        tx.insert_customer(link)
        tx.insert_processed_event(event("evt_1"))
        tx.insert_entitlement(record("user_1", entitlement_id="ent_1"))
    with sql_store.transaction("test") as tx:
        for duplicate in (lambda: tx.insert_processed_event(event("evt_1")),
                          lambda: tx.insert_customer(link),
                          lambda: tx.insert_customer(CustomerLink("test", "user_2", "cus_1",
                                                                  START)),
                          lambda: tx.insert_customer(CustomerLink("test", "user_1", "cus_2",
                                                                  START)),
                          lambda: tx.insert_entitlement(record("user_9",
                                                               entitlement_id="ent_1"))):
            with pytest.raises(DuplicateKey):
                duplicate()
        tx.insert_processed_event(event("evt_2"))  # still usable
        tx.insert_entitlement(record("user_1", entitlement_id="ent_2"))
    assert sql_store.get_processed_event("test", "evt_2") is not None
    assert [r.id for r in sql_store.list_entitlements("test", "user_1")] == ["ent_1", "ent_2"]
    with sql_store.transaction("test") as tx:
        assert tx.get_customer("user_1") == link


def test_the_duplicate_race_has_one_winner(backend: str, sql_store: SQLAlchemyStore) -> None:
    """Eight transactions insert the same event id at once: the losers wait for the winner's
    commit, see DuplicateKey, and their own transactions still commit their other writes.
    (SQLite transactions take the write lock when they begin, so there they meet at the
    door rather than inside.)"""
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def contend(i: int) -> None:
        if backend == "sqlite":
            barrier.wait(60)
        with sql_store.transaction("test") as tx:
            if backend != "sqlite":
                barrier.wait(60)
            try:
                tx.insert_processed_event(event("evt_race"))
                outcome = "won"
            except DuplicateKey:
                outcome = "duplicate"
            tx.insert_processed_event(event(f"evt_after_{i}"))
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate"] * (n - 1) + ["won"]
    assert all(sql_store.get_processed_event("test", f"evt_after_{i}") for i in range(n))


# ---------------------------------------------------------------------------- lock order
# Not on SQLite: it has one writer at a time, so a grant cannot land mid-spend there.
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_row_granted_mid_spend_cannot_deadlock_two_spends(backend: str,
                                                            sql_store: SQLAlchemyStore) -> None:
    """A spend locks its subject's rows, and locks them again later in the same transaction
    (after sweeping holds, to read what it gave back). An entitlement granted in between,
    which sorts before the rows already held (on MariaDB rows lock in id order, on PostgreSQL
    in (created_at, id) order), must not be locked by that second call: a spend starting
    meanwhile locks it first and waits for the others, and the two would deadlock."""
    with sql_store.transaction("test") as tx:
        tx.insert_entitlement(record("user_1", entitlement_id="ent_m"))
        tx.insert_entitlement(record("user_1", entitlement_id="ent_n"))
    first_locked, granted = threading.Event(), threading.Event()
    seen: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def spend(name: str, *, waits: bool) -> None:
        try:
            with sql_store.transaction("test") as tx:
                seen[name + " first"] = [r.id for r in tx.lock_subject("user_1")]
                if waits:
                    first_locked.set()
                    assert granted.wait(30)
                    time.sleep(0.5)  # the other spend has locked the new row and waits
                    seen[name + " again"] = [r.id for r in tx.lock_subject("user_1")]
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    holder = threading.Thread(target=spend, args=("holder",), kwargs={"waits": True})
    holder.start()
    assert first_locked.wait(30)
    with sql_store.transaction("test") as tx:  # sorts first in either order
        tx.insert_entitlement(record("user_1", entitlement_id="ent_a",
                                     created_at=START - timedelta(days=1)))
    newcomer = threading.Thread(target=spend, args=("newcomer",), kwargs={"waits": False})
    newcomer.start()
    granted.set()
    holder.join(60)
    newcomer.join(60)
    assert errors == []
    assert seen == {"holder first": ["ent_m", "ent_n"], "holder again": ["ent_m", "ent_n"],
                    "newcomer first": ["ent_a", "ent_m", "ent_n"]}


# ---------------------------------------------------------------------------- modes
def test_modes_are_isolated_between_stores_on_one_database(db_url: str) -> None:
    """A test-mode and a live-mode app on one shared database, each with its own engine."""
    test_store, live_store = SQLAlchemyStore(db_url), SQLAlchemyStore(db_url)
    try:
        clock = FrozenClock(START)
        test = Licenzy(store=test_store, products=catalog(), clock=clock)
        live = Licenzy(store=live_store, products=catalog(), clock=clock,
                       stripe_api_key="sk_live_x")
        pack = test.grant("user_1", "CREDITS_100", reason="t")
        test.consume_usage("user_1", 10, idempotency_key="k")
        test.reserve_usage("user_1", 5, idempotency_key="h")
        with test_store.transaction("test") as tx:
            tx.insert_processed_event(event("evt_shared", "test"))
            tx.insert_customer(CustomerLink("test", "user_1", "cus_shared", START))

        assert not live.check_access("user_1")
        assert live.entitlements("user_1") == [] and live.ledger("user_1") == []
        assert live_store.get_entitlement("live", pack.id) is None
        assert live_store.get_processed_event("live", "evt_shared") is None
        with pytest.raises(InsufficientUsage) as refused:
            live.consume_usage("user_1", 1, idempotency_key="k")
        assert refused.value.usage_remaining == 0
        with live_store.transaction("live") as tx:
            assert tx.get_customer("user_1") is None
            assert tx.get_customer_by_stripe_id("cus_shared") is None
            assert tx.get_usage_record("user_1", "k") is None
            assert tx.get_hold_by_key("user_1", "h") is None
            assert tx.lock_subject("user_1") == []
            tx.insert_processed_event(event("evt_shared", "live"))  # its own key space
            tx.insert_customer(CustomerLink("live", "user_1", "cus_shared", START))
        live.grant("user_1", "CREDITS_1K", reason="l")
        assert [e.usage_remaining for e in test.entitlements("user_1")] == [85]
        assert [e.usage_remaining for e in live.entitlements("user_1")] == [1000]
    finally:
        test_store.close()
        live_store.close()


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_an_apps_engine_gets_read_committed_for_writes(db_url: str) -> None:
    """MariaDB defaults to REPEATABLE READ: a spend that waited for a lock would then read an
    idempotency record from before it waited. The store asks for READ COMMITTED itself."""
    engine = sa.create_engine(db_url, isolation_level="REPEATABLE READ")
    store = SQLAlchemyStore(engine)
    try:
        with store.transaction("test") as tx:
            level = tx._conn.get_isolation_level()  # type: ignore[attr-defined]
        assert level == "READ COMMITTED"
        with engine.connect() as conn:  # the app's own connections keep the app's setting
            assert conn.get_isolation_level() == "REPEATABLE READ"
    finally:
        store.close()
        engine.dispose()


@pytest.mark.parametrize("memory", [False, True], ids=["database", "in-memory-sqlite"])
def test_a_read_inside_a_transaction_joins_it(sql_store: SQLAlchemyStore, memory: bool) -> None:
    """Store reads made while this thread's transaction is open (the core probes an
    entitlement that way) run on that transaction: its rollback still undoes everything."""
    store = SQLAlchemyStore("sqlite://", create_tables=True) if memory else sql_store
    try:
        with pytest.raises(RuntimeError), store.transaction("test") as tx:
            tx.insert_entitlement(record("user_1", entitlement_id="ent_1"))
            assert store.get_entitlement("test", "ent_1") is not None  # sees its own write
            assert store.has_access("test", "user_1", START)
            tx.insert_entitlement(record("user_1", entitlement_id="ent_2"))
            raise RuntimeError("the request failed")
        assert store.list_entitlements("test", "user_1") == []
        assert store.get_entitlement("test", "ent_1") is None
    finally:
        if memory:
            store.close()


def test_one_pooled_connection_is_enough(db_url: str) -> None:
    """Every operation, also one that reads the store inside its transaction (revoke,
    adjust_usage), needs one connection: a busy pool can never wait on itself."""
    store = SQLAlchemyStore(db_url, pool_size=1, max_overflow=0, pool_timeout=5)
    try:
        lz = Licenzy(store=store, products=catalog(), clock=FrozenClock(START))
        pack = lz.grant("user_1", "CREDITS_100", reason="a")
        assert lz.adjust_usage(pack.id, 5, reason="b").usage_remaining == 105
        assert lz.consume_usage("user_1", 5, idempotency_key="k").usage_remaining == 100
        assert lz.revoke(pack.id, reason="c").status == "revoked"
        assert not lz.check_access("user_1")
    finally:
        store.close()


# ---------------------------------------------------------------------------- after the lock
def _waiting_on(holder: sa.Connection, backend: str, probe: sa.Connection) -> int:
    """How many transactions wait, directly or queued behind another waiter, for a lock
    ``holder``'s transaction holds. (The probe ends its transaction each time: PostgreSQL
    keeps one snapshot of pg_stat_activity per transaction.)"""
    if backend == "postgres":
        me = holder.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        query = ("SELECT pid, blocker FROM pg_stat_activity, "
                 "unnest(pg_blocking_pids(pid)) AS blocker")
    else:
        me = holder.exec_driver_sql("SELECT trx_id FROM information_schema.innodb_trx "
                                    "WHERE trx_mysql_thread_id = CONNECTION_ID()").scalar()
        query = ("SELECT requesting_trx_id, blocking_trx_id "
                 "FROM information_schema.innodb_lock_waits")
    try:
        edges = probe.exec_driver_sql(query).all()
    finally:
        probe.rollback()
    behind = {me}
    while True:
        more = {str(w) for w, b in edges if str(b) in behind or b in behind} - behind
        if not more:
            return len(behind) - 1
        behind |= more


# Not on SQLite: a writer waits at BEGIN IMMEDIATE there, before its transaction reads a thing.
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_spend_that_waited_for_the_lock_reads_what_the_holder_committed(
        backend: str, open_licenzy: Callable[..., Licenzy]) -> None:
    """The read after a spend's lock (meters, the key's usage record, expired holds) is a
    statement of its own: on PostgreSQL, rows joined into the SELECT … FOR UPDATE would come
    from the snapshot that statement took before it waited, so a spend queued behind another
    would allocate from the balance before that one, report it, and miss its usage record.
    Here two spends wait on a transaction that spent 30 units under key k1 and expired a
    hold: the new key must see 100 - 30 - 20, the same key must replay the first answer
    without a retry, and the hold must not be given back twice."""
    lz = open_licenzy()
    lz.unit_of_work.attempts = 1  # a stale read of k1 must not be hidden by a retry
    pack = lz.grant("user_1", "CREDITS_100", reason="t")
    hold = lz.reserve_usage("user_1", 10, idempotency_key="h1", ttl=timedelta(seconds=1))
    lz.clock.advance(timedelta(seconds=2))  # type: ignore[attr-defined]
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def spend(key: str, units: int) -> None:
        try:
            results[key] = lz.consume_usage("user_1", units, idempotency_key=key)
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    waiters = [threading.Thread(target=spend, args=("k2", 20)),
               threading.Thread(target=spend, args=("k1", 30))]
    with lz.store.transaction(lz.mode) as tx, lz.store.engine.connect() as probe:  # type: ignore[attr-defined]
        first = lz.consume_usage("user_1", 30, idempotency_key="k1")  # joins tx; sweeps h1
        assert first.usage_remaining == 70
        for waiter in waiters:
            waiter.start()
        deadline = time.monotonic() + 30
        while _waiting_on(tx._conn, backend, probe) < 2:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, ("the spends never queued", errors)
            # InnoDB refreshes what information_schema shows of its locks only when it was
            # not read for 0.1 s: polling faster would see the first answer for ever.
            time.sleep(0.2)
    for waiter in waiters:
        waiter.join(60)
    assert errors == []
    assert results["k2"].usage_remaining == 50, results  # type: ignore[attr-defined]
    assert results["k1"].replayed and results["k1"].usage_remaining == 70, results  # type: ignore[attr-defined]
    assert lz.entitlements("user_1")[0].usage_remaining == 50
    assert [e.action for e in lz.ledger("user_1")].count("expired") == 1
    assert lz.get_reservation(hold.id).status == "expired"  # type: ignore[union-attr]
    assert pack.id
