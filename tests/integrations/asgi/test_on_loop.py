"""Where an async endpoint's store calls run: on the event loop for a store that never waits
(``InMemoryStore.blocking`` is False), in a worker thread for any other — a SQL store's
calls wait on the database and must not stall the loop."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from licenzy_embed import Licenzy
from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage, requires_access
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

from .._support import credits, make_lz, remaining


def _app(lz: Licenzy, seen: list[str]) -> Starlette:
    store = lz.store
    has_access, transaction = store.has_access, store.transaction

    def spy_access(*args: Any) -> Any:
        seen.append(threading.current_thread().name)
        return has_access(*args)

    def spy_transaction(*args: Any) -> Any:
        seen.append(threading.current_thread().name)
        return transaction(*args)

    store.has_access = spy_access  # type: ignore[method-assign]
    store.transaction = spy_transaction  # type: ignore[method-assign]

    @requires_access
    async def gated(request: Request) -> Response:
        return JSONResponse({"ok": True, "loop": threading.current_thread().name})

    @consumes_usage(3)
    async def metered(request: Request) -> Response:
        return JSONResponse({"ok": True, "loop": threading.current_thread().name})

    app = Starlette(routes=[Route("/gated", gated), Route("/metered", metered,
                                                         methods=["POST"])])
    app.state.licenzy = LicenzyASGI(lz, subject_resolver=lambda request: "alice")
    return app


def _sql_lz(tmp_path: Any) -> Licenzy:
    store = SQLAlchemyStore(f"sqlite:///{tmp_path / 'l.db'}", create_tables=True)
    return make_lz(store=store)  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["memory", "sqlite"])
def test_store_calls_run_on_the_loop_only_for_a_store_that_never_waits(
        which: str, tmp_path: Any) -> None:
    lz = make_lz() if which == "memory" else _sql_lz(tmp_path)
    credits(lz, "alice")
    seen: list[str] = []
    try:
        with TestClient(_app(lz, seen)) as client:
            gated = client.get("/gated")
            metered = client.post("/metered")
        assert remaining(lz, "alice") == 97
    finally:
        if which == "sqlite":
            lz.store.close()  # type: ignore[attr-defined]
    assert gated.status_code == metered.status_code == 200
    loop = gated.json()["loop"]
    assert metered.json()["loop"] == loop
    assert seen  # the check, the reserve and the commit
    if which == "memory":
        assert set(seen) == {loop}
    else:
        assert loop not in seen
