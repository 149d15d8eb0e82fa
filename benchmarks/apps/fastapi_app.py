"""FastAPI under uvicorn workers: ``/plain``, ``/access`` (``requires_access``), ``/consume``
(``consumes_usage(1)``), the same async endpoint body each; ``/bare-check`` and
``/bare-spend`` do the floors' work, in a worker thread as the decorators do their store
work (see ``common``)."""

from __future__ import annotations

import anyio.to_thread
from common import bare_check, bare_spend, licenzy, subject
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage, requires_access

app = FastAPI()
app.state.licenzy = LicenzyASGI(licenzy(), subject_resolver=subject)


@app.get("/plain", response_class=PlainTextResponse)
async def plain(request: Request) -> str:
    return "ok"


@app.get("/access", response_class=PlainTextResponse)
@requires_access
async def access(request: Request) -> str:
    return "ok"


@app.get("/consume", response_class=PlainTextResponse)
@consumes_usage(1)
async def consume(request: Request) -> str:
    return "ok"



@app.get("/bare-check", response_class=PlainTextResponse)
async def bare_check_view(request: Request) -> str:
    await anyio.to_thread.run_sync(bare_check)
    return "ok"


@app.get("/bare-spend", response_class=PlainTextResponse)
async def bare_spend_view(request: Request) -> str:
    await anyio.to_thread.run_sync(bare_spend)
    return "ok"
