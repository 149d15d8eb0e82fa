"""The FastAPI app the tests drive: dependencies on async and sync path operations, with
``LicenzyRoute`` settling the holds, and the billing routes mounted beside them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import Request
from starlette.routing import Router

from licenzy_embed import Licenzy, Reservation
from licenzy_embed.integrations.asgi import (
    LicenzyASGI,
    LicenzyRoute,
    consume_usage,
    require_access,
)

from .._support import remaining


def header_subject(request: Request) -> str | None:
    """Test-only: the subject from an X-User header."""
    return request.headers.get("X-User")


def create_app(lz: Licenzy, **limits: int) -> FastAPI:
    billing = LicenzyASGI(lz, subject_resolver=header_subject, **limits)
    app = FastAPI()
    app.router.route_class = LicenzyRoute
    app.mount("/billing", Router(billing.routes))

    access = require_access(billing)
    charge10 = consume_usage(billing, 10)
    charge_n = consume_usage(billing, lambda request: int(request.query_params["n"]))

    @app.get("/async/report")
    async def async_report(subject: str = Depends(access)) -> dict[str, Any]:
        return {"report": "async", "subject": subject}

    @app.get("/sync/report")
    def sync_report(subject: str = Depends(access)) -> dict[str, Any]:
        return {"report": "sync", "subject": subject}

    @app.post("/async/generate")
    async def async_generate(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        return {"generated": "async", "hold": hold.units}

    @app.post("/sync/generate")
    def sync_generate(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        return {"generated": "sync", "hold": hold.units}

    @app.post("/async/boom")
    async def async_boom(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        raise RuntimeError("the work failed")

    @app.post("/sync/boom")
    def sync_boom(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        raise RuntimeError("the work failed")

    @app.post("/async/fail500")
    async def async_fail500(hold: Reservation = Depends(charge10)) -> JSONResponse:
        return JSONResponse({"error": "upstream"}, status_code=500)

    @app.post("/sync/fail500")
    def sync_fail500(hold: Reservation = Depends(charge10)) -> JSONResponse:
        return JSONResponse({"error": "upstream"}, status_code=500)

    @app.post("/async/not-found")
    async def not_found(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        raise HTTPException(status_code=404, detail="no such thing")

    @app.post("/async/created", status_code=201)
    async def created(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        return {"created": True}

    @app.post("/async/sized")
    async def sized(hold: Reservation = Depends(charge_n)) -> dict[str, Any]:
        return {"units": hold.units}

    @app.post("/async/stream")
    async def stream(hold: Reservation = Depends(charge10)) -> StreamingResponse:
        def body() -> Iterator[str]:
            # Runs while the response is being sent: the charge is already committed.
            yield f"remaining while streaming: {remaining(lz, hold.subject_ref)}"

        return StreamingResponse(body())

    @app.post("/async/slow")
    async def async_slow(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        lz.clock.advance(minutes=10)  # type: ignore[attr-defined]  # past the hold's TTL
        return {"done": "too late"}

    @app.post("/sync/slow")
    def sync_slow(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        lz.clock.advance(minutes=10)  # type: ignore[attr-defined]
        return {"done": "too late"}

    reports = require_access(billing, "reports")
    sso = require_access(billing, feature="sso")
    api_calls = consume_usage(billing, 10, meter="api_calls")
    typo = consume_usage(billing, 1, meter="api_cals")

    @app.get("/features/reports")
    def feature_reports(subject: str = Depends(reports)) -> dict[str, Any]:
        return {"feature": "reports"}

    @app.get("/features/sso")
    async def feature_sso(subject: str = Depends(sso)) -> dict[str, Any]:
        return {"feature": "sso"}

    @app.post("/features/api")
    async def feature_api(hold: Reservation = Depends(api_calls)) -> dict[str, Any]:
        return {"hold": hold.units, "meter": hold.meter}

    @app.post("/features/typo")
    def feature_typo(hold: Reservation = Depends(typo)) -> dict[str, Any]:
        return {"ran": True}

    async def token_subject(authorization: str | None = Header(default=None)) -> str | None:
        """A subject from a FastAPI dependency, as an OAuth2 scheme would give it."""
        if authorization and authorization.startswith("Bearer user:"):
            return authorization.removeprefix("Bearer user:")
        return None

    token_access = require_access(lz, subject=token_subject)
    token_charge5 = consume_usage(lz, 5, subject=token_subject)

    @app.get("/token/report")
    async def token_report(subject: str = Depends(token_access)) -> dict[str, Any]:
        return {"subject": subject}

    @app.post("/token/generate")
    async def token_generate(hold: Reservation = Depends(token_charge5)) -> dict[str, Any]:
        return {"subject": hold.subject_ref}

    return app
