"""``SQLAlchemyStore``: entitlements in the app's own SQL database (SQLite, PostgreSQL,
MariaDB/MySQL), on SQLAlchemy 2.x Core.

How each guarantee of the store Protocol (``stores/base.py``) is met in SQL:

* **Serialised spends.** ``lock_subject`` is ``SELECT … FOR UPDATE`` over the subject's
  entitlement rows, in one order (created_at, id) so two transactions never lock them in
  opposite orders; locking the subject again in the same transaction re-reads the rows it
  holds and never takes a row committed since (that would be a lock out of order).
  PostgreSQL and MariaDB run write transactions at READ COMMITTED: a
  transaction that waited for the lock then reads the rows, idempotency records and holds the
  other one committed, instead of a snapshot from before it waited. SQLite has no row locks:
  every write transaction starts with ``BEGIN IMMEDIATE`` (taking the database's one write
  lock up front), in WAL mode with a busy timeout, so writers from many processes queue
  instead of failing with "database is locked".
* **Units move only by relative, conditional updates** (``usage_remaining + :delta >= 0`` in
  the WHERE clause), so no value read earlier is ever written back.
* **Unique keys answer duplicates.** An insert whose key exists — also when a concurrent
  transaction inserted it a moment earlier — raises ``DuplicateKey`` and leaves the
  transaction usable: ``INSERT … ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite (a failed
  statement would abort a PostgreSQL transaction; this costs no savepoint round trips), and
  on MariaDB the duplicate-key error, which only undoes the one statement.
* **Outages fail closed.** Any failure to reach the database (refused connection, dropped
  connection, lock wait timeout, missing tables) raises ``StoreUnavailable``; the transaction
  is rolled back by the database, so nothing is half written. Its message is plain; the
  driver's text goes to its ``detail`` and the log.
* **Every wait is bounded** (connect, statement, lock, pool checkout; see ``create_engine``),
  well under a server's worker timeout, so a sick database answers 503 instead of holding a
  worker until it is killed — or answering an error and charging later.

Tables are created by the Alembic migrations shipped in ``licenzy_embed/migrations``:
:func:`migrate` (or ``licenzy-embed migrate --url …``) applies them; ``create_tables=True``
applies them when the store is built, which suits quick starts and tests.
"""

from __future__ import annotations

try:
    import sqlalchemy as sa
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "licenzy_embed.stores.sqlalchemy needs SQLAlchemy: "
        "pip install 'licenzy-embed[sqlalchemy]' (or [postgres] / [mysql] with a driver)"
    ) from exc

import dataclasses
import json
import logging
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Executable, Select

from ..entitlement import EntitlementRecord
from ..errors import StoreUnavailable
from ..ledger import LedgerEntry
from ..outbox import DELIVERED, PENDING, OutboxRecord, data_json
from ..records import (
    Allocation,
    CheckoutAttempt,
    CustomerLink,
    HoldRecord,
    ProcessedEvent,
    UsageRecord,
    Watermark,
)
from ..retention import HOLDS, KINDS, OUTBOX, PROCESSED_EVENTS, SETTLED, USAGE_RECORDS
from . import _sql_schema as schema
from ._sql_probe import Probe
from .base import DuplicateKey, LockedSubject, UnitsConflict

__all__ = ["SQLAlchemyStore", "create_engine", "migrate"]

# Bounded waits, in seconds, all well under a server's worker timeout (gunicorn: 30 s) so that a
# sick database answers 503 before the worker is killed; see the README's storage section.
CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_S = 10.0
LOCK_TIMEOUT_S = 5.0
POOL_TIMEOUT_S = 5.0
SQLITE_BUSY_TIMEOUT_S = 10.0
# The client gives up on a connection that stopped answering this long after the server's own
# statement timeout should have answered, so a live server's (clean) error always comes first.
CLIENT_GRACE_S = 1.0
# A pooled server connection idle this long is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE_S = 1.0
# Execution options read by the SQLite BEGIN listener.
SQLITE_BEGIN_OPTION = "licenzy_sqlite_begin"
SQLITE_BUSY_OPTION = "licenzy_sqlite_busy_timeout"
SUPPORTED = ("sqlite", "postgresql", "mysql", "mariadb")
_DRIVER_EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}
_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

logger = logging.getLogger("licenzy_embed")


