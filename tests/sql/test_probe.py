"""The access checks' ``Probe`` (stores/_sql_probe.py) sends exactly what SQLAlchemy would:
the same SQL and the same driver parameters, through the columns' own bind processors —
so the pinned plans and statement counts, measured through SQLAlchemy, hold for it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from licenzy_embed import Licenzy
from licenzy_embed.stores._sql_probe import Probe
from licenzy_embed.stores.sqlalchemy import _HAS_ACCESS, _has_feature
from licenzy_embed.testing import FrozenClock

from ..conftest import START, catalog


def _sent(engine: sa.Engine, statement: Any, params: dict[str, Any]) -> tuple[str, Any]:
    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        seen.append((sql, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        with engine.connect() as conn:
            conn.execute(statement, params).first()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    ((sql, parameters),) = seen
    return sql, parameters


def test_a_probe_sends_what_sqlalchemy_sends(open_licenzy: Callable[..., Licenzy]) -> None:
    lz = open_licenzy()
    engine = lz.store.engine  # type: ignore[attr-defined]
    params = {"mode": "test", "subject_ref": "Ünïcode user", "now": START}
    for statement in (_HAS_ACCESS, _has_feature({"PRO_MONTHLY", "TEAM"}, "units"),
                      _has_feature((), "units"), _has_feature({"PRO_MONTHLY"}, None)):
        probe = Probe(engine, statement)
        assert (probe.sql, probe.parameters(params)) == _sent(engine, statement, params)


def test_the_probe_answers_as_the_rule_does(open_licenzy: Callable[..., Licenzy]) -> None:
    """Through the probe (no listener on the engine): allowed, denied, lapsed."""
    clock = FrozenClock(START)
    lz = open_licenzy(clock=clock)
    assert not lz.store.engine.dispatch.before_cursor_execute  # type: ignore[attr-defined]
    lz.grant("user_1", "WEEK_PASS", reason="a")
    assert lz.check_access("user_1")
    assert not lz.check_access("user_2")
    assert not lz.check_access("user_1", "units")
    clock.advance(timedelta(days=8))
    assert not lz.check_access("user_1")


def test_an_app_engine_in_autocommit_stays_in_autocommit(backend: str, db_url: str) -> None:
    """On PostgreSQL the probe switches autocommit on for its read and back afterwards —
    back to what the connection had, so an app's own autocommit engine keeps it."""
    from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore, create_engine

    engine = create_engine(db_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.QueuePool,
                           pool_size=1, max_overflow=0)
    store = SQLAlchemyStore(engine)
    try:
        lz = Licenzy(store=store, products=catalog(), clock=FrozenClock(START))
        lz.grant("user_1", "WEEK_PASS", reason="a")
        assert lz.check_access("user_1")
        with engine.connect() as conn:
            dbapi: Any = conn.connection.dbapi_connection
            if backend == "postgres":
                assert dbapi.autocommit is True
            conn.exec_driver_sql("SELECT 1")
    finally:
        store.close()
        engine.dispose()
