"""A Starlette app selling access with licenzy-embed.

Run it from the repository (after ``make .venv/.installed``) and open http://127.0.0.1:8000::

    .venv/bin/python example_apps/starlette_app.py

(or ``cd example_apps && uvicorn starlette_app:app``; ``PORT=…`` changes the port). Without
``STRIPE_API_KEY`` it runs in test mode: the Stripe simulator and its local checkout page stand
in for Stripe, and entitlements live in example_apps/licenzy-example.db (see billing.py).

The subject is ``request.user.identity`` from AuthenticationMiddleware (the library's default
resolver), signed in through a session cookie. Denials render as pages for browsers and as the
library's JSON for everyone else.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
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
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

import _pages
from billing import CANCEL_PATH, SUCCESS_PATH, lz, port, products, start_local_checkout
from licenzy_embed import LicenzyError
from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage, requires_access

FRAMEWORK = "Starlette"


class SessionAuth(AuthenticationBackend):
    """The user named in the session cookie (set by ``login``)."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials,
                                                                BaseUser] | None:
        user = conn.session.get("user")
        return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None


def signed_in(request: Request) -> str | None:
    return request.user.identity if request.user.is_authenticated else None


def html(request: Request) -> bool:
    return _pages.wants_html(request.headers.get("accept"))


def denied(request: Request, error: LicenzyError) -> Response:
    """The denial handler: a page for a browser, the library's JSON for any other client."""
    if html(request):
        return HTMLResponse(_pages.refusal(error, signed_in(request), framework=FRAMEWORK),
                            status_code=error.status)
    return JSONResponse(error.to_dict(), status_code=error.status)


async def home(request: Request) -> Response:
    return HTMLResponse(_pages.home(signed_in(request), framework=FRAMEWORK))


async def login(request: Request) -> Response:
    """Demo sign-in as one of the named demo users: a real app checks a password or an SSO
    assertion before it puts the user in the session."""
    user = request.query_params.get("user", "")
    if user not in _pages.DEMO_USERS:
        return JSONResponse({"error": "invalid_request",
                             "message": f"sign in as one of {list(_pages.DEMO_USERS)}"},
                            status_code=400)
    request.session["user"] = user
    if html(request):
        return RedirectResponse("/pricing", status_code=303)
    return JSONResponse({"user": user})


async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/", status_code=303)


async def pricing(request: Request) -> Response:
    return HTMLResponse(_pages.pricing(signed_in(request), products(), framework=FRAMEWORK))


async def success(request: Request) -> Response:
    return HTMLResponse(_pages.success(signed_in(request), framework=FRAMEWORK))


async def cancel(request: Request) -> Response:
    return HTMLResponse(_pages.cancelled(signed_in(request), framework=FRAMEWORK))


# Sync endpoints run in Starlette's thread pool, so they may call the (blocking) store.
@requires_access
def report(request: Request) -> Response:
    user = request.user.identity
    if html(request):
        return HTMLResponse(_pages.report(user, lz.customer_access(user), framework=FRAMEWORK))
    return JSONResponse({"report": f"the monthly report for {user}"})


@consumes_usage(_pages.GENERATE_UNITS)
def generate(request: Request) -> Response:
    # The hold already took its units out of what is left; they are spent when this answers.
    user = request.user.identity
    access = lz.customer_access(user)
    if html(request):
        return HTMLResponse(_pages.generated(user, access, framework=FRAMEWORK))
    return JSONResponse({"generated": True, "units_left": _pages.units_left(access)})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    checkout = start_local_checkout()  # test mode only: the page Checkout sends buyers to
    yield
    if checkout is not None:
        checkout.stop()


billing = LicenzyASGI(lz, denial_handler=denied)

app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/pricing", pricing),
        Route("/report", report),
        Route("/generate", generate, methods=["POST"]),
        Route(SUCCESS_PATH, success),  # before the Mount, which answers all of /billing/…
        Route(CANCEL_PATH, cancel),
        Mount(_pages.BILLING, routes=billing.routes),
    ],
    middleware=[
        Middleware(SessionMiddleware, secret_key=os.environ.get("SESSION_SECRET", "change-me")),
        Middleware(AuthenticationMiddleware, backend=SessionAuth()),
    ],
    lifespan=lifespan,
)
app.state.licenzy = billing  # how @requires_access / @consumes_usage find it

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port())
