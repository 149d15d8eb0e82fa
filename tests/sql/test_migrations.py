"""The bundled Alembic migrations: applied to an empty database on each backend they build
exactly the tables the store queries (``compare_metadata`` finds no difference); they run from
code and from several processes at once; they keep to their own version table. The
``licenzy-embed migrate`` command is tested in ``tests/cli``."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from licenzy_embed import IdempotencyConflict, Licenzy
from licenzy_embed.stores import _sql_schema as schema
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore, alembic_config, migrate
from licenzy_embed.testing import FrozenClock

from ..conftest import START, catalog
from . import _workers as workers
from .databases import LICENZY_TABLES, SERVERS, tables

# The newest revision, read from the migrations themselves (not named here, so that adding one
# changes nothing in this file).
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def differences(url: str) -> list[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True,
                "include_object": lambda obj, name, kind, reflected, other: not (
                    kind == "table" and name not in LICENZY_TABLES),
            })
            return list(compare_metadata(context, schema.metadata))
    finally:
        engine.dispose()


def run_sql(url: str, sql: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def test_migrations_build_the_models_on_an_empty_database(empty_url: str) -> None:
    assert tables(empty_url) == set()
    assert migrate(empty_url) == HEAD
    assert tables(empty_url) == LICENZY_TABLES | {schema.VERSION_TABLE}
    assert differences(empty_url) == []

    # The comparison is not blind: a missing index and a narrower column are both noticed.
    run_sql(empty_url, "DROP INDEX ix_licenzy_holds_expiry"
            + (" ON licenzy_holds" if empty_url.startswith("mysql") else ""))
    found = differences(empty_url)
    assert [d[0] for d in found] == ["add_index"], found
    assert found[0][1].name == "ix_licenzy_holds_expiry"

    # Down to nothing and up again.
    engine = sa.create_engine(empty_url, poolclass=sa.pool.NullPool)
    config = alembic_config()
    try:
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
            conn.commit()
    finally:
        engine.dispose()
    assert tables(empty_url) == {schema.VERSION_TABLE}
    assert migrate(empty_url) == HEAD
    assert differences(empty_url) == []


def test_migrating_again_changes_nothing(empty_url: str) -> None:
    migrate(empty_url)
    store = SQLAlchemyStore(empty_url)
    try:
        with store.transaction("test") as tx:
            tx.insert_customer(_customer())
        assert migrate(empty_url) == HEAD
        with store.transaction("test") as tx:
            assert tx.get_customer("user_1") == _customer()
    finally:
        store.close()


def _customer() -> Any:
    from datetime import datetime, timezone

    from licenzy_embed.records import CustomerLink

    return CustomerLink("test", "user_1", "cus_1", datetime(2026, 3, 1, tzinfo=timezone.utc))


@pytest.mark.slow
def test_several_processes_migrating_at_once_agree(empty_url: str) -> None:
    results = workers.run(workers.migrate_together, [(empty_url,) for _ in range(4)])
    assert results == [HEAD] * 4
    assert differences(empty_url) == []


def test_create_tables_applies_the_migrations(empty_url: str) -> None:
    store = SQLAlchemyStore(empty_url, create_tables=True)
    store.close()
    assert differences(empty_url) == []
    assert migrate(empty_url) == HEAD  # recorded as migrated: upgrades start from here


def test_the_apps_own_tables_and_alembic_history_are_left_alone(empty_url: str) -> None:
    run_sql(empty_url, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    run_sql(empty_url, "INSERT INTO alembic_version VALUES ('app_rev_42')")
    run_sql(empty_url, "CREATE TABLE app_orders (id INTEGER PRIMARY KEY)")
    migrate(empty_url)
    engine = sa.create_engine(empty_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql(
                "SELECT version_num FROM alembic_version").scalars().all() == ["app_rev_42"]
            assert conn.exec_driver_sql(
                f"SELECT version_num FROM {schema.VERSION_TABLE}").scalars().all() == [HEAD]
    finally:
        engine.dispose()
    assert {"app_orders", "alembic_version"} <= tables(empty_url)


@pytest.mark.mysql
def test_on_a_latin1_mariadb_database_the_tables_are_innodb_and_utf8mb4() -> None:
    server = SERVERS["mysql"]
    url = server.new_namespace("latin1", charset="latin1")
    try:
        migrate(url)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT table_name, engine, table_collation FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name LIKE %(p)s",
                    {"p": "licenzy\\_%"}).all()
        finally:
            engine.dispose()
        assert {r[0] for r in rows} == LICENZY_TABLES | {schema.VERSION_TABLE}
        assert all(r[1] == "InnoDB" and r[2].startswith("utf8mb4") for r in rows
                   if r[0] in LICENZY_TABLES), rows
        store = SQLAlchemyStore(url)
        try:
            lz = Licenzy(store=store, products=catalog(), clock=FrozenClock(START))
            lz.grant("user_1", "CREDITS_100", reason="goodwill 🎁 für Jürgen")
            assert [e.reason for e in lz.ledger("user_1")] == ["goodwill 🎁 für Jürgen"]
        finally:
            store.close()
    finally:
        server.drop_namespace(url)


def test_sql_output_can_go_to_a_stream() -> None:
    out = io.StringIO()
    assert migrate("postgresql+psycopg://nobody@127.0.0.1:1/x", sql=True, output=out) is None
    assert 'COLLATE "C"' in out.getvalue()  # byte-wise keys on PostgreSQL


def test_a_database_at_0002_upgrades_to_meters_with_nothing_lost(empty_url: str) -> None:
    """Rows written at revision 0002 (one pool of units per entitlement) answer the same
    access checks and balances after 0003, now as meter ``units``; a hold taken before the
    upgrade still commits, and a settled one stays settled."""
    assert migrate(empty_url, "0002") == "0002"
    t0 = START
    ent = {"mode": "test", "kind": "usage_pack", "status": "active", "source": "stripe",
           "created_at": t0, "updated_at": t0, "expires_at": None, "grace_until": None,
           "prior_status": None, "period_key": "purchase", "quantity": 1,
           "stripe_customer_id": None, "stripe_subscription_id": None,
           "stripe_checkout_session_id": None, "stripe_payment_intent_id": None,
           "access_open": True, "access_until": None, "requires_units": True}
    rows = [
        # a pack with 60 left of 100 (30 spent, 10 held), an exhausted pack, a metered
        # subscription, an unmetered one and a time pass of another subject
        ent | {"id": "ent_pack", "subject_ref": "alice", "product_code": "CREDITS_100",
               "usage_remaining": 60, "units_granted": 100},
        ent | {"id": "ent_empty", "subject_ref": "bob", "product_code": "CREDITS_100",
               "usage_remaining": 0, "units_granted": 100},
        ent | {"id": "ent_sub", "subject_ref": "carol", "product_code": "PRO_MONTHLY",
               "kind": "subscription", "requires_units": False, "period_key": "1767225600",
               "usage_remaining": 400, "units_granted": 1000},
        ent | {"id": "ent_basic", "subject_ref": "dave", "product_code": "BASIC_MONTHLY",
               "kind": "subscription", "requires_units": False, "period_key": None,
               "usage_remaining": None, "units_granted": None},
        ent | {"id": "ent_pass", "subject_ref": "erin", "product_code": "LIFETIME",
               "kind": "time_pass", "requires_units": False,
               "usage_remaining": None, "units_granted": None},
    ]
    hold = {"mode": "test", "subject_ref": "alice", "units": 10,
            "allocations": '[["ent_pack", 10]]', "created_at": t0,
            "expires_at": t0 + timedelta(minutes=5), "committed_units": None,
            "settled_at": None}
    engine = sa.create_engine(empty_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.table("licenzy_entitlements", *[sa.column(c) for c in rows[0]])
                         .insert(), rows)
            conn.execute(sa.table("licenzy_holds", *[sa.column(c) for c in hold | {
                "id": "", "idempotency_key": "", "status": ""}]).insert(), [
                hold | {"id": "hold_open", "idempotency_key": "job-1", "status": "held"},
                hold | {"id": "hold_done", "idempotency_key": "job-0", "status": "committed",
                        "committed_units": 10, "settled_at": t0}])
            conn.execute(sa.table("licenzy_usage_records", *[sa.column(c) for c in (
                "mode", "subject_ref", "idempotency_key", "units", "allocations",
                "usage_remaining", "created_at")]).insert(), [{
                    "mode": "test", "subject_ref": "alice", "idempotency_key": "spent",
                    "units": 20, "allocations": '[["ent_pack", 20]]', "usage_remaining": 70,
                    "created_at": t0}])
            conn.execute(sa.table("licenzy_ledger", *[sa.column(c) for c in (
                "id", "mode", "subject_ref", "action", "source", "reason", "at",
                "entitlement_id", "units_delta", "status", "reference")]).insert(), [{
                    "id": "led_1", "mode": "test", "subject_ref": "alice",
                    "action": "consumed", "source": "runtime", "reason": "usage consumed",
                    "at": t0, "entitlement_id": "ent_pack", "units_delta": -20,
                    "status": None, "reference": "spent"}])
    finally:
        engine.dispose()

    assert migrate(empty_url) == HEAD
    assert differences(empty_url) == []
    lz = workers.licenzy(empty_url, clock=FrozenClock(START + timedelta(minutes=1)))
    try:
        answers = {s: bool(lz.check_access(s)) for s in ("alice", "bob", "carol", "dave",
                                                         "erin", "nobody")}
        assert answers == {"alice": True, "bob": False, "carol": True, "dave": True,
                           "erin": True, "nobody": False}
        assert bool(lz.check_access("alice", "units")) and not lz.check_access("bob", "units")
        meters = {e.id: (e.usage_remaining, e.meters)
                  for s in ("alice", "bob", "carol", "dave", "erin") for e in lz.entitlements(s)}
        assert meters == {"ent_pack": (60, {"units": 60}), "ent_empty": (0, {"units": 0}),
                          "ent_sub": (400, {"units": 400}), "ent_basic": (None, {}),
                          "ent_pass": (None, {})}
        # The old key replays its first answer; the old hold commits (partly) and gives the
        # rest back; the settled one is not settled again.
        assert lz.consume_usage("alice", 20, idempotency_key="spent").replayed
        with pytest.raises(IdempotencyConflict):
            lz.consume_usage("alice", 21, idempotency_key="spent")
        reservation = lz.get_reservation("hold_open")
        assert reservation is not None and reservation.meter == "units"
        assert reservation.commit(4).usage_remaining == 66
        done = lz.get_reservation("hold_done")
        assert done is not None and done.status == "committed"
        assert lz.consume_usage("alice", 66, idempotency_key="rest").usage_remaining == 0
        assert not lz.check_access("alice")
        assert {e.meter for e in lz.ledger("alice")} == {"units"}
    finally:
        lz.store.close()
