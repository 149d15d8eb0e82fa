"""Starlette under uvicorn: ``/plain``, ``/access`` (``requires_access``), ``/consume``
(``consumes_usage(1)``), the same async endpoint body each; ``/bare-check`` and
``/bare-spend`` do the floors' work, in a worker thread as the decorators do their store
work (see ``common``)."""

from __future__ import annotations

import anyio.to_thread
from common import bare_check, bare_spend, licenzy, subject
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage, requires_access


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@requires_access
async def access(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@consumes_usage(1)
async def consume(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def bare_check_view(request: Request) -> PlainTextResponse:
    await anyio.to_thread.run_sync(bare_check)
    return PlainTextResponse("ok")


async def bare_spend_view(request: Request) -> PlainTextResponse:
    await anyio.to_thread.run_sync(bare_spend)
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/plain", plain), Route("/access", access),
                        Route("/consume", consume), Route("/bare-check", bare_check_view),
                        Route("/bare-spend", bare_spend_view)])
app.state.licenzy = LicenzyASGI(licenzy(), subject_resolver=subject)
