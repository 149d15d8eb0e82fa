"""FastAPI under uvicorn workers: ``/plain``, ``/access`` (``requires_access``), ``/consume``
(``consumes_usage(1)``), the same async endpoint body each."""

from __future__ import annotations

from common import licenzy, subject
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
