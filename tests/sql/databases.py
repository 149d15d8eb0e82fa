"""The SQL databases the tests run against, one private namespace per test session.

PostgreSQL (127.0.0.1:5432, user postgres) and MariaDB (127.0.0.1:3306, user root) are used for
real. Each pytest session migrates its own schema (PostgreSQL, inside database
``licenzy_test``) or database (MariaDB, ``licenzy_test_<pid>_<hex>``) once and empties its
tables before each test, so two sessions running at once never see each other's rows. SQLite
tests copy a migrated template file.

Without ``LICENZY_REQUIRE_SERVICES=1`` an unreachable server skips its tests with a message
saying how to run them; with it, they fail. A reachable server without the test database gets
it created (``licenzy_test``, or the database of the URL below). ``LICENZY_TEST_POSTGRES_URL`` and
``LICENZY_TEST_MYSQL_URL`` point the tests at other servers.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from licenzy_embed.stores import _sql_schema as schema
from licenzy_embed.stores.sqlalchemy import migrate

REQUIRE_SERVICES = os.environ.get("LICENZY_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get(
    "LICENZY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/licenzy_test")
MYSQL_URL = os.environ.get(
    "LICENZY_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/licenzy_test")

HOW_TO_RUN = {
    "postgres": "start PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) or set "
                "LICENZY_TEST_POSTGRES_URL; `.ci/run` starts it and runs the suite",
    "mysql": "start MariaDB on 127.0.0.1:3306 (user root, empty password) or set "
             "LICENZY_TEST_MYSQL_URL; `.ci/run` starts it and runs the suite",
}
_TABLES = [t.name for t in schema.metadata.sorted_tables]
LICENZY_TABLES = set(_TABLES)


def tables(url: str) -> set[str]:
    """The names of the tables in the database at ``url``, read afresh."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def unreachable(backend: str, reason: str) -> NoReturn:
    message = f"{backend} server not reachable ({reason}); to run these tests, " \
              f"{HOW_TO_RUN[backend]}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} [LICENZY_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(message)


