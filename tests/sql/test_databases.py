"""The suite's own database set-up (issue 11): a reachable server without the test database
gets it created, instead of a skip message blaming a stopped server."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from .databases import SERVERS, Server


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_missing_test_database_is_created(backend: str) -> None:
    SERVERS[backend].require()  # the server itself is up (or this skips/fails as usual)
    name = f"lz_missing_{uuid.uuid4().hex[:8]}"
    server = Server(backend, SERVERS[backend].url.set(database=name).render_as_string(
        hide_password=False))
    try:
        server.require()  # would skip with "server not reachable" before the fix
        engine = sa.create_engine(server.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        finally:
            engine.dispose()
    finally:
        if backend == "postgres":
            server.admin(f'DROP DATABASE IF EXISTS "{name}"')
        else:
            server.admin(f"DROP DATABASE IF EXISTS `{name}`")
