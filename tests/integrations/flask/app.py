"""The Flask app the tests drive: decorated sync and async views beside the billing routes.

The subject comes from an ``X-User`` header here: a test convenience only. A real app loads
it from its session or token (see test_mounting.py)."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, g, request

from licenzy_embed import Licenzy
from licenzy_embed.integrations.flask import LicenzyFlask, consumes_usage, requires_access


def create_app(lz: Licenzy, **options: Any) -> Flask:
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a raising view answers 500, as in production
    billing = LicenzyFlask(lz, **options)

    @billing.subject_loader
    def subject() -> str | None:
        return request.headers.get("X-User")

    billing.init_app(app)

    @app.get("/sync/report")
    @requires_access
    def sync_report() -> dict[str, Any]:
        return {"report": "sync"}

    @app.get("/async/report")
    @requires_access()
    async def async_report() -> dict[str, Any]:
        return {"report": "async"}

    @app.post("/sync/generate")
    @consumes_usage(10)
    def sync_generate() -> dict[str, Any]:
        return {"generated": "sync", "hold": g.licenzy_reservation.units}

    @app.post("/async/generate")
    @consumes_usage(10)
    async def async_generate() -> dict[str, Any]:
        return {"generated": "async", "hold": g.licenzy_reservation.units}

    @app.post("/sync/boom")
    @consumes_usage(10)
    def sync_boom() -> dict[str, Any]:
        raise RuntimeError("the work failed")

    @app.post("/async/boom")
    @consumes_usage(10)
    async def async_boom() -> dict[str, Any]:
        raise RuntimeError("the work failed")

    @app.post("/sync/fail500")
    @consumes_usage(10)
    def sync_fail500() -> tuple[dict[str, Any], int]:
        return {"error": "upstream"}, 500

    @app.post("/async/fail500")
    @consumes_usage(10)
    async def async_fail500() -> tuple[dict[str, Any], int]:
        return {"error": "upstream"}, 500

    @app.post("/sync/invalid")
    @consumes_usage(10)
    def sync_invalid() -> None:
        return None  # not a response: Flask raises TypeError

    @app.post("/async/invalid")
    @consumes_usage(10)
    async def async_invalid() -> None:
        return None

    @app.post("/sync/missing")
    @consumes_usage(10)
    def sync_missing() -> None:
        abort(404)

    @app.post("/sync/sized")
    @consumes_usage(lambda req: int(req.args["n"]))
    def sync_sized() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/sync/partial")
    @consumes_usage(10)
    def sync_partial() -> dict[str, Any]:
        return {"used": g.licenzy_reservation.commit(units=3).consumed}

    @app.post("/sync/redirect")
    @consumes_usage(10)
    def sync_redirect() -> tuple[str, int, dict[str, str]]:
        return "", 303, {"Location": "/done"}

    @app.post("/sync/slow")
    @consumes_usage(10)
    def sync_slow() -> dict[str, Any]:
        lz.clock.advance(minutes=10)  # type: ignore[attr-defined]  # past the hold's TTL
        return {"done": "too late"}

    @app.get("/features/reports")
    @requires_access("reports")
    def feature_reports() -> dict[str, Any]:
        return {"feature": "reports"}

    @app.get("/features/sso")
    @requires_access(feature="sso")
    async def feature_sso() -> dict[str, Any]:
        return {"feature": "sso"}

    @app.post("/features/api")
    @consumes_usage(10, meter="api_calls")
    def feature_api() -> dict[str, Any]:
        hold = g.licenzy_reservation
        return {"hold": hold.units, "meter": hold.meter}

    @app.post("/features/typo")
    @consumes_usage(1, meter="api_cals")
    def feature_typo() -> dict[str, Any]:
        return {"ran": True}

    @app.route("/sync/guarded-preflight", methods=["GET", "OPTIONS"])
    @requires_access
    @consumes_usage(10)
    def preflight() -> dict[str, Any]:
        return {"method": request.method}

    return app
