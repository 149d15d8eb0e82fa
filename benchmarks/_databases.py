"""The benchmark's databases: a private, migrated namespace per run on each store (a SQLite
file, a PostgreSQL schema, a MariaDB database), dropped afterwards, and bulk loading straight
into the tables for the scale section."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from licenzy_embed import InMemoryStore
from licenzy_embed.stores import _sql_schema as schema
from licenzy_embed.stores.base import Store
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

PG_URL = os.environ.get("LICENZY_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/licenzy_test")
MY_URL = os.environ.get("LICENZY_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/licenzy_test")
STORES = ("memory", "sqlite", "postgresql", "mariadb")
SQL_STORES = STORES[1:]


def server_versions() -> dict[str, str]:
    found = {}
    for name, url, query in (("PostgreSQL", PG_URL, "SELECT version()"),
                             ("MariaDB", MY_URL, "SELECT CONCAT('MariaDB ', VERSION())")):
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                found[name] = str(conn.exec_driver_sql(query).scalar()).split(" on ")[0]
        except sa.exc.SQLAlchemyError as exc:
            found[name] = f"unavailable ({type(exc).__name__})"
        finally:
            engine.dispose()
    return found


@contextmanager
def namespace(store: str) -> Iterator[str]:
    """A URL to a new, migrated, empty database of ``store`` (not "memory")."""
    name = f"licenzy_bench_{uuid.uuid4().hex[:10]}"
    if store == "sqlite":
        path = f"/tmp/{name}.db"
        url = f"sqlite:///{path}"
        SQLAlchemyStore(url, create_tables=True).close()
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
        return
    base = PG_URL if store == "postgresql" else MY_URL
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    if store == "postgresql":
        create, drop = f'CREATE SCHEMA "{name}"', f'DROP SCHEMA "{name}" CASCADE'
        url = make_url(base).update_query_dict({"options": f"-csearch_path={name}"})
    else:
        create = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        drop = f"DROP DATABASE `{name}`"
        url = make_url(base).set(database=name)
    text_url = url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(create)
    try:
        SQLAlchemyStore(text_url, create_tables=True).close()
        yield text_url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(drop)
        admin.dispose()


@contextmanager
def open_store(store: str) -> Iterator[tuple[Store, str | None]]:
    """A fresh store of ``store`` and its URL (None in memory), closed afterwards."""
    if store == "memory":
        yield InMemoryStore(), None
        return
    with namespace(store) as url:
        built = SQLAlchemyStore(url)
        try:
            yield built, url
        finally:
            built.close()


def plain_engine(url: str) -> sa.Engine:
    """The floor's engine: SQLAlchemy's defaults (a pool, no pre-ping, the driver's own
    transaction handling), nothing of the store's."""
    return sa.create_engine(url)


# ---------------------------------------------------------------------------- bulk loading
def _db_value(column: sa.Column[Any], value: Any, dialect: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(column.type, sa.Boolean):
        return bool(value) if dialect == "postgresql" else int(bool(value))
    if isinstance(value, datetime):
        if dialect == "postgresql":
            return value
        naive = value.replace(tzinfo=None)  # template rows come back aware, in UTC
        if dialect == "sqlite":
            return naive.strftime("%Y-%m-%d %H:%M:%S.%f")
        return naive
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    return value


def template_row(engine: sa.Engine, table: sa.Table, **where: Any) -> dict[str, Any]:
    """One row the library wrote, read back through the schema's types."""
    with engine.connect() as conn:
        query = sa.select(table).where(*(table.c[k] == v for k, v in where.items())).limit(1)
        row = conn.execute(query).mappings().first()
    assert row is not None, (table.name, where)
    return dict(row)


def bulk_insert(engine: sa.Engine, table: sa.Table, template: dict[str, Any],
                varying: tuple[str, ...], values: Iterable[tuple[Any, ...]],
                batch: int = 20_000) -> int:
    """Insert copies of ``template`` whose ``varying`` columns take each tuple of ``values``,
    as fast as the driver allows: COPY on PostgreSQL, executemany elsewhere (PyMySQL turns it
    into multi-row INSERTs). The template is converted to driver values once."""
    dialect = engine.dialect.name
    columns = [table.c[name] for name in template]
    base = [_db_value(c, template[c.name], dialect) for c in columns]
    slots = [list(template).index(name) for name in varying]
    names = ", ".join(c.name for c in columns)
    count = 0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if dialect == "sqlite":
            # The store runs its SQLite connections in autocommit (it issues BEGIN itself):
            # without a transaction every row would be its own commit and fsync.
            cursor.execute("BEGIN IMMEDIATE")
        pending: list[tuple[Any, ...]] = []

        def flush() -> None:
            if not pending:
                return
            if dialect == "postgresql":
                with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                    for row in pending:
                        copy.write_row(row)
            else:
                mark = "?" if dialect == "sqlite" else "%s"
                cursor.executemany(
                    f"INSERT INTO {table.name} ({names}) VALUES "
                    f"({', '.join(mark for _ in columns)})", pending)
            pending.clear()

        for changed in values:
            row = base.copy()
            for slot, value in zip(slots, changed, strict=True):
                row[slot] = value
            pending.append(tuple(row))
            count += 1
            if len(pending) >= batch:
                flush()
        flush()
        raw.commit()
    finally:
        raw.close()
    return count


def analyze(engine: sa.Engine) -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would gather soon after."""
    dialect = engine.dialect.name
    with engine.connect() as conn:
        for table in schema.TABLES:
            if dialect in ("postgresql", "sqlite"):
                conn.exec_driver_sql(f"ANALYZE {table.name}")
            else:
                conn.exec_driver_sql(f"ANALYZE TABLE {table.name}").all()
        conn.commit()


def explain(engine: sa.Engine, statement: str, parameters: Any) -> str:
    """The plan of one statement the store sent, in one line."""
    dialect = engine.dialect.name
    with engine.connect() as conn:
        if dialect == "postgresql":
            # Judge the index, not the size: tiny tables would be read whole, big ones not.
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            nodes = re.findall(r"((?:Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)"
                               r"(?: using \w+)?(?: on \w+)?)", " ".join(str(r[0]) for r in rows))
            return "; ".join(nodes)
        if dialect == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return " / ".join(str(r[-1]) for r in rows)
        rows2 = conn.exec_driver_sql("EXPLAIN " + statement, parameters).mappings().all()
        return " / ".join(f"{r['table']}: key={r['key']} rows={r['rows']} ({r['Extra']})"
                          for r in rows2)


def capture(engine: sa.Engine) -> tuple[list[tuple[str, Any]], Callable[[], None]]:
    """Record every statement sent through ``engine``; call the second value to stop."""
    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", listener)
    return seen, lambda: sa.event.remove(engine, "before_cursor_execute", listener)
