"""A Starlette app selling access with licenzy-embed.

    pip install 'licenzy-embed[asgi,sqlalchemy]' uvicorn
    cd example_apps && uvicorn starlette_app:app

The subject is ``request.user.identity`` from AuthenticationMiddleware (the default resolver).
"""

from __future__ import annotations

import os

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
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from billing import lz
from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage, requires_access


class SessionAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials,
                                                                BaseUser] | None:
        user = conn.session.get("user")
        return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None


async def login(request: Request) -> Response:
    """Demo sign-in: a real app checks a password or an SSO assertion."""
    request.session["user"] = request.query_params["user"]
    return JSONResponse({"user": request.session["user"]})


@requires_access
async def report(request: Request) -> Response:
    return JSONResponse({"report": f"the monthly report for {request.user.identity}"})


@consumes_usage(10)
async def generate(request: Request) -> Response:
    return JSONResponse({"generated": True})


billing = LicenzyASGI(lz)

app = Starlette(
    routes=[
        Route("/login", login, methods=["POST"]),
        Route("/report", report),
        Route("/generate", generate, methods=["POST"]),
        Mount("/billing", routes=billing.routes),
    ],
    middleware=[
        Middleware(SessionMiddleware, secret_key=os.environ.get("SESSION_SECRET", "change-me")),
        Middleware(AuthenticationMiddleware, backend=SessionAuth()),
    ],
)
app.state.licenzy = billing  # how @requires_access / @consumes_usage find it