def cannot_create(backend: str, database: str, reason: str) -> NoReturn:
    message = (f"{backend} server reachable, but the test database {database!r} is missing "
               f"and could not be created ({reason}); create it, or grant the test user "
               "CREATE, or point the tests elsewhere with LICENZY_TEST_POSTGRES_URL / "
               "LICENZY_TEST_MYSQL_URL")
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} [LICENZY_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(message)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class Server:
    """One database server: reachability (checked once), and namespaces on it."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = make_url(url)
        self._lock = threading.RLock()
        self._problem: str | None = None
        self._checked = False
        self._unreachable = False
        self._session_url: str | None = None
        self._namespaces: list[str] = []

    # -- admin connections
    def _admin_engine(self) -> sa.Engine:
        # The server's own database, never the test database (which may not exist yet).
        # ``URL.set(database=None)`` would keep the old name: None there means "unchanged".
        if self.backend == "postgres":
            target = self.url.set(database="postgres")
        else:
            target = self.url._replace(database=None)
        args = {"connect_timeout": 5}
        return sa.create_engine(target, isolation_level="AUTOCOMMIT", connect_args=args,
                                poolclass=sa.pool.NullPool)

    def admin(self, sql: str) -> None:
        engine = self._admin_engine()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()

    def require(self) -> None:
        """Skip (or fail) the calling test when the server is down."""
        with self._lock:
            if not self._checked:
                self._checked = True
                try:
                    self._reach()
                except Exception as exc:  # any failure to connect means "not reachable"
                    self._problem = _first_line(exc)
                    self._unreachable = True
                else:
                    try:
                        self._ensure_database()
                    except Exception as exc:  # reachable, but the database is not usable
                        self._problem = _first_line(exc)
        if self._problem is not None:
            if self._unreachable:
                unreachable(self.backend, self._problem)
            cannot_create(self.backend, str(self.url.database), self._problem)

    def _reach(self) -> None:
        engine = self._admin_engine()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        finally:
            engine.dispose()

    def _ensure_database(self) -> None:
        name = self.url.database
        engine = self._admin_engine()
        try:
            with engine.connect() as conn:
                if self.backend == "postgres":
                    found = conn.exec_driver_sql(
                        "SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}
                    ).first()
                    if found is None:
                        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                else:
                    conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}`")
        finally:
            engine.dispose()

    # -- namespaces
    def new_namespace(self, tag: str, *, charset: str = "utf8mb4") -> str:
        """A URL to a new, empty schema (PostgreSQL) or database (MariaDB, with ``charset``
        as its default), dropped at exit."""
        self.require()
        if not self._namespaces:
            self._drop_stale()
        name = f"lz_{tag}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        if self.backend == "postgres":
            self._scoped_engine_sql(f'CREATE SCHEMA "{name}"')
            url = self.url.update_query_dict({"options": f"-csearch_path={name}"})
        else:
            self.admin(f"CREATE DATABASE `{name}` CHARACTER SET {charset}")
            url = self.url.set(database=name)
        self._namespaces.append(name)
        if len(self._namespaces) == 1:
            atexit.register(self._drop_all)
        return _render(url)

    def _drop_stale(self) -> None:
        """Drop what test sessions that were killed (no atexit) left behind on a local server:
        namespaces named after a process id that no longer runs here."""
        if self.url.host not in ("127.0.0.1", "localhost"):
            return
        if self.backend == "postgres":
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
            query = "SELECT nspname FROM pg_namespace WHERE nspname LIKE %(pattern)s"
        else:
            engine = self._admin_engine()
            query = "SELECT schema_name FROM information_schema.schemata " \
                    "WHERE schema_name LIKE %(pattern)s"
        try:
            with engine.connect() as conn:
                names = conn.exec_driver_sql(query, {"pattern": "lz\\_%"}).scalars().all()
        finally:
            engine.dispose()
        for name in names:
            parts = str(name).split("_")
            if len(parts) == 4 and parts[2].isdigit() and not _running(int(parts[2])):
                if self.backend == "postgres":
                    self._scoped_engine_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                else:
                    self.admin(f"DROP DATABASE IF EXISTS `{name}`")

    def drop_namespace(self, url: str) -> None:
        parsed = make_url(url)
        if self.backend == "postgres":
            name = str(parsed.query["options"]).split("=", 1)[1]
            self._scoped_engine_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        else:
            name = str(parsed.database)
            self.admin(f"DROP DATABASE IF EXISTS `{name}`")
        if name in self._namespaces:
            self._namespaces.remove(name)

    def _scoped_engine_sql(self, sql: str) -> None:
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT",
                                  poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()

    def _drop_all(self) -> None:
        for name in list(self._namespaces):
            try:
                if self.backend == "postgres":
                    self._scoped_engine_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                else:
                    self.admin(f"DROP DATABASE IF EXISTS `{name}`")
            except Exception:  # the server went away; nothing left to clean
                pass
        self._namespaces.clear()

    def session_url(self) -> str:
        """This session's migrated namespace (created on first use)."""
        self.require()
        with self._lock:
            if self._session_url is None:
                url = self.new_namespace("s")
                migrate(url)
                self._session_url = url
            return self._session_url

    def fresh_url(self) -> str:
        """This session's namespace with every licenzy table emptied."""
        url = self.session_url()
        empty(url)
        return url


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def empty(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for table in reversed(_TABLES):
                conn.exec_driver_sql(f"DELETE FROM {table}")
    finally:
        engine.dispose()


SERVERS = {"postgres": Server("postgres", POSTGRES_URL), "mysql": Server("mysql", MYSQL_URL)}


class SQLiteFiles:
    """Fresh migrated SQLite files, copied from one template migrated once per session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._template: Path | None = None

    def _base(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="licenzy-sqlite-"))
            atexit.register(shutil.rmtree, self._dir, True)
        return self._dir

    def new_path(self) -> Path:
        """A path for a database file that does not exist yet."""
        with self._lock:
            return self._base() / f"{uuid.uuid4().hex}.db"

    def fresh_url(self) -> str:
        with self._lock:
            if self._template is None:
                template = self._base() / "template.db"
                migrate(f"sqlite:///{template}")  # engine disposed: WAL checkpointed
                self._template = template
            target = self._base() / f"{uuid.uuid4().hex}.db"
            shutil.copyfile(self._template, target)
        return f"sqlite:///{target}"

    @staticmethod
    def remove(url: str) -> None:
        path = make_url(url).database
        if path:
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)


SQLITE = SQLiteFiles()


def fresh_url(backend: str) -> str:
    """A URL to an empty, migrated database of ``backend`` (sqlite, postgres or mysql)."""
    if backend == "sqlite":
        return SQLITE.fresh_url()
    return SERVERS[backend].fresh_url()


def release(backend: str, url: str) -> None:
    if backend == "sqlite":
        SQLITE.remove(url)
