"""The Starlette app the tests drive: decorated async and sync endpoints beside the billing
routes. The subject comes from an ``X-User`` header: a test convenience only (see
test_mounting.py for sessions and AuthenticationMiddleware)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from licenzy_embed import Licenzy
from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage, requires_access


def header_subject(request: Request) -> str | None:
    return request.headers.get("X-User")


@requires_access
async def async_report(request: Request) -> Response:
    return JSONResponse({"report": "async"})


@requires_access()
def sync_report(request: Request) -> Response:
    return JSONResponse({"report": "sync"})


@consumes_usage(10)
async def async_generate(request: Request) -> Response:
    return JSONResponse({"generated": "async",
                         "hold": request.state.licenzy_reservation.units})


@consumes_usage(10)
def sync_generate(request: Request) -> Response:
    return JSONResponse({"generated": "sync", "hold": request.state.licenzy_reservation.units})


@consumes_usage(10)
async def async_boom(request: Request) -> Response:
    raise RuntimeError("the work failed")


@consumes_usage(10)
def sync_boom(request: Request) -> Response:
    raise RuntimeError("the work failed")


@consumes_usage(10)
async def async_fail500(request: Request) -> Response:
    return JSONResponse({"error": "upstream"}, status_code=500)


@consumes_usage(10)
def sync_fail500(request: Request) -> Response:
    return JSONResponse({"error": "upstream"}, status_code=500)


@consumes_usage(lambda request: int(request.query_params["n"]))
async def async_sized(request: Request) -> Response:
    return JSONResponse({"ok": True})


@consumes_usage(10)
async def async_redirect(request: Request) -> Response:
    return RedirectResponse("/done", status_code=303)


@consumes_usage(10)
async def async_slow(request: Request) -> Response:
    request.app.state.licenzy.lz.clock.advance(minutes=10)  # past the hold's TTL
    return JSONResponse({"done": "too late"})


@consumes_usage(10)
def sync_slow(request: Request) -> Response:
    request.app.state.licenzy.lz.clock.advance(minutes=10)
    return JSONResponse({"done": "too late"})


@requires_access("reports")
def feature_reports(request: Request) -> Response:
    return JSONResponse({"feature": "reports"})


@requires_access(feature="sso")
async def feature_sso(request: Request) -> Response:
    return JSONResponse({"feature": "sso"})


@consumes_usage(10, meter="api_calls")
async def feature_api(request: Request) -> Response:
    hold = request.state.licenzy_reservation
    return JSONResponse({"hold": hold.units, "meter": hold.meter})


@consumes_usage(1, meter="api_cals")
def feature_typo(request: Request) -> Response:
    return JSONResponse({"ran": True})


def create_app(lz: Licenzy, **options: Any) -> Starlette:
    options.setdefault("subject_resolver", header_subject)
    billing = LicenzyASGI(lz, **options)
    app = Starlette(routes=[
        Mount("/billing", routes=billing.routes),
        Route("/async/report", async_report, methods=["GET", "OPTIONS"]),
        Route("/sync/report", sync_report, methods=["GET", "OPTIONS"]),
        Route("/async/generate", async_generate, methods=["POST", "OPTIONS"]),
        Route("/sync/generate", sync_generate, methods=["POST", "OPTIONS"]),
        Route("/async/boom", async_boom, methods=["POST"]),
        Route("/sync/boom", sync_boom, methods=["POST"]),
        Route("/async/fail500", async_fail500, methods=["POST"]),
        Route("/sync/fail500", sync_fail500, methods=["POST"]),
        Route("/async/sized", async_sized, methods=["POST"]),
        Route("/async/redirect", async_redirect, methods=["POST"]),
        Route("/async/slow", async_slow, methods=["POST"]),
        Route("/sync/slow", sync_slow, methods=["POST"]),
        Route("/features/reports", feature_reports),
        Route("/features/sso", feature_sso),
        Route("/features/api", feature_api, methods=["POST"]),
        Route("/features/typo", feature_typo, methods=["POST"]),
    ])
    app.state.licenzy = billing
    return app
