"""Starlette under uvicorn: ``/plain``, ``/access`` (``requires_access``), ``/consume``
(``consumes_usage(1)``), the same async endpoint body each."""

from __future__ import annotations

from common import licenzy, subject
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


app = Starlette(routes=[Route("/plain", plain), Route("/access", access),
                        Route("/consume", consume)])
app.state.licenzy = LicenzyASGI(licenzy(), subject_resolver=subject)
