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


# name -> context-manager factory yielding a fresh, empty store
FACTORIES: dict[str, Callable[[], object]] = {"memory": memory_store}
MARKS: dict[str, list[pytest.MarkDecorator]] = {"memory": []}


def store_params() -> list[object]:
    return [pytest.param(name, marks=MARKS.get(name, []), id=name) for name in FACTORIES]
