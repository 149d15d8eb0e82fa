"""Store factories the contract suite (tests/contract) runs against.

Every store must pass the very same tests: add a factory here and it is parametrized in. SQL
servers are used for real; without ``LICENZY_REQUIRE_SERVICES=1`` a missing server skips its
tests with a message saying how to run them, with it the tests fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from licenzy_embed.stores.base import Store

StoreFactory = Callable[[], "contextmanager[Store]"]  # type: ignore[type-arg]


@contextmanager
def memory_store() -> Iterator[Store]:
    from licenzy_embed import InMemoryStore

    yield InMemoryStore()


def sql_store(backend: str) -> Callable[[], object]:
    """SQLAlchemyStore on a migrated, empty database (see tests/sql/databases.py)."""

    @contextmanager
    def factory() -> Iterator[Store]:
        from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

        from .sql.databases import fresh_url, release

        url = fresh_url(backend)
        store = SQLAlchemyStore(url)
        try:
            yield store
        finally:
            store.close()
            release(backend, url)

    return factory


# name -> context-manager factory yielding a fresh, empty store
FACTORIES: dict[str, Callable[[], object]] = {
    "memory": memory_store,
    "sqlite": sql_store("sqlite"),
    "postgres": sql_store("postgres"),
    "mysql": sql_store("mysql"),
}
MARKS: dict[str, list[pytest.MarkDecorator]] = {
    "memory": [],
    "sqlite": [],
    "postgres": [pytest.mark.postgres],
    "mysql": [pytest.mark.mysql],
}


def store_params() -> list[object]:
    return [pytest.param(name, marks=MARKS.get(name, []), id=name) for name in FACTORIES]
