"""The billing routes under a non-default prefix beside the app's own routes, with
SessionMiddleware and AuthenticationMiddleware providing the subject."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from licenzy_embed import Licenzy
from licenzy_embed.integrations.asgi import LicenzyASGI, requires_access

from .._support import make_lz


class SessionAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials,
                                                                BaseUser] | None:
        user = conn.session.get("user")
        return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None


async def login(request: Request) -> Response:
    request.session["user"] = request.query_params["user"]
    return PlainTextResponse("ok")


async def logout(request: Request) -> Response:
    request.session.clear()
    return PlainTextResponse("bye")


async def home(request: Request) -> Response:
    return PlainTextResponse("home")


@requires_access
async def report(request: Request) -> Response:
    return JSONResponse({"for": request.user.identity})


def session_app(lz: Licenzy) -> Starlette:
    billing = LicenzyASGI(lz)  # default resolver: request.user.identity
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/reports/latest", report),
            Mount("/api/v2/payments", routes=billing.routes, name="payments"),
        ],
        middleware=[
            Middleware(SessionMiddleware, secret_key="tests-only"),
            Middleware(AuthenticationMiddleware, backend=SessionAuth()),
        ],
    )
    app.state.licenzy = billing
    return app


def test_mounted_under_another_prefix_beside_the_apps_routes() -> None:
    lz = make_lz()
    app = session_app(lz)
    with TestClient(app) as client:
        assert client.get("/").text == "home"
        assert client.get("/billing/access").status_code == 404
        assert client.get("/api/v2/payments/access").status_code == 401
        client.post("/login", params={"user": "u-17"})
        assert client.get("/api/v2/payments/access").json() == {
            "subject_ref": "u-17", "has_access": False, "status": "none", "features": [],
            "entitlements": []}
        assert client.get("/reports/latest").status_code == 402
        lz.grant("u-17", "WEEK_PASS", reason="test")
        assert client.get("/api/v2/payments/access").json()["has_access"] is True
        assert client.get("/reports/latest").json() == {"for": "u-17"}
        client.post("/logout")
        assert client.get("/reports/latest").status_code == 401
    assert app.url_path_for("payments:licenzy_webhook") == "/api/v2/payments/webhooks/stripe"


def test_billing_routes_answer_only_their_methods() -> None:
    with TestClient(session_app(make_lz())) as client:
        assert client.get("/api/v2/payments/webhooks/stripe").status_code == 405
        assert client.post("/api/v2/payments/access").status_code == 405
        assert client.get("/api/v2/payments/checkout").status_code == 405
