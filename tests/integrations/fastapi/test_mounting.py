"""FastAPI: billing routes mounted under a prefix, a LicenzyRoute router included with its own
prefix, and the subject taken from SessionMiddleware through the default resolver."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Router

from licenzy_embed import Reservation
from licenzy_embed.integrations.asgi import (
    LicenzyASGI,
    LicenzyRoute,
    consume_usage,
    require_access,
)

from .._support import credits, make_lz, remaining


def test_mounting_beside_the_apps_routes_and_middleware() -> None:
    lz = make_lz()

    def session_subject(request: Request) -> Any:
        return request.session.get("user")

    billing = LicenzyASGI(lz, subject_resolver=session_subject)
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="tests-only")
    app.mount("/api/v2/payments", Router(billing.routes))
    api = APIRouter(prefix="/api", route_class=LicenzyRoute)

    charge10 = consume_usage(billing, 10)

    @api.post("/generate")
    async def generate(hold: Reservation = Depends(charge10)) -> Any:
        return {"charged": hold.units}

    @api.get("/report", dependencies=[Depends(require_access(billing))])
    async def report() -> Any:
        return {"report": True}

    @app.post("/login")
    async def login(request: Request, user: str) -> Any:
        request.session["user"] = user
        return {"ok": True}

    @app.get("/")
    async def home() -> Any:
        return {"home": True}

    app.include_router(api)

    with TestClient(app) as client:
        assert client.get("/").json() == {"home": True}
        assert client.get("/billing/access").status_code == 404
        assert client.get("/api/v2/payments/access").status_code == 401
        assert client.get("/api/report").status_code == 401
        client.post("/login", params={"user": "u-9"})
        assert client.get("/api/v2/payments/access").json()["subject_ref"] == "u-9"
        assert client.get("/api/report").status_code == 402
        credits(lz, "u-9")
        assert client.get("/api/report").status_code == 200
        assert client.post("/api/generate").json() == {"charged": 10}
    assert remaining(lz, "u-9") == 90
