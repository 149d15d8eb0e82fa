"""A process that dies between a commit and its callbacks loses no change event: the next
``Licenzy`` on the same database delivers it, once (SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from licenzy_embed import ChangeEvent, Licenzy
from licenzy_embed.outbox import DELIVERY_LEASE
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import FrozenClock

from ..conftest import START, catalog
from ..sql.databases import fresh_url, release
from ._crashing_app import CRASHED

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    backend = str(request.param)
    url = fresh_url(backend)
    yield url
    release(backend, url)


def test_a_crash_after_commit_is_delivered_once_by_the_next_instance(url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.outbox._crashing_app", url],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == CRASHED, done.stderr

    clock = FrozenClock(START)
    store = SQLAlchemyStore(url)
    try:
        lz = Licenzy(store=store, products=catalog(), clock=clock)
        seen: list[ChangeEvent] = []
        lz.on("*", seen.append)
        (pending,) = lz.change_events(pending=True)
        assert pending.type == "entitlement.updated"
        # The dead process held it for its delivery lease; then anyone may take it over.
        assert lz.deliver_pending_events().delivered == 0
        clock.advance(DELIVERY_LEASE)
        assert lz.deliver_pending_events().delivered == 1
        assert lz.deliver_pending_events().delivered == 0
        assert [e.id for e in seen] == [pending.id]
        assert seen[0].data["entitlement"]["subject_ref"] == "crash_user"
        assert lz.check_access("crash_user")  # the change itself was committed
    finally:
        store.close()
