"""The bundled Alembic migrations: applied to an empty database on each backend they build
exactly the tables the store queries (``compare_metadata`` finds no difference); they run from
code and from several processes at once; they keep to their own version table. The
``licenzy-embed migrate`` command is tested in ``tests/cli``."""

from __future__ import annotations

import io
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from licenzy_embed import Licenzy
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
