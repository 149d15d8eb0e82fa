"""The extension under a non-default prefix, beside the app's own routes, sessions and
before_request hooks."""

from __future__ import annotations

from typing import Any

from flask import Flask, request, session

from licenzy_embed import Licenzy
from licenzy_embed.integrations.flask import LicenzyFlask, requires_access

from .._support import make_lz


def session_app(lz: Licenzy) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "tests-only"
    app.config["LICENZY_URL_PREFIX"] = "/api/v2/payments"
    billing = LicenzyFlask()

    @billing.subject_loader
    def from_session() -> Any:
        return session.get("user_id")

    @app.post("/login")
    def login() -> dict[str, Any]:
        session["user_id"] = request.form["user"]
        return {"logged_in": session["user_id"]}

    @app.post("/logout")
    def logout() -> dict[str, Any]:
        session.clear()
        return {}

    @app.get("/")
    def home() -> str:
        return "home"

    @app.get("/reports/latest")
    @requires_access
    def report() -> dict[str, Any]:
        return {"for": session["user_id"]}

    @app.after_request
    def tag(response: Any) -> Any:
        response.headers["X-App"] = "mine"
        return response

    billing.init_app(app, lz)
    return app


def test_mounted_under_the_configured_prefix_beside_the_apps_routes() -> None:
    lz = make_lz()
    app = session_app(lz)
    client = app.test_client()
    assert client.get("/").get_data(as_text=True) == "home"
    assert client.get("/billing/access").status_code == 404  # not at the default prefix
    response = client.get("/api/v2/payments/access")
    assert response.status_code == 401
    assert response.headers["X-App"] == "mine"  # the app's own hooks run on billing routes

    client.post("/login", data={"user": "u-17"})
    response = client.get("/api/v2/payments/access")
    assert response.status_code == 200
    assert response.json == {"subject_ref": "u-17", "has_access": False, "status": "none",
                             "features": [], "entitlements": []}
    assert client.get("/reports/latest").status_code == 402

    lz.grant("u-17", "WEEK_PASS", reason="test")
    body = client.get("/api/v2/payments/access").json
    assert body is not None and body["has_access"] is True
    assert body["entitlements"][0]["product_code"] == "WEEK_PASS"
    assert client.get("/reports/latest").json == {"for": "u-17"}

    client.post("/logout")
    assert client.get("/reports/latest").status_code == 401


def test_billing_routes_answer_only_their_methods() -> None:
    client = session_app(make_lz()).test_client()
    assert client.get("/api/v2/payments/webhooks/stripe").status_code == 405
    assert client.post("/api/v2/payments/access").status_code == 405
    assert client.get("/api/v2/payments/checkout").status_code == 405


def test_url_for_finds_the_billing_routes() -> None:
    from flask import url_for

    app = session_app(make_lz())
    with app.test_request_context():
        assert url_for("licenzy.webhook") == "/api/v2/payments/webhooks/stripe"
        assert url_for("licenzy.checkout") == "/api/v2/payments/checkout"
        assert url_for("licenzy.access") == "/api/v2/payments/access"
