"""The store's bounded waits: how they are validated and what each backend's connections get.
(What they do to a sick database is in tests/reliability/test_bounded_waits.py.)"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from licenzy_embed import StoreUnavailable
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore, create_engine

from .databases import SERVERS

BAD_SECONDS = [-1, math.inf, math.nan, True, "5"]
# 0 is a valid busy timeout (a SQLite writer that never waits); None means "the default" for
# the three server timeouts.
CASES = [(option, value) for option in ("connect_timeout", "statement_timeout", "lock_timeout")
         for value in [*BAD_SECONDS, 0]] + [
    ("sqlite_busy_timeout", value) for value in [*BAD_SECONDS, None]]


@pytest.mark.parametrize(("option", "value"), CASES, ids=repr)
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(option: str,
                                                                       value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        SQLAlchemyStore("sqlite://", **{option: value})


def test_an_apps_engine_keeps_its_own_settings() -> None:
    engine = sa.create_engine("sqlite://")
    try:
        with pytest.raises(ValueError, match="create_engine"):
            SQLAlchemyStore(engine, lock_timeout=1)
        SQLAlchemyStore(engine).close()  # no timeouts given: fine
    finally:
        engine.dispose()


def test_a_store_whose_constructor_failed_still_has_a_repr() -> None:
    """An error tracker that records frame locals calls repr on the half-built store."""
    with pytest.raises(ValueError) as failed:
        SQLAlchemyStore("nosuchdb://x")
    frames = []
    tb = failed.tb
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    stores = [f.f_locals["self"] for f in frames
              if isinstance(f.f_locals.get("self"), SQLAlchemyStore)]
    assert stores, "the constructor's frame holds the store"
    assert repr(stores[0]) == "SQLAlchemyStore(<not built>)"
    assert repr(SQLAlchemyStore("sqlite://")) == "SQLAlchemyStore('sqlite://')"


def _session_settings(url: str, queries: list[str], **timeouts: float) -> list[Any]:
    store = SQLAlchemyStore(url, **timeouts)
    try:
        with store.engine.connect() as conn:
            return [conn.exec_driver_sql(q).scalar() for q in queries]
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_connections_get_the_statement_and_lock_timeouts() -> None:
    db_url = SERVERS["postgres"].fresh_url()
    got = _session_settings(db_url, ["SHOW statement_timeout", "SHOW lock_timeout",
                                     "SHOW search_path"],
                            statement_timeout=2.5, lock_timeout=0.75)
    # The URL's own options (the test's search_path) are kept alongside.
    assert got[:2] == ["2500ms", "750ms"]
    assert got[2].startswith("lz_")
    defaults = _session_settings(db_url, ["SHOW statement_timeout", "SHOW lock_timeout"])
    assert defaults == ["10s", "5s"]


@pytest.mark.mysql
def test_mariadb_connections_get_the_statement_and_lock_timeouts() -> None:
    db_url = SERVERS["mysql"].fresh_url()
    got = _session_settings(db_url, ["SELECT @@session.innodb_lock_wait_timeout",
                                     "SELECT @@session.max_statement_time"],
                            statement_timeout=2.5, lock_timeout=0.5)
    assert (int(got[0]), float(got[1])) == (1, 2.5)  # the lock wait in whole seconds, >= 1


@pytest.mark.postgres
def test_create_engine_is_how_an_app_shares_a_bounded_engine() -> None:
    engine = create_engine(SERVERS["postgres"].fresh_url(), statement_timeout=2.5,
                           lock_timeout=0.75)
    store = SQLAlchemyStore(engine)  # an app's engine: taken as it is, timeouts included
    try:
        with store.engine.connect() as conn:
            got = [conn.exec_driver_sql(q).scalar()
                   for q in ("SHOW statement_timeout", "SHOW lock_timeout")]
        assert got == ["2500ms", "750ms"]
    finally:
        store.close()
        engine.dispose()


def test_waiting_for_a_pooled_connection_is_bounded_too(tmp_path: Any) -> None:
    store = SQLAlchemyStore(f"sqlite:///{tmp_path / 'pool.db'}", create_tables=True,
                            pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        # Another request holds the only connection.
        with store.engine.connect(), pytest.raises(StoreUnavailable) as failed:
            store.has_access("test", "user_1", datetime.now(timezone.utc))
        assert "pooled connection" in (failed.value.detail or "")
        assert store.has_access("test", "user_1", datetime.now(timezone.utc)) is False
    finally:
        store.close()
