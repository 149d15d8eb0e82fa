"""Alembic environment of the bundled migrations.

Run by :func:`licenzy_embed.stores.sqlalchemy.migrate` (which hands over a connection in
``config.attributes["connection"]``) or by Alembic itself with ``sqlalchemy.url`` set. The
version history goes to ``licenzy_alembic_version`` so it never collides with the app's own.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from licenzy_embed.stores._sql_schema import VERSION_TABLE, metadata

config = context.config
_LOCK_NAME = "licenzy_migrate"
_PG_LOCK_KEY = 0x6C69636E7A79  # "licnzy": an arbitrary, fixed advisory lock number
_LOCK_WAIT_S = 600


def _configure(**options: object) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        **options,  # type: ignore[arg-type]
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
               dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    name = connection.dialect.name
    sqlite = name == "sqlite"
    # SQLite DDL is transactional once BEGIN is emitted (the store's engine listener does,
    # as BEGIN IMMEDIATE): one transaction then holds the write lock for the whole upgrade.
    _configure(connection=connection, render_as_batch=sqlite,
               transactional_ddl=True if sqlite else None)
    if name in ("mysql", "mariadb"):
        # MariaDB DDL commits implicitly, so serialise concurrent migrators with a named
        # session lock instead of a transaction.
        got = connection.exec_driver_sql(
            f"SELECT GET_LOCK('{_LOCK_NAME}', {_LOCK_WAIT_S})").scalar()
        connection.commit()
        if got != 1:
            raise RuntimeError("another process kept the licenzy migration lock too long")
    try:
        with context.begin_transaction():
            if name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            context.run_migrations()
    finally:
        if name in ("mysql", "mariadb"):
            connection.exec_driver_sql(f"SELECT RELEASE_LOCK('{_LOCK_NAME}')")
            connection.commit()


def run() -> None:
    if context.is_offline_mode():
        run_offline()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run_online(connection)
        return
    from licenzy_embed.stores.sqlalchemy import SQLITE_BEGIN_OPTION, create_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run licenzy-embed migrate --url …")
    engine = create_engine(url)
    try:
        with engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}).connect() as conn:
            run_online(conn)
            conn.commit()
    finally:
        engine.dispose()


run()