def _seconds(name: str, value: object, *, zero: bool = False) -> float:
    """``value`` as a number of seconds, or a ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, not {value!r}")
    return float(value)


# ---------------------------------------------------------------------------- engines
def _is_memory_sqlite(engine_or_url: Any) -> bool:
    url = make_url(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url.url
    return bool(url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def create_engine(url: str, *, connect_timeout: float | None = CONNECT_TIMEOUT_S,
                  statement_timeout: float | None = STATEMENT_TIMEOUT_S,
                  lock_timeout: float | None = LOCK_TIMEOUT_S, **kwargs: Any) -> Engine:
    """An engine with the settings the store's guarantees rely on: READ COMMITTED, a liveness
    ping on a server for a connection that sat idle in the pool (see ``_ping_when_idle``; not
    on SQLite: a local file has no server to drop the connection), and bounded waits
    (seconds; None leaves the driver's own, unbounded, wait).

    An app that shares one engine with the store builds it here, so the store's bounded waits
    hold on it too (they then also apply to the app's own queries).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise ValueError(f"unsupported database {backend!r}: use SQLite, PostgreSQL or "
                         "MariaDB/MySQL")
    for name, value in (("connect_timeout", connect_timeout),
                        ("statement_timeout", statement_timeout),
                        ("lock_timeout", lock_timeout)):
        if value is not None:
            _seconds(name, value)
    options: dict[str, Any] = {}
    driver_args: dict[str, Any] = {}
    if backend in ("postgresql", "mysql", "mariadb"):
        options["isolation_level"] = "READ COMMITTED"
    if backend == "sqlite":
        driver_args = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        if _is_memory_sqlite(url):
            # One shared connection, so every thread sees the same in-memory database; the
            # store serialises its use (see SQLAlchemyStore._serial).
            options["poolclass"] = StaticPool
            driver_args["check_same_thread"] = False
    if "poolclass" not in options and "poolclass" not in kwargs:
        # Waiting for a pooled connection is waiting for other requests: bounded too.
        options["pool_timeout"] = POOL_TIMEOUT_S
    user_args = dict(kwargs.pop("connect_args", {}))
    if backend == "postgresql":
        driver_args.update(_postgres_args(parsed, user_args, connect_timeout,
                                          statement_timeout, lock_timeout))
    elif backend in ("mysql", "mariadb"):
        driver_args.update(_mysql_args(connect_timeout, statement_timeout))
    connect_args = {**driver_args, **user_args}
    options.update(kwargs)
    if connect_args:
        options["connect_args"] = connect_args
    try:
        engine = sa.create_engine(url, **options)
    except ImportError as exc:
        extra = _DRIVER_EXTRAS.get(backend, "sqlalchemy")
        raise ImportError(
            f"the database driver for {parsed.drivername!r} is not installed: "
            f"pip install 'licenzy-embed[{extra}]'"
        ) from exc
    if backend == "postgresql" and statement_timeout is not None and (
            engine.dialect.driver == "psycopg"):
        _watch_psycopg(engine, statement_timeout + CLIENT_GRACE_S)
    if backend in ("mysql", "mariadb") and (statement_timeout or lock_timeout):
        _mysql_session_limits(engine, statement_timeout, lock_timeout)
    if backend != "sqlite" and not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_AFTER_IDLE_S)
    configure_engine(engine)
    return engine


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Ping a pooled connection before it is handed out only when it sat in the pool for at
    least ``idle_s``: a dead one is then replaced before any statement is sent (the pool's
    DisconnectionError protocol).

    Why not ``pool_pre_ping``: that pings on every checkout, one round trip more on every
    access check — on MariaDB it was a third of the check. Connections are dropped while
    they idle (``wait_timeout``, a proxy's idle limit, a failover); one in constant use is
    not pinged, and if its server went away in the last second its next statement fails
    instead: a read access check is retried once on a fresh connection, and a write answers
    ``StoreUnavailable`` (503) with nothing written, which the client (or Stripe) retries.
    """
    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["licenzy_idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("licenzy_idle_since", None)
        if since is None or time.monotonic() - since < idle_s:
            return  # just connected, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # any failure to answer a ping is a dead connection
            alive = False
        if not alive:
            raise sa.exc.DisconnectionError("the pooled connection did not answer a ping")

    event.listen(engine.pool, "checkin", checkin)
    event.listen(engine.pool, "checkout", checkout)


def _postgres_args(url: Any, user_args: dict[str, Any], connect_timeout: float | None,
                   statement_timeout: float | None,
                   lock_timeout: float | None) -> dict[str, Any]:
    """libpq settings: the connect timeout (whole seconds; libpq's minimum is 2), and the
    statement and lock timeouts as ``-c`` options of the connection's startup packet, so they
    cost no round trip. ``options`` already in the URL (a search_path…) come after ours."""
    args: dict[str, Any] = {}
    if connect_timeout is not None:
        args["connect_timeout"] = max(2, math.ceil(connect_timeout))
    settings = []
    if statement_timeout is not None:
        settings.append(f"-c statement_timeout={max(1, round(statement_timeout * 1000))}")
    if lock_timeout is not None:
        settings.append(f"-c lock_timeout={max(1, round(lock_timeout * 1000))}")
    if settings:
        existing = user_args.pop("options", None) or url.query.get("options")
        if isinstance(existing, tuple):
            existing = " ".join(existing)
        args["options"] = " ".join([*settings, *([existing] if existing else [])])
    return args


def _mysql_args(connect_timeout: float | None,
                statement_timeout: float | None) -> dict[str, Any]:
    """PyMySQL socket timeouts: a server that stops answering fails the read or write after
    the statement timeout (plus grace), which PyMySQL reports as a lost connection."""
    args: dict[str, Any] = {}
    if connect_timeout is not None:
        args["connect_timeout"] = connect_timeout
    if statement_timeout is not None:
        args["read_timeout"] = args["write_timeout"] = statement_timeout + CLIENT_GRACE_S
    return args


def _mysql_session_limits(engine: Engine, statement_timeout: float | None,
                          lock_timeout: float | None) -> None:
    """Set the server's own limits on each new connection (one statement, once per
    connection): ``innodb_lock_wait_timeout`` (whole seconds, at least 1) and the statement
    time limit, ``max_statement_time`` on MariaDB (seconds) or ``max_execution_time`` on MySQL
    (milliseconds, SELECTs only)."""

    def limit(dbapi_connection: Any, record: Any) -> None:
        settings = []
        if lock_timeout is not None:
            settings.append(f"innodb_lock_wait_timeout = {max(1, math.ceil(lock_timeout))}")
        if statement_timeout is not None:
            if "mariadb" in str(dbapi_connection.get_server_info()).lower():
                settings.append(f"max_statement_time = {statement_timeout:.6f}")
            else:
                settings.append(f"max_execution_time = {max(1, round(statement_timeout * 1000))}")
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET SESSION " + ", ".join(settings))
        finally:
            cursor.close()

    event.listen(engine, "connect", limit)


class _Watchdog:
    """Closes the socket of a connection whose wait for the server outlived its deadline.

    libpq has no read timeout: a server (or a network path) that stops answering leaves a
    query waiting for ever, and the server's statement_timeout cannot help when the server
    never got the query. One daemon thread keeps the deadlines of the waits in progress; at a
    deadline it shuts the socket down, which wakes the waiting thread with a closed connection
    (a disconnect SQLAlchemy then discards). Registering a wait costs a lock and a dict entry.
    """

    def __init__(self) -> None:
        self.after_fork()

    def after_fork(self) -> None:
        # Also in a forked child (a pre-forking server): the parent's thread and lock state
        # do not carry over, and the child's connections are its own.
        self._cond = threading.Condition()
        self._waits: dict[int, tuple[float, int]] = {}  # token -> (deadline, fd)
        self._fired: set[int] = set()
        self._next = 0
        self._thread: threading.Thread | None = None

    def start(self, fd: int, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        with self._cond:
            self._next += 1
            token = self._next
            earliest = min((d for d, _ in self._waits.values()), default=math.inf)
            self._waits[token] = (deadline, fd)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="licenzy-embed-db-watchdog")
                self._thread.start()
            elif deadline < earliest:
                self._cond.notify()
        return token

    def stop(self, token: int) -> bool:
        """End a wait; True when the watchdog cut its connection."""
        with self._cond:
            self._waits.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, fd) in list(self._waits.items()):
                    if deadline <= now:
                        # Still registered, so the waiting thread has not returned and the
                        # fd is still its connection's: it cannot have been reused.
                        del self._waits[token]
                        self._fired.add(token)
                        _shut(fd)
                earliest = min((d for d, _ in self._waits.values()), default=None)
                self._cond.wait(None if earliest is None else max(0.0, earliest - now))


def _shut(fd: int) -> None:
    with suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.after_fork)
_WATCHED_CLASSES: dict[float, Any] = {}


def _watched_psycopg_class(seconds: float) -> Any:
    """A psycopg Connection whose every wait for the server (queries, commits, the pool's
    ping) is bounded by ``seconds`` (connecting is bounded by ``connect_timeout``)."""
    cached = _WATCHED_CLASSES.get(seconds)
    if cached is not None:
        return cached
    import psycopg

    class WatchedConnection(psycopg.Connection):
        def wait(self, *args: Any, **kwargs: Any) -> Any:
            token = _WATCHDOG.start(self.fileno(), seconds)
            try:
                result = super().wait(*args, **kwargs)
            except psycopg.Error as exc:
                if _WATCHDOG.stop(token):
                    raise psycopg.OperationalError(
                        f"no answer from the database server within {seconds:g} s; the "
                        "connection was closed") from exc
                raise
            _WATCHDOG.stop(token)
            return result

    _WATCHED_CLASSES[seconds] = WatchedConnection
    return WatchedConnection


def _watch_psycopg(engine: Engine, seconds: float) -> None:
    connection_class = _watched_psycopg_class(seconds)

    def connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        return connection_class.connect(*cargs, **cparams)

    event.listen(engine, "do_connect", connect)


def configure_engine(engine: Engine) -> None:
    """Install the SQLite transaction listener on ``engine`` (once; a no-op elsewhere).

    pysqlite's own transaction handling never emits BEGIN before a SELECT and cannot emit
    BEGIN IMMEDIATE, so — following SQLAlchemy's recipe for SQLite transactions — the driver's
    handling is switched off and the listener emits BEGIN itself. Other connections of a
    shared engine get a plain (deferred) BEGIN, which only makes them properly transactional.
    """
    if engine.dialect.name == "sqlite" and not event.contains(engine, "begin", _sqlite_begin):
        event.listen(engine, "begin", _sqlite_begin)


def _sqlite_begin(conn: Connection) -> None:
    try:
        _sqlite_setup_and_begin(conn)
    except sqlite3.Error as exc:
        # SQLAlchemy does not wrap what an event listener raises; a locked database is an
        # OperationalError like any other, and the store maps it to StoreUnavailable.
        raise sa.exc.OperationalError("BEGIN", None, exc) from exc


def _sqlite_setup_and_begin(conn: Connection) -> None:
    pooled = conn.connection
    dbapi = pooled.dbapi_connection
    assert dbapi is not None
    options = conn.get_execution_options()
    busy_ms = int(options.get(SQLITE_BUSY_OPTION, SQLITE_BUSY_TIMEOUT_S) * 1000)
    if not pooled.info.get("licenzy_sqlite"):
        # Set up each DBAPI connection once (also those an app's engine pooled before the
        # store was built, which a "connect" listener would miss).
        dbapi.isolation_level = None
        cursor = dbapi.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()
        pooled.info["licenzy_sqlite"] = True
    if pooled.info.get("licenzy_busy_ms") != busy_ms:
        dbapi.execute(f"PRAGMA busy_timeout = {busy_ms}")
        pooled.info["licenzy_busy_ms"] = busy_ms
    begin = options.get(SQLITE_BEGIN_OPTION, "DEFERRED")
    if begin is None or dbapi.in_transaction:
        return  # a single-statement read runs in autocommit; it needs no transaction
    dbapi.execute(f"BEGIN {begin}")


# Driver codes of a wait that ran out: PostgreSQL lock_not_available and query_canceled
# (statement_timeout); MariaDB/MySQL lock wait timeout, max_statement_time,
# max_execution_time; SQLite busy. (A PyMySQL socket timeout and a PostgreSQL connection the
# watchdog cut are lost connections: OperationalError, so StoreUnavailable as well.)
_TIMED_OUT = {"55P03", "57014", 1205, 1969, 3024, 5}
_DEADLOCK = {"40P01", "40001", 1213}
_NO_TABLE = {"42P01", "42S02", 1146}
# What a client is told (``str(exc)``, the 503's body): plain, no host, port or driver text.
_BUSY = "the entitlement database did not answer in time; try again"
_DOWN = "the entitlement database is unavailable; try again later"


def _unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The ``StoreUnavailable`` a database error means, or None when it is not an outage.

    The driver's text (which names the host and port) and what an operator should do go to
    ``detail`` and the log, never to the message a client sees."""
    if isinstance(exc, sa.exc.DBAPIError) and not isinstance(exc, sa.exc.IntegrityError):
        orig = exc.orig
        codes = _codes(orig)
        text = (str(orig) if orig is not None else str(exc)).strip()
        if codes & _DEADLOCK:
            return StoreUnavailable(_BUSY, retryable=True,
                                    detail=f"the database broke a deadlock: {text}")
        if codes & _NO_TABLE or "no such table" in text:
            return StoreUnavailable(_DOWN, detail=(
                "the licenzy tables are missing: run `licenzy-embed migrate --url …` or "
                f"build the store with create_tables=True ({text})"))
        if codes & _TIMED_OUT or "database is locked" in text:
            return StoreUnavailable(_BUSY, detail=f"a database wait timed out: {text}")
        if exc.connection_invalidated or isinstance(
                exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            return StoreUnavailable(_DOWN, detail=f"the entitlement database failed: {text}")
        return None
    if isinstance(exc, sa.exc.TimeoutError):
        return StoreUnavailable(_BUSY, detail=f"no pooled connection came free in time: {exc}")
    if isinstance(exc, (sa.exc.DisconnectionError, sa.exc.PendingRollbackError,
                        sa.exc.ResourceClosedError)):
        return StoreUnavailable(_DOWN, detail=f"the entitlement database failed: {exc}")
    return None


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        mapped = _unavailable(exc)
        if mapped is None:
            raise
        # The details are logged here, once, where they are known; the exception carries
        # them in ``detail`` too, for an adapter or app that logs its own way.
        logger.log(logging.INFO if mapped.retryable else logging.WARNING,
                   "licenzy-embed: %s (%s)", mapped.message, mapped.detail)
        raise mapped from exc


def _codes(orig: BaseException | None) -> set[object]:
    """Every code a driver attached: SQLSTATE (psycopg, PyMySQL), errno (PyMySQL), extended
    result code (sqlite3). All of them, because SQLAlchemy 2.1 sets a generic SQLSTATE
    ("23000") on PyMySQL errors, so MySQL's own error number must be looked at too."""
    if orig is None:
        return set()
    codes = {getattr(orig, "sqlstate", None), getattr(orig, "sqlite_errorcode", None)}
    if orig.args and isinstance(orig.args[0], int):
        codes.add(orig.args[0])
    return codes - {None}


def _is_duplicate(exc: sa.exc.IntegrityError) -> bool:
    # PostgreSQL unique_violation; MySQL ER_DUP_ENTRY; SQLite UNIQUE / PRIMARY KEY.
    return bool(_codes(exc.orig) & {"23505", 1062, 2067, 1555}) or (
        "UNIQUE constraint failed" in str(exc.orig))


# ---------------------------------------------------------------------------- row mapping
def _allocations_json(allocations: Allocation) -> str:
    return json.dumps([[entitlement_id, units] for entitlement_id, units in allocations])


def _allocations(text: str) -> Allocation:
    return tuple((str(entitlement_id), int(units)) for entitlement_id, units in json.loads(text))


def _values(record: Any) -> dict[str, Any]:
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    if "allocations" in values:
        values["allocations"] = _allocations_json(values["allocations"])
    # An entitlement's meters are rows of their own table (``_meter_rows``).
    values.pop("balances", None)
    values.pop("grants", None)
    return values


def _meter_rows(record: EntitlementRecord, mode: str) -> list[dict[str, Any]]:
    return [{"entitlement_id": record.id, "mode": mode, "meter": meter,
             "usage_remaining": record.balances.get(meter, 0),
             "units_granted": record.grants.get(meter)}
            for meter in dict.fromkeys([*record.grants, *record.balances])]


def _entitlement(row: Mapping[Any, Any],
                 meters: Mapping[str, list[Mapping[Any, Any]]] | None = None) -> EntitlementRecord:
    values = dict(row)
    values["access_open"] = bool(values["access_open"])
    values["requires_units"] = bool(values["requires_units"])
    balances: dict[str, int] = {}
    grants: dict[str, int] = {}
    for m in (meters or {}).get(values["id"], ()):
        balances[m["meter"]] = int(m["usage_remaining"])
        if m["units_granted"] is not None:
            grants[m["meter"]] = int(m["units_granted"])
    return EntitlementRecord(**values, balances=balances, grants=grants)


def _meters_query(ids: list[str]) -> Executable:
    return (sa.select(_METERS).where(_METERS.c.entitlement_id.in_(ids))
            .order_by(_METERS.c.entitlement_id, _METERS.c.meter))


def _grouped(rows: Iterable[Mapping[Any, Any]]) -> dict[str, list[Mapping[Any, Any]]]:
    by_id: dict[str, list[Mapping[Any, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["entitlement_id"], []).append(row)
    return by_id


def _metered_ids(rows: list[Mapping[Any, Any]]) -> list[str]:
    """The rows whose entitlement has meters (``usage_remaining`` is their sum, None for
    none): only those need the second read."""
    return sorted(r["id"] for r in rows if r["usage_remaining"] is not None)


def _hold(row: Mapping[Any, Any]) -> HoldRecord:
    values = dict(row)
    values["allocations"] = _allocations(values["allocations"])
    return HoldRecord(**values)


def _usage(row: Mapping[Any, Any]) -> UsageRecord:
    values = dict(row)
    values["allocations"] = _allocations(values["allocations"])
    return UsageRecord(**values)


def _ledger(row: Mapping[Any, Any]) -> LedgerEntry:
    values = dict(row)
    values.pop("seq")
    return LedgerEntry(**values)


def _outbox(row: Mapping[Any, Any]) -> OutboxRecord:
    values = dict(row)
    values.pop("seq")
    values["data"] = json.loads(values["data"])
    values["delivered_to"] = tuple(json.loads(values["delivered_to"]))
    return OutboxRecord(**values)


_ENT = schema.entitlements
_HOLDS = schema.holds
_METERS = schema.entitlement_meters
_OUTBOX = schema.outbox
# "held" written into the SQL, not sent as a parameter: PostgreSQL plans a statement psycopg
# prepared (after five runs) once for any parameter values, and for ``status = $3`` it
# assumes a third of the holds match — enough for it to answer "does this subject have an
# expired hold?" with a sequential scan of every hold ever made (BENCHMARKS.md, "Fixed
# here"). With the literal it knows "held" is rare and uses the index.
_HELD = sa.literal("held", _HOLDS.c.status.type, literal_execute=True)
_PENDING = sa.literal(PENDING, _OUTBOX.c.status.type, literal_execute=True)  # the same, due events

# The hot path's statement, built once: constructing a SELECT's expression tree on every call
# cost more than the round trip to the database itself.
_HAS_ACCESS = (
    sa.select(sa.literal(1).label("allowed"))
    .where(
        _ENT.c.mode == sa.bindparam("mode"),
        _ENT.c.subject_ref == sa.bindparam("subject_ref"),
        _ENT.c.access_open == sa.true(),
        sa.or_(_ENT.c.access_until.is_(None), _ENT.c.access_until > sa.bindparam("now")),
        sa.or_(_ENT.c.requires_units == sa.false(), _ENT.c.usage_remaining > 0),
    )
    .limit(1)
)
_ENT_UPDATABLE = [c.name for c in _ENT.c if c.name not in ("id", "mode")]

# The spend path's statements, built once for the same reason (their parameters are named
# ``b_*``, apart from the column names an INSERT or an UPDATE's SET takes).
_LOCK_SUBJECT = (
    sa.select(_ENT)
    .where(_ENT.c.mode == sa.bindparam("b_mode"), _ENT.c.subject_ref == sa.bindparam("b_subject"))
    .order_by(_ENT.c.created_at, _ENT.c.id)
    .with_for_update()
)
_ADJUST_METER = _METERS.update().where(
    _METERS.c.mode == sa.bindparam("b_mode"), _METERS.c.entitlement_id == sa.bindparam("b_id"),
    _METERS.c.meter == sa.bindparam("b_meter"),
    _METERS.c.usage_remaining + sa.bindparam("b_delta") >= 0,
).values(usage_remaining=_METERS.c.usage_remaining + sa.bindparam("b_delta"))
_ADJUST_METER_RETURNING = _ADJUST_METER.returning(_METERS.c.usage_remaining)
_METER_LEFT = sa.select(_METERS.c.usage_remaining).where(
    _METERS.c.entitlement_id == sa.bindparam("b_id"), _METERS.c.meter == sa.bindparam("b_meter"))
_ADJUST_ENTITLEMENT = _ENT.update().where(
    _ENT.c.mode == sa.bindparam("b_mode"), _ENT.c.id == sa.bindparam("b_id"),
).values(usage_remaining=_ENT.c.usage_remaining + sa.bindparam("b_delta"),
         updated_at=sa.bindparam("b_now", type_=_ENT.c.updated_at.type))
# Both decrements in one statement where the database allows it. PostgreSQL: the meter's
# UPDATE … RETURNING as a data-modifying CTE, the entitlement's UPDATE conditional on it having
# matched. MariaDB: a multi-table UPDATE of both rows (it has no UPDATE … RETURNING, so the
# new balance is still read back). SQLite (whose CTEs cannot hold DML) runs the two.
_METER_STEP = _ADJUST_METER_RETURNING.cte("meter_step")
_ADJUST_BOTH_PG = sa.select(_METER_STEP.c.usage_remaining).add_cte(
    _ENT.update().where(
        _ENT.c.mode == sa.bindparam("b_mode"), _ENT.c.id == sa.bindparam("b_id"),
        sa.exists(sa.select(_METER_STEP.c.usage_remaining)),
    ).values(usage_remaining=_ENT.c.usage_remaining + sa.bindparam("b_delta"),
             updated_at=sa.bindparam("b_now", type_=_ENT.c.updated_at.type))
    .cte("entitlement_step"))
_ADJUST_BOTH_MYSQL = _METERS.update().where(
    _METERS.c.mode == sa.bindparam("b_mode"), _METERS.c.entitlement_id == sa.bindparam("b_id"),
    _METERS.c.meter == sa.bindparam("b_meter"),
    _METERS.c.usage_remaining + sa.bindparam("b_delta") >= 0,
    _ENT.c.mode == sa.bindparam("b_mode"), _ENT.c.id == _METERS.c.entitlement_id,
).values({_METERS.c.usage_remaining: _METERS.c.usage_remaining + sa.bindparam("b_delta"),
          _ENT.c.usage_remaining: _ENT.c.usage_remaining + sa.bindparam("b_delta"),
          _ENT.c.updated_at: sa.bindparam("b_now", type_=_ENT.c.updated_at.type)})
_USAGE_RECORD = sa.select(schema.usage_records).where(
    schema.usage_records.c.mode == sa.bindparam("b_mode"),
    schema.usage_records.c.subject_ref == sa.bindparam("b_subject"),
    schema.usage_records.c.idempotency_key == sa.bindparam("b_key"))
_SUBJECT_EXPIRED_HOLDS = sa.select(_HOLDS).where(
    _HOLDS.c.mode == sa.bindparam("b_mode"), _HOLDS.c.status == _HELD,
    _HOLDS.c.expires_at <= sa.bindparam("b_now"),
    _HOLDS.c.subject_ref == sa.bindparam("b_subject"),
).order_by(_HOLDS.c.created_at, _HOLDS.c.id)
_LEDGER_INSERT = schema.ledger.insert()

# The read after a usage operation's lock: the locked rows' meters, the usage record or the
# hold asked for, and whether the subject has expired holds, in one statement. A one-row
# derived table LEFT JOINs each (there is always a row, and one per meter row: the usage
# record and the hold are at most one row each); columns are labelled by table.
_METER_LABELS = [f"m_{c.name}" for c in _METERS.c]
_USAGE_LABELS = [f"u_{c.name}" for c in schema.usage_records.c]
_HOLD_LABELS = [f"h_{c.name}" for c in _HOLDS.c]
_POST_LOCK_READS: dict[tuple[bool, str | None], Executable] = {}


def _post_lock_read(usage: bool, hold_by: str | None) -> Executable:
    """The post-lock read (``SQLTransaction.lock_for_usage``), with the usage record of
    ``b_key`` when ``usage``, and the hold of id ``b_hold`` (``hold_by="id"``) or of the
    subject's key ``b_hold`` (``"key"``); built once per shape."""
    cached = _POST_LOCK_READS.get((usage, hold_by))
    if cached is not None:
        return cached
    # The one row carries the subject, so each join's condition names it (SQLAlchemy's
    # MySQL compiler warns of a cartesian product for a join whose ON does not).
    subject = sa.select(sa.bindparam("b_mode", type_=_ENT.c.mode.type).label("mode"),
                        sa.bindparam("b_subject", type_=_ENT.c.subject_ref.type)
                        .label("subject_ref")).subquery("subject")
    expired = sa.exists().where(
        _HOLDS.c.mode == sa.bindparam("b_mode"), _HOLDS.c.subject_ref == sa.bindparam("b_subject"),
        _HOLDS.c.status == _HELD, _HOLDS.c.expires_at <= sa.bindparam("b_now"),
    ).label("expired")
    meters = _METERS.alias("m")
    columns: list[Any] = [expired, *(meters.c[n[2:]].label(n) for n in _METER_LABELS)]
    joined: Any = subject.outerjoin(meters, sa.and_(
        meters.c.mode == subject.c.mode,
        meters.c.entitlement_id.in_(sa.bindparam("b_ids", expanding=True))))
    if usage:
        u = schema.usage_records.alias("u")
        columns += [u.c[n[2:]].label(n) for n in _USAGE_LABELS]
        joined = joined.outerjoin(u, sa.and_(
            u.c.mode == subject.c.mode, u.c.subject_ref == subject.c.subject_ref,
            u.c.idempotency_key == sa.bindparam("b_key")))
    if hold_by is not None:
        h = _HOLDS.alias("h")
        columns += [h.c[n[2:]].label(n) for n in _HOLD_LABELS]
        joined = joined.outerjoin(h, sa.and_(h.c.mode == subject.c.mode, (
            h.c.id == sa.bindparam("b_hold") if hold_by == "id" else sa.and_(
                h.c.subject_ref == subject.c.subject_ref,
                h.c.idempotency_key == sa.bindparam("b_hold")))))
    statement = sa.select(*columns).select_from(joined).order_by(
        meters.c.entitlement_id, meters.c.meter)
    _POST_LOCK_READS[(usage, hold_by)] = statement
    return statement


def _has_feature(codes: Collection[str], meter: str | None) -> Select[Any]:
    """``_HAS_ACCESS`` narrowed to entitlements whose product lists the feature (the codes
    come from the catalog) or which have units of the meter of that name: still one
    statement, on the subject index plus the meters' primary key."""
    granted: list[sa.ColumnElement[bool]] = []
    if codes:
        # One bound value per code, not an "expanding" IN: the statement then compiles once,
        # complete, into the feature's Probe.
        granted.append(_ENT.c.product_code.in_(
            [sa.literal(code, _ENT.c.product_code.type) for code in sorted(codes)]))
    if meter is not None:
        granted.append(sa.exists().where(
            _METERS.c.entitlement_id == _ENT.c.id, _METERS.c.meter == meter,
            _METERS.c.usage_remaining > 0))
    return _HAS_ACCESS.where(sa.or_(*granted) if granted else sa.false())


# (dialect, table) -> its idempotent INSERT, built on first use; the values are parameters.
_INSERTS: dict[tuple[str, str], Executable] = {}


def _insert_statement(dialect: str, table: sa.Table) -> Executable:
    if dialect == "postgresql":
        # RETURNING, not rowcount: psycopg 3 under SQLAlchemy 2.1 reports rowcount -1
        # for ON CONFLICT DO NOTHING, which would let a duplicate pass as inserted.
        return pg_insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    return table.insert()


# ---------------------------------------------------------------------------- transaction
class SQLTransaction:
    """One database transaction scoped to a mode (see ``StoreTransaction``)."""

    def __init__(self, conn: Connection, mode: str) -> None:
        self.mode = mode
        self._conn = conn
        self._dialect = conn.dialect.name
        # subject_ref -> ids of its entitlement rows this transaction holds locked
        self._locked: dict[str, set[str]] = {}

    def _execute(self, statement: Executable,
                 params: Mapping[str, Any] | None = None) -> CursorResult[Any]:
        with _translated():
            return self._conn.execute(statement, params)

    def _insert(self, table: sa.Table, values: dict[str, Any], key: str) -> None:
        statement = _INSERTS.get((self._dialect, table.name))
        if statement is None:
            statement = _INSERTS[(self._dialect, table.name)] = _insert_statement(
                self._dialect, table)
        try:
            result = self._execute(statement, values)
        except sa.exc.IntegrityError as exc:
            if _is_duplicate(exc):
                raise DuplicateKey(key) from None
            raise
        if (result.first() is None) if self._dialect == "postgresql" else (
                result.rowcount == 0):
            raise DuplicateKey(key)

    def _in_mode(self, table: sa.Table) -> sa.ColumnElement[bool]:
        return table.c.mode == self.mode

    # -- entitlements
    def lock_subject(self, subject_ref: str) -> list[EntitlementRecord]:
        return self._with_meters(self._lock_rows(subject_ref))

    def _lock_rows(self, subject_ref: str) -> list[Mapping[Any, Any]]:
        """The subject's entitlement rows, locked (their meters not read yet)."""
        held = self._locked.get(subject_ref)
        if held is None:
            rows: list[Mapping[Any, Any]] = list(self._execute(
                _LOCK_SUBJECT, {"b_mode": self.mode, "b_subject": subject_ref}).mappings())
            self._locked[subject_ref] = {r["id"] for r in rows}
            return rows
        if not held:
            return []
        # Locked already: read those rows again (their values now), with a plain read —
        # they are ours until the end — and take no new row another transaction
        # committed since. Locking one now, after rows that sort after it, or merely
        # waiting for it in a scan, would deadlock with a spend that began meanwhile,
        # holds it and waits for ours. This transaction is ordered before that grant.
        query = (sa.select(_ENT).where(self._in_mode(_ENT), _ENT.c.id.in_(sorted(held)))
                 .order_by(_ENT.c.created_at, _ENT.c.id))
        return list(self._execute(query).mappings())

    def lock_for_usage(self, subject_ref: str, now: datetime, *, usage_key: str | None = None,
                       hold_key: str | None = None,
                       hold_id: str | None = None) -> LockedSubject:
        rows = self._lock_rows(subject_ref)
        # A statement of its own, after the locking one: on PostgreSQL it reads a snapshot
        # taken once the lock was granted. Rows joined into the SELECT … FOR UPDATE itself
        # would come from that statement's snapshot, taken before it waited for the lock: a
        # spend that waited for another would miss the meter change, the usage record and
        # the settled holds that one committed.
        hold_by = "id" if hold_id is not None else "key" if hold_key is not None else None
        statement = _post_lock_read(usage_key is not None, hold_by)
        found = list(self._execute(statement, {
            "b_mode": self.mode, "b_subject": subject_ref, "b_now": now,
            "b_ids": _metered_ids(rows), "b_key": usage_key,
            "b_hold": hold_id if hold_id is not None else hold_key}).mappings())
        first = found[0]
        meters = _grouped({name[2:]: row[name] for name in _METER_LABELS}
                          for row in found if row["m_entitlement_id"] is not None)
        usage = hold = None
        if usage_key is not None and first["u_idempotency_key"] is not None:
            usage = _usage({name[2:]: first[name] for name in _USAGE_LABELS})
        if hold_by is not None and first["h_id"] is not None:
            hold = _hold({name[2:]: first[name] for name in _HOLD_LABELS})
        return LockedSubject([_entitlement(r, meters) for r in rows], usage, hold,
                             bool(first["expired"]))

    def _with_meters(self, rows: list[Mapping[Any, Any]]) -> list[EntitlementRecord]:
        """Records of entitlement rows, with their meters read in one more statement (none
        when no row is metered). The entitlement rows are what is locked: every change to a
        meter row is made under its entitlement's lock."""
        ids = _metered_ids(rows)
        meters = _grouped(self._execute(_meters_query(ids)).mappings()) if ids else {}
        return [_entitlement(r, meters) for r in rows]

    def get_entitlement(self, entitlement_id: str) -> EntitlementRecord | None:
        row = self._execute(
            sa.select(_ENT).where(self._in_mode(_ENT), _ENT.c.id == entitlement_id)
            .with_for_update()
        ).mappings().first()
        return None if row is None else self._with_meters([row])[0]

    def find_entitlements(self, *, stripe_subscription_id: str | None = None,
                          stripe_checkout_session_id: str | None = None,
                          stripe_payment_intent_id: str | None = None
                          ) -> list[EntitlementRecord]:
        wanted = {
            "stripe_subscription_id": stripe_subscription_id,
            "stripe_checkout_session_id": stripe_checkout_session_id,
            "stripe_payment_intent_id": stripe_payment_intent_id,
        }
        conditions = [_ENT.c[name] == value for name, value in wanted.items()
                      if value is not None]
        if not conditions:
            return []
        rows = self._execute(
            sa.select(_ENT).where(self._in_mode(_ENT), *conditions)
            .order_by(_ENT.c.created_at, _ENT.c.id)
            .with_for_update()
        ).mappings()
        return self._with_meters(list(rows))

    def insert_entitlement(self, record: EntitlementRecord) -> None:
        self._insert(_ENT, _values(record) | {"mode": self.mode}, record.id)
        meters = _meter_rows(record, self.mode)
        if meters:
            with _translated():
                self._conn.execute(_METERS.insert(), meters)
        if record.subject_ref in self._locked:
            self._locked[record.subject_ref].add(record.id)  # our own row: locked too

    def save_entitlement(self, record: EntitlementRecord) -> None:
        values = _values(record)
        result = self._execute(
            _ENT.update().where(self._in_mode(_ENT), _ENT.c.id == record.id)
            .values({name: values[name] for name in _ENT_UPDATABLE})
        )
        if result.rowcount == 0:
            raise KeyError(record.id)
        # The set of meters changes only with a plan change: rewrite them all, under the
        # entitlement's row lock this transaction holds.
        self._execute(_METERS.delete().where(_METERS.c.entitlement_id == record.id))
        meters = _meter_rows(record, self.mode)
        if meters:
            with _translated():
                self._conn.execute(_METERS.insert(), meters)

    def adjust_units(self, entitlement_id: str, delta: int, now: datetime,
                     meter: str = "units") -> int:
        params = {"b_mode": self.mode, "b_id": entitlement_id, "b_meter": meter,
                  "b_delta": delta, "b_now": now}
        # The meter's balance and the entitlement's sum of its meters (which the access
        # check reads) move together: one statement on PostgreSQL and MariaDB, two on SQLite.
        if self._dialect == "postgresql":
            row = self._execute(_ADJUST_BOTH_PG, params).first()
            if row is not None:
                return int(row[0])
        elif self._dialect in ("mysql", "mariadb"):
            if self._execute(_ADJUST_BOTH_MYSQL, params).rowcount > 0:
                # The rows are ours (the entitlement is locked by this transaction), so
                # reading the meter back sees exactly what the update wrote.
                return int(self._execute(
                    _METER_LEFT, {"b_id": entitlement_id, "b_meter": meter}).scalar_one())
        else:
            value: int | None = None
            if self._conn.dialect.update_returning:
                row = self._execute(_ADJUST_METER_RETURNING, params).first()
                value = None if row is None else int(row[0])
            elif self._execute(_ADJUST_METER, params).rowcount == 1:  # SQLite before 3.35
                value = int(self._execute(
                    _METER_LEFT, {"b_id": entitlement_id, "b_meter": meter}).scalar_one())
            if value is not None:
                self._execute(_ADJUST_ENTITLEMENT, params)
                return value
        exists = self._execute(
            sa.select(_ENT.c.id).where(self._in_mode(_ENT), _ENT.c.id == entitlement_id)
        ).first()
        if exists is None:
            raise KeyError(entitlement_id)
        raise UnitsConflict(entitlement_id)

    def add_ledger(self, entry: LedgerEntry) -> None:
        self._execute(_LEDGER_INSERT, _values(entry) | {"mode": self.mode})

    # -- usage idempotency and holds
    def get_usage_record(self, subject_ref: str, idempotency_key: str) -> UsageRecord | None:
        row = self._execute(_USAGE_RECORD, {"b_mode": self.mode, "b_subject": subject_ref,
                                            "b_key": idempotency_key}).mappings().first()
        return None if row is None else _usage(row)

    def insert_usage_record(self, record: UsageRecord) -> None:
        self._insert(schema.usage_records, _values(record) | {"mode": self.mode},
                     record.idempotency_key)

    def get_hold(self, hold_id: str) -> HoldRecord | None:
        row = self._execute(
            sa.select(_HOLDS).where(self._in_mode(_HOLDS), _HOLDS.c.id == hold_id)
        ).mappings().first()
        return None if row is None else _hold(row)

    def get_hold_by_key(self, subject_ref: str, idempotency_key: str) -> HoldRecord | None:
        row = self._execute(
            sa.select(_HOLDS).where(self._in_mode(_HOLDS), _HOLDS.c.subject_ref == subject_ref,
                                    _HOLDS.c.idempotency_key == idempotency_key)
        ).mappings().first()
        return None if row is None else _hold(row)

    def insert_hold(self, hold: HoldRecord) -> None:
        self._insert(_HOLDS, _values(hold) | {"mode": self.mode}, hold.idempotency_key)

    def save_hold(self, hold: HoldRecord) -> None:
        values = _values(hold)
        self._execute(
            _HOLDS.update().where(self._in_mode(_HOLDS), _HOLDS.c.id == hold.id)
            .values({k: v for k, v in values.items() if k not in ("id", "mode")})
        )

    def open_holds(self, subject_ref: str) -> list[HoldRecord]:
        query = sa.select(_HOLDS).where(
            self._in_mode(_HOLDS), _HOLDS.c.subject_ref == subject_ref, _HOLDS.c.status == _HELD,
        ).order_by(_HOLDS.c.created_at, _HOLDS.c.id)
        return [_hold(r) for r in self._execute(query).mappings()]

    def expired_holds(self, subject_ref: str | None, now: datetime) -> list[HoldRecord]:
        # Not locked here: whoever settles a hold first locks its subject's entitlement rows
        # (the core does, for every sweep), which serialises two sweeps of the same hold.
        if subject_ref is not None:
            return [_hold(r) for r in self._execute(_SUBJECT_EXPIRED_HOLDS, {
                "b_mode": self.mode, "b_now": now, "b_subject": subject_ref}).mappings()]
        query = sa.select(_HOLDS).where(
            self._in_mode(_HOLDS), _HOLDS.c.status == _HELD, _HOLDS.c.expires_at <= now,
        ).order_by(_HOLDS.c.created_at, _HOLDS.c.id)
        return [_hold(r) for r in self._execute(query).mappings()]

    # -- webhooks
    def get_processed_event(self, event_id: str) -> ProcessedEvent | None:
        t = schema.processed_events
        row = self._execute(
            sa.select(t).where(self._in_mode(t), t.c.event_id == event_id)
        ).mappings().first()
        return None if row is None else ProcessedEvent(**row)

    def insert_processed_event(self, event: ProcessedEvent) -> None:
        self._insert(schema.processed_events, _values(event) | {"mode": self.mode},
                     event.event_id)

    def get_watermark(self, object_id: str) -> Watermark | None:
        # Locked: the caller compares it and then moves it forward, and a concurrent event
        # for the same object must wait and see the newer mark.
        t = schema.watermarks
        row = self._execute(
            sa.select(t).where(self._in_mode(t), t.c.object_id == object_id).with_for_update()
        ).mappings().first()
        return None if row is None else Watermark(**row)

    def save_watermark(self, watermark: Watermark) -> None:
        t = schema.watermarks
        values = _values(watermark) | {"mode": self.mode}
        changes = {"event_created": watermark.event_created, "event_id": watermark.event_id}
        statement: Executable
        if self._dialect == "postgresql":
            statement = pg_insert(t).values(values).on_conflict_do_update(
                index_elements=["mode", "object_id"], set_=changes)
        elif self._dialect == "sqlite":
            statement = sqlite_insert(t).values(values).on_conflict_do_update(
                index_elements=["mode", "object_id"], set_=changes)
        else:
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            statement = mysql_insert(t).values(values).on_duplicate_key_update(changes)
        self._execute(statement)

    # -- checkout attempts and customers
    def _attempt(self, *conditions: sa.ColumnElement[bool]) -> CheckoutAttempt | None:
        t = schema.checkout_attempts
        row = self._execute(
            sa.select(t).where(self._in_mode(t), *conditions).order_by(t.c.created_at, t.c.id)
        ).mappings().first()
        return None if row is None else CheckoutAttempt(**row)

    def get_attempt_by_key(self, idempotency_key: str) -> CheckoutAttempt | None:
        return self._attempt(schema.checkout_attempts.c.idempotency_key == idempotency_key)

    def get_attempt_by_session(self, stripe_session_id: str) -> CheckoutAttempt | None:
        return self._attempt(schema.checkout_attempts.c.stripe_session_id == stripe_session_id)

    def insert_attempt(self, attempt: CheckoutAttempt) -> None:
        self._insert(schema.checkout_attempts, _values(attempt) | {"mode": self.mode},
                     attempt.idempotency_key)

    def save_attempt(self, attempt: CheckoutAttempt) -> None:
        t = schema.checkout_attempts
        values = _values(attempt)
        self._execute(
            t.update().where(self._in_mode(t), t.c.id == attempt.id)
            .values({k: v for k, v in values.items() if k not in ("id", "mode")})
        )

    def _customer(self, condition: sa.ColumnElement[bool]) -> CustomerLink | None:
        t = schema.customers
        row = self._execute(
            sa.select(t).where(self._in_mode(t), condition)).mappings().first()
        return None if row is None else CustomerLink(**row)

    def get_customer(self, subject_ref: str) -> CustomerLink | None:
        return self._customer(schema.customers.c.subject_ref == subject_ref)

    def get_customer_by_stripe_id(self, stripe_customer_id: str) -> CustomerLink | None:
        return self._customer(schema.customers.c.stripe_customer_id == stripe_customer_id)

    def insert_customer(self, link: CustomerLink) -> None:
        self._insert(schema.customers, _values(link) | {"mode": self.mode}, link.subject_ref)

    # -- the outbox
    def add_outbox(self, records: list[OutboxRecord]) -> None:
        if not records:
            return
        rows = [{
            "id": r.id, "mode": self.mode, "type": r.type, "data": data_json(r.data),
            "created_at": r.created_at, "status": r.status, "attempts": r.attempts,
            "next_attempt_at": r.next_attempt_at, "last_error": r.last_error,
            "delivered_to": json.dumps(list(r.delivered_to)), "delivered_at": r.delivered_at,
        } for r in records]
        # The rows as parameters of one prebuilt INSERT (one statement; the driver batches
        # several), not a multi-row VALUES, which SQLAlchemy cannot cache and compiled anew on
        # every change.
        with _translated():
            self._conn.execute(_OUTBOX.insert(), rows)


# ---------------------------------------------------------------------------- store
class SQLAlchemyStore:
    """The store for real apps: SQLite for one machine, PostgreSQL (or MariaDB/MySQL) for many
    processes or hosts sharing one database.

    ``url_or_engine`` is a SQLAlchemy URL (``sqlite:///licenzy.db``,
    ``postgresql+psycopg://…``, ``mysql+pymysql://…``) or the app's own ``Engine``; an engine
    the store created is disposed by :meth:`close`, an app's engine is left to the app.
    ``create_tables=True`` applies the bundled migrations when the store is built.
    Bounded waits, in seconds, so a sick database answers ``StoreUnavailable`` (503) well
    before a server's worker timeout: ``connect_timeout`` (5), ``statement_timeout`` (10) and
    ``lock_timeout`` (5) on PostgreSQL and MariaDB/MySQL (see ``create_engine``); on SQLite
    ``sqlite_busy_timeout`` (10) is how long a writer waits for another one. They apply to an
    engine the store builds from a URL; an app's own engine keeps its settings (build it with
    ``create_engine`` to get them), so giving them with an engine is a ValueError. Other
    keyword arguments go to ``create_engine``.
    """

    def __init__(self, url_or_engine: str | Engine, *, create_tables: bool = False,
                 sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT_S,
                 connect_timeout: float | None = None, statement_timeout: float | None = None,
                 lock_timeout: float | None = None, **engine_options: Any) -> None:
        sqlite_busy_timeout = _seconds("sqlite_busy_timeout", sqlite_busy_timeout, zero=True)
        given = {name: _seconds(name, value) for name, value in (
            ("connect_timeout", connect_timeout), ("statement_timeout", statement_timeout),
            ("lock_timeout", lock_timeout)) if value is not None}
        if isinstance(url_or_engine, Engine):
            if engine_options or given:
                raise ValueError(
                    "engine options and timeouts only apply when the store is given a URL: "
                    "build your engine with licenzy_embed.stores.sqlalchemy.create_engine("
                    "url, connect_timeout=…, statement_timeout=…, lock_timeout=…)")
            self.engine = url_or_engine
            self._owns_engine = False
            configure_engine(self.engine)
        elif isinstance(url_or_engine, str) and url_or_engine:
            try:
                self.engine = create_engine(url_or_engine, **given, **engine_options)
            except sa.exc.ArgumentError as exc:
                raise ValueError(f"not a database URL: {url_or_engine!r} ({exc})") from None
            self._owns_engine = True
        else:
            raise ValueError("SQLAlchemyStore needs a database URL or a SQLAlchemy Engine")
        self.dialect = self.engine.dialect.name
        if self.dialect not in SUPPORTED:
            raise ValueError(f"unsupported database {self.dialect!r}: use SQLite, PostgreSQL "
                             "or MariaDB/MySQL")
        self._writer: Engine
        self._reader: Engine
        if self.dialect == "sqlite":
            busy = {SQLITE_BUSY_OPTION: sqlite_busy_timeout}
            self._writer = self.engine.execution_options(
                **{SQLITE_BEGIN_OPTION: "IMMEDIATE"}, **busy)
            self._reader = self.engine.execution_options(**{SQLITE_BEGIN_OPTION: None}, **busy)
        else:
            # A URL engine is READ COMMITTED already; an app's engine may not be.
            self._writer = self.engine if self._owns_engine else self.engine.execution_options(
                isolation_level="READ COMMITTED")
            # Plain reads are single statements. On PostgreSQL they run in autocommit, so an
            # access check is the SELECT alone: no BEGIN before it and no ROLLBACK when its
            # connection goes back to the pool (psycopg sends neither for an idle autocommit
            # connection, and switching autocommit on and off is local to the driver). Not on
            # MariaDB: PyMySQL switches autocommit with a round trip each way and sends the
            # pool's ROLLBACK anyway, so there autocommit would add round trips, not save them.
            self._reader = (self.engine.execution_options(isolation_level="AUTOCOMMIT")
                            if self.dialect == "postgresql" else self.engine)
        # One in-memory SQLite connection is shared by every thread: take turns on it.
        self._serial: threading.RLock | None = (
            threading.RLock() if _is_memory_sqlite(self.engine) else None)
        self._active = threading.local()
        # The access checks' prebuilt statements: None for plain access, (codes, meter) for a
        # feature.
        self._probes: dict[object, Probe] = {}
        if create_tables:
            self.migrate()

    def __repr__(self) -> str:
        # Also for a store whose constructor failed (a traceback's frame locals show it).
        engine: Engine | None = getattr(self, "engine", None)
        if engine is None:
            return "SQLAlchemyStore(<not built>)"
        return f"SQLAlchemyStore({engine.url.render_as_string(hide_password=True)!r})"

    def migrate(self, revision: str = "head") -> None:
        """Apply the bundled migrations up to ``revision``."""
        with self._turn():
            migrate(self.engine, revision)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if self._serial is None:
            yield
        else:
            with self._serial:
                yield

    @contextmanager
    def transaction(self, mode: str) -> Iterator[SQLTransaction]:
        outer: SQLTransaction | None = getattr(self._active, "tx", None)
        if outer is not None:
            # A nested block joins the outer unit of work (a second connection would wait on
            # the first one's locks, in the same thread, forever).
            yield outer
            return
        with self._turn():
            with _translated():
                conn = self._writer.connect()
            try:
                with _translated():
                    transaction = conn.begin()
                tx = SQLTransaction(conn, mode)
                self._active.tx = tx
                try:
                    yield tx
                except BaseException:
                    # When the connection is gone the database rolled back for us.
                    with suppress(sa.exc.SQLAlchemyError):
                        transaction.rollback()
                    raise
                finally:
                    self._active.tx = None
                with _translated():
                    transaction.commit()
            finally:
                with suppress(sa.exc.SQLAlchemyError):
                    conn.close()

    def _read(self, statement: Executable,
              params: Mapping[str, Any] | None = None) -> list[Mapping[Any, Any]]:
        active: SQLTransaction | None = getattr(self._active, "tx", None)
        if active is not None:
            # A read inside this thread's transaction joins it, as with InMemoryStore: it
            # needs no second pooled connection (a full pool would wait on itself), and on
            # in-memory SQLite, whose one connection is shared, a second checkout's
            # reset-on-return would roll the transaction back.
            with _translated():
                return list(active._conn.execute(statement, params).mappings())
        with self._turn(), _translated(), self._reader.connect() as conn:
            return list(conn.execute(statement, params).mappings())

    def _probe(self, key: object, statement: Callable[[], Select[Any]],
               params: Mapping[str, Any]) -> bool:
        """The hot yes/no reads, on the driver directly (see ``_sql_probe``); inside this
        thread's transaction they join it, as every read does."""
        if getattr(self._active, "tx", None) is not None:
            return bool(self._read(statement(), params))
        probe = self._probes.get(key)
        if probe is None:
            probe = self._probes[key] = Probe(self._reader, statement())
        if self._serial is None:
            with _translated():
                return probe(params)
        with self._serial, _translated():
            return probe(params)

    def has_access(self, mode: str, subject_ref: str, now: datetime) -> bool:
        return self._probe(None, lambda: _HAS_ACCESS,
                           {"mode": mode, "subject_ref": subject_ref, "now": now})

    def has_feature(self, mode: str, subject_ref: str, now: datetime,
                    product_codes: Collection[str], meter: str | None) -> bool:
        # The catalog's features are few and fixed: one probe for each.
        return self._probe((frozenset(product_codes), meter),
                           lambda: _has_feature(product_codes, meter),
                           {"mode": mode, "subject_ref": subject_ref, "now": now})

    def _read_with_meters(self, rows: list[Mapping[Any, Any]]) -> list[EntitlementRecord]:
        ids = _metered_ids(rows)
        meters = _grouped(self._read(_meters_query(ids))) if ids else {}
        return [_entitlement(r, meters) for r in rows]

    def list_entitlements(self, mode: str, subject_ref: str) -> list[EntitlementRecord]:
        rows = self._read(
            sa.select(_ENT).where(_ENT.c.mode == mode, _ENT.c.subject_ref == subject_ref)
            .order_by(_ENT.c.created_at, _ENT.c.id))
        return self._read_with_meters(rows)

    def get_entitlement(self, mode: str, entitlement_id: str) -> EntitlementRecord | None:
        rows = self._read(sa.select(_ENT).where(_ENT.c.mode == mode,
                                                _ENT.c.id == entitlement_id))
        return self._read_with_meters(rows)[0] if rows else None

    def list_ledger(self, mode: str, subject_ref: str) -> list[LedgerEntry]:
        t = schema.ledger
        rows = self._read(sa.select(t).where(t.c.mode == mode, t.c.subject_ref == subject_ref)
                          .order_by(t.c.seq))
        return [_ledger(r) for r in rows]

    def get_processed_event(self, mode: str, event_id: str) -> ProcessedEvent | None:
        t = schema.processed_events
        rows = self._read(sa.select(t).where(t.c.mode == mode, t.c.event_id == event_id))
        return ProcessedEvent(**rows[0]) if rows else None

    def get_attempt(self, mode: str, attempt_id: str) -> CheckoutAttempt | None:
        t = schema.checkout_attempts
        rows = self._read(sa.select(t).where(t.c.mode == mode, t.c.id == attempt_id))
        return CheckoutAttempt(**rows[0]) if rows else None

    def has_expired_holds(self, mode: str, subject_ref: str, now: datetime) -> bool:
        rows = self._read(
            sa.select(sa.literal(1).label("expired")).where(
                _HOLDS.c.mode == mode, _HOLDS.c.subject_ref == subject_ref,
                _HOLDS.c.status == _HELD, _HOLDS.c.expires_at <= now,
            ).limit(1))
        return bool(rows)

    # -- the outbox: each write is its own short transaction, outside any change
    def _write(self, statement: Executable) -> int:
        with self._turn(), _translated(), self._writer.begin() as conn:
            return int(conn.execute(statement).rowcount)

    def pending_events(self, mode: str, now: datetime, limit: int) -> list[OutboxRecord]:
        rows = self._read(
            sa.select(_OUTBOX).where(_OUTBOX.c.mode == mode, _OUTBOX.c.status == _PENDING,
                                     _OUTBOX.c.next_attempt_at <= now)
            .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.seq).limit(limit))
        return [_outbox(r) for r in rows]

    def claim_event(self, mode: str, event_id: str, now: datetime, until: datetime) -> bool:
        # Conditional: of two deliverers claiming one row, the second re-reads it after the
        # first committed (READ COMMITTED; SQLite serialises writers) and matches nothing.
        return self._write(
            _OUTBOX.update().where(_OUTBOX.c.mode == mode, _OUTBOX.c.id == event_id,
                                   _OUTBOX.c.status == PENDING,
                                   _OUTBOX.c.next_attempt_at <= now)
            .values(next_attempt_at=until)) == 1

    def mark_events_delivered(self, mode: str, event_ids: list[str], now: datetime) -> None:
        self._write(
            _OUTBOX.update().where(_OUTBOX.c.mode == mode, _OUTBOX.c.id.in_(event_ids))
            .values(status=DELIVERED, next_attempt_at=None, delivered_at=now))

    def record_event_failure(self, mode: str, event_id: str, *, error: str, attempts: int,
                             next_attempt_at: datetime, delivered_to: tuple[str, ...]) -> None:
        self._write(
            _OUTBOX.update().where(_OUTBOX.c.mode == mode, _OUTBOX.c.id == event_id)
            .values(status=PENDING, attempts=attempts, last_error=error,
                    next_attempt_at=next_attempt_at,
                    delivered_to=json.dumps(list(delivered_to))))

    def get_event(self, mode: str, event_id: str) -> OutboxRecord | None:
        rows = self._read(sa.select(_OUTBOX).where(_OUTBOX.c.mode == mode,
                                                   _OUTBOX.c.id == event_id))
        return _outbox(rows[0]) if rows else None

    def list_events(self, mode: str, *, pending: bool = False,
                    limit: int = 100) -> list[OutboxRecord]:
        query = sa.select(_OUTBOX).where(_OUTBOX.c.mode == mode)
        if pending:
            query = query.where(_OUTBOX.c.status == PENDING)
        rows = self._read(query.order_by(_OUTBOX.c.seq.desc()).limit(limit))
        return [_outbox(r) for r in rows]

    def known_purchases(self, mode: str) -> list[EntitlementRecord]:
        rows = self._read(
            sa.select(_ENT).where(_ENT.c.mode == mode, _ENT.c.source == "stripe")
            .order_by(_ENT.c.created_at, _ENT.c.id))
        return [_entitlement(r) for r in rows]

    def close(self) -> None:
        """Dispose of the engine the store created (an app's own engine stays open)."""
        if self._owns_engine:
            self.engine.dispose()

    # -- retention
    def prune(self, mode: str, kind: str, before: datetime, *, batch: int,
              dry_run: bool = False) -> int:
        """Walks the table once in primary-key order (keyset batches: each read starts after
        the last key of the one before), then deletes a batch by primary key in its own short
        transaction whose WHERE re-checks status and date. No index on the dates: it would
        cost every spend and every webhook one more index write to speed up a rare job, and
        the walk reads each row once per run (a full scan, in batches, never a long lock)."""
        table, keys, old = _prunable(kind, before)
        condition = sa.and_(table.c.mode == mode, old)
        if dry_run:
            rows = self._read(sa.select(sa.func.count().label("n")).select_from(table)
                              .where(condition))
            return int(rows[0]["n"])
        done = 0
        last: tuple[Any, ...] | None = None
        while True:
            extra = [_HOLDS.c.subject_ref] if kind == HOLDS else []
            query = sa.select(*keys, *extra).where(condition)
            if last is not None:
                query = query.where(_after(keys, last))
            rows = self._read(query.order_by(*keys).limit(batch))
            if not rows:
                return done
            found = [tuple(r[k] for k in keys) for r in rows]
            chosen = (keys[0].in_([f[0] for f in found]) if len(keys) == 1
                      else sa.tuple_(*keys).in_(found))
            subjects = sorted({r[_HOLDS.c.subject_ref] for r in rows}) if kind == HOLDS else []
            done += self._delete_batch(mode, table.delete().where(condition, chosen), subjects)
            if len(rows) < batch:
                return done
            last = found[-1]

    def _delete_batch(self, mode: str, delete: Executable, subjects: list[str]) -> int:
        """One batch, in its own transaction. For holds, the subjects' entitlement rows are
        locked first (what every reserve, spend and commit locks before it reads a hold): a
        retry reviving a released hold reads it under that lock and then updates it, so the
        delete must not slip in between (it would leave the retry updating nothing)."""
        with self._turn(), _translated(), self._writer.begin() as conn:
            if subjects:
                conn.execute(sa.select(_ENT.c.id).where(
                    _ENT.c.mode == mode, _ENT.c.subject_ref.in_(subjects))
                    .order_by(_ENT.c.subject_ref, _ENT.c.created_at, _ENT.c.id)
                    .with_for_update()).all()
            return int(conn.execute(delete).rowcount)


def _prunable(kind: str, before: datetime
              ) -> tuple[sa.Table, list[sa.Column[Any]], sa.ColumnElement[bool]]:
    """The table of ``kind``, its primary key within a mode, and "old enough to go"."""
    if kind == HOLDS:
        t = _HOLDS
        return t, [t.c.id], sa.and_(t.c.status.in_(SETTLED), t.c.settled_at < before)
    if kind == USAGE_RECORDS:
        t = schema.usage_records
        return t, [t.c.subject_ref, t.c.idempotency_key], t.c.created_at < before
    if kind == PROCESSED_EVENTS:
        t = schema.processed_events
        return t, [t.c.event_id], t.c.processed_at < before
    if kind == OUTBOX:
        t = _OUTBOX
        return t, [t.c.seq], sa.and_(t.c.status == DELIVERED, t.c.delivered_at < before)
    raise ValueError(f"cannot prune {kind!r}: one of {', '.join(KINDS)}")


def _after(keys: list[sa.Column[Any]], last: tuple[Any, ...]) -> sa.ColumnElement[bool]:
    """Keys after ``last`` in key order, spelled out (a row-value comparison is not a range
    scan on every backend)."""
    first = keys[0] > sa.bindparam(None, last[0], type_=keys[0].type)
    if len(keys) == 1:
        return first
    same = keys[0] == sa.bindparam(None, last[0], type_=keys[0].type)
    return sa.or_(first, sa.and_(same, _after(keys[1:], last[1:])))


# ---------------------------------------------------------------------------- migrations
def alembic_config(url: str | None = None) -> Any:
    """The Alembic ``Config`` of the bundled migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url_or_engine: str | Engine, revision: str = "head", *, sql: bool = False,
            output: IO[str] | None = None) -> str | None:
    """Bring the licenzy tables up to ``revision`` (default: the newest).

    Safe to run from several processes at once: PostgreSQL takes an advisory lock, MariaDB a
    named lock and SQLite its write lock, so one process migrates and the others then find
    nothing left to do. Returns the revision the database is at afterwards. With ``sql=True``
    nothing is executed: the SQL is written to ``output`` (stdout by default) for a DBA to
    review and apply, and None is returned.
    """
    from alembic import command

    if sql:
        url = (url_or_engine.url.render_as_string(hide_password=False)
               if isinstance(url_or_engine, Engine) else url_or_engine)
        config = alembic_config(url)
        if output is not None:
            config.output_buffer = output
            config.stdout = output
        command.upgrade(config, revision, sql=True)
        return None
    # No statement or lock timeout: a migration may take long on a big table, and one process
    # waits for another's migration on its lock.
    engine = url_or_engine if isinstance(url_or_engine, Engine) else create_engine(
        url_or_engine, statement_timeout=None, lock_timeout=None)
    configure_engine(engine)
    try:
        migrator = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        config = alembic_config()
        with _translated(), migrator.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()
            return current_revision(conn)
    finally:
        if engine is not url_or_engine:
            engine.dispose()


def current_revision(connection: Connection) -> str | None:
    """The migration revision a database is at (None before the first migration)."""
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(
        connection, opts={"version_table": schema.VERSION_TABLE})
    revision = context.get_current_revision()
    connection.rollback()
    return revision
