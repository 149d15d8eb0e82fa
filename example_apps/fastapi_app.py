"""A FastAPI app selling access with licenzy-embed.

Run it from the repository (after ``make .venv/.installed``) and open http://127.0.0.1:8000::

    .venv/bin/python example_apps/fastapi_app.py

(or ``cd example_apps && uvicorn fastapi_app:app``; ``PORT=…`` changes the port). Without
``STRIPE_API_KEY`` it runs in test mode: the Stripe simulator and its local checkout page stand
in for Stripe, and entitlements live in example_apps/licenzy-example.db (see billing.py).

The subject comes from a FastAPI dependency (here the session cookie; an OAuth2 scheme works the
same way). ``LicenzyRoute`` commits or releases each hold on the final response. Denials render
as pages for browsers and as the library's JSON for everyone else.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Router

import _pages
from billing import CANCEL_PATH, SUCCESS_PATH, lz, port, products, start_local_checkout
from licenzy_embed import LicenzyError, Reservation
from licenzy_embed.integrations.asgi import (
    LicenzyASGI,
    LicenzyRoute,
    consume_usage,
    require_access,
)

FRAMEWORK = "FastAPI"


def signed_in(request: Request) -> str | None:
    """The signed-in user's id (the subject), or None."""
    user: str | None = request.session.get("user")
    return user


def html(request: Request) -> bool:
    return _pages.wants_html(request.headers.get("accept"))


def denied(request: Request, error: LicenzyError) -> Response:
    """The denial handler: a page for a browser, the library's JSON for any other client."""
    if html(request):
        return HTMLResponse(_pages.refusal(error, signed_in(request), framework=FRAMEWORK),
                            status_code=error.status)
    return JSONResponse(error.to_dict(), status_code=error.status)


billing = LicenzyASGI(lz, subject_resolver=signed_in, denial_handler=denied)
User = Annotated[str | None, Depends(signed_in)]
Paid = Annotated[str, Depends(require_access(billing))]  # the subject_ref, once allowed
GenerateHold = Annotated[Reservation, Depends(consume_usage(billing, _pages.GENERATE_UNITS))]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    checkout = start_local_checkout()  # test mode only: the page Checkout sends buyers to
    yield
    if checkout is not None:
        checkout.stop()


app = FastAPI(title="licenzy-embed FastAPI example", lifespan=lifespan)
app.add_middleware(SessionMiddleware, secret_key=os.environ.get("SESSION_SECRET", "change-me"))
pages = APIRouter(route_class=LicenzyRoute)


@pages.get("/", response_class=HTMLResponse)
def home(user: User) -> str:
    return _pages.home(user, framework=FRAMEWORK)


@pages.post("/login")
def login(request: Request, user: str) -> Response:
    """Demo sign-in as one of the named demo users: a real app checks a password or an SSO
    assertion before it puts the user in the session."""
    if user not in _pages.DEMO_USERS:
        raise HTTPException(400, f"sign in as one of {list(_pages.DEMO_USERS)}")
    request.session["user"] = user
    if html(request):
        return RedirectResponse("/pricing", status_code=303)
    return JSONResponse({"user": user})


@pages.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@pages.get("/pricing", response_class=HTMLResponse)
def pricing(user: User) -> str:
    return _pages.pricing(user, products(), framework=FRAMEWORK)


@pages.get(SUCCESS_PATH, response_class=HTMLResponse)
def success(user: User) -> str:
    return _pages.success(user, framework=FRAMEWORK)


@pages.get(CANCEL_PATH, response_class=HTMLResponse)
def cancel(user: User) -> str:
    return _pages.cancelled(user, framework=FRAMEWORK)


# Sync path operations run in a worker thread, so they may call the (blocking) store.
@pages.get("/report")
def report(request: Request, subject: Paid) -> Response:
    if html(request):
        return HTMLResponse(_pages.report(subject, lz.customer_access(subject),
                                          framework=FRAMEWORK))
    return JSONResponse({"report": f"the monthly report for {subject}"})


@pages.post("/generate")
def generate(request: Request, hold: GenerateHold) -> Response:
    # The hold already took its units out of what is left; they are spent when this answers.
    access = lz.customer_access(hold.subject_ref)
    if html(request):
        return HTMLResponse(_pages.generated(hold.subject_ref, access, framework=FRAMEWORK))
    return JSONResponse({"generated": True, "units_left": _pages.units_left(access)})


app.include_router(pages)
app.mount(_pages.BILLING, Router(billing.routes))  # after the pages: it answers all of /billing/…

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port())
