from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

from ._workers import licenzy
from .databases import SERVERS, SQLITE, fresh_url, release

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str) -> Iterator[str]:
    """A URL to a migrated database of ``backend`` whose licenzy tables are empty."""
    url = fresh_url(backend)
    yield url
    release(backend, url)


@pytest.fixture
def empty_url(backend: str) -> Iterator[str]:
    """A database with no tables at all: a new schema, database or file."""
    if backend == "sqlite":
        url = f"sqlite:///{SQLITE.new_path()}"
        yield url
        SQLITE.remove(url)
        return
    server = SERVERS[backend]
    url = server.new_namespace("empty")
    yield url
    server.drop_namespace(url)


@pytest.fixture
def sql_store(db_url: str) -> Iterator[SQLAlchemyStore]:
    store = SQLAlchemyStore(db_url)
    yield store
    store.close()


@pytest.fixture
def open_licenzy(db_url: str) -> Iterator[Callable[..., Licenzy]]:
    """Build Licenzys on ``db_url`` (each with its own store); their stores are closed after
    the test, pass or fail, so no connection is left for the garbage collector."""
    built: list[Licenzy] = []

    def build(**options: Any) -> Licenzy:
        lz = licenzy(db_url, **options)
        built.append(lz)
        return lz

    yield build
    for lz in built:
        lz.store.close()
