"""A Starlette endpoint whose request was given up while it ran is never charged.

Sync endpoints run in AnyIO's thread pool, and AnyIO lets a worker thread run to its end
after its task was cancelled (here by a timeout middleware that answers 504, as a gateway
timeout would): the hold must then be released, not committed by that thread."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from licenzy_embed import Licenzy
from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage

from .._support import credits, remaining

started, proceed = threading.Event(), threading.Event()


class GiveUpWhenStarted:
    """A timeout middleware whose clock is the endpoint itself: it cancels the request once
    the endpoint has started, lets the endpoint finish, and answers 504."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered: list[bool] = []

        async def tracked(message: Any) -> None:
            answered.append(True)
            await send(message)

        with anyio.CancelScope() as request_scope:
            async with anyio.create_task_group() as tasks:
                async def give_up() -> None:
                    await anyio.to_thread.run_sync(started.wait)
                    request_scope.cancel()
                    proceed.set()

                tasks.start_soon(give_up)
                await self.app(scope, receive, tracked)
        if request_scope.cancelled_caught and not answered:
            await JSONResponse({"error": "timeout"}, status_code=504)(scope, receive, send)


@consumes_usage(10)
def sync_work(request: Request) -> Response:
    started.set()
    proceed.wait(30)
    return JSONResponse({"done": True})


@consumes_usage(10)
async def async_work(request: Request) -> Response:
    started.set()
    await anyio.to_thread.run_sync(proceed.wait, 30)
    return JSONResponse({"done": True})


@pytest.mark.parametrize("endpoint", [sync_work, async_work])
def test_an_endpoint_whose_request_was_given_up_is_not_charged(lz: Licenzy,
                                                               endpoint: Any) -> None:
    started.clear()
    proceed.clear()
    app = Starlette(routes=[Route("/work", endpoint, methods=["POST"])],
                    middleware=[Middleware(GiveUpWhenStarted)])
    app.state.licenzy = LicenzyASGI(lz, subject_resolver=lambda request: "alice")
    credits(lz, "alice")
    with TestClient(app) as client:
        response = client.post("/work")
    # The gateway's 504, or the adapter's own 503 when it got out first: an error either way.
    assert response.status_code in (503, 504)
    actions = [e.action for e in lz.ledger("alice")]
    assert "committed" not in actions and actions[-1] == "released"
    assert remaining(lz, "alice") == 100
