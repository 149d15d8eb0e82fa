"""A FastAPI app selling access with licenzy-embed.

    pip install 'licenzy-embed[asgi,sqlalchemy]' fastapi uvicorn
    cd example_apps && uvicorn fastapi_app:app

The subject comes from a FastAPI dependency (here the session; an OAuth2 scheme works the
same way). ``LicenzyRoute`` commits or releases each hold on the final response.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Router

from billing import lz
from licenzy_embed import Reservation
from licenzy_embed.integrations.asgi import (
    LicenzyASGI,
    LicenzyRoute,
    consume_usage,
    require_access,
)


def current_subject(request: Request) -> str | None:
    user: str | None = request.session.get("user")
    return user


billing = LicenzyASGI(lz, subject_resolver=current_subject)
paid = require_access(billing)
ten_units = consume_usage(billing, 10)

app = FastAPI(title="licenzy-embed FastAPI example")
app.add_middleware(SessionMiddleware, secret_key=os.environ.get("SESSION_SECRET", "change-me"))
app.mount("/billing", Router(billing.routes))

api = APIRouter(route_class=LicenzyRoute)


@api.post("/login")
async def login(request: Request, user: str) -> dict[str, Any]:
    """Demo sign-in: a real app checks a password or an SSO assertion."""
    request.session["user"] = user
    return {"user": user}


@api.get("/report")
async def report(subject: str = Depends(paid)) -> dict[str, Any]:
    return {"report": f"the monthly report for {subject}"}


@api.post("/generate")
async def generate(hold: Reservation = Depends(ten_units)) -> dict[str, Any]:
    return {"generated": True, "charged": hold.units}


app.include_router(api)
