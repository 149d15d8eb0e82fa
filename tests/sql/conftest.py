from __future__ import annotations

from collections.abc import Iterator

import pytest

from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

from .databases import fresh_url, release

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
def sql_store(db_url: str) -> Iterator[SQLAlchemyStore]:
    store = SQLAlchemyStore(db_url)
    yield store
    store.close()
