"""The default subject loader with Flask-Login: ``current_user.get_id()``."""

from __future__ import annotations

from typing import Any

import flask_login
from flask import Flask, request

from licenzy_embed.integrations.flask import LicenzyFlask, requires_access

from .._support import make_lz


class User(flask_login.UserMixin):  # type: ignore[misc]
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def test_the_default_subject_is_flask_logins_current_user() -> None:
    lz = make_lz()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "tests-only"
    login_manager = flask_login.LoginManager(app)

    @login_manager.user_loader
    def load_user(user_id: str) -> Any:
        return User(user_id)

    LicenzyFlask(lz, app)  # no subject_loader: the default one

    @app.post("/login")
    def login() -> str:
        flask_login.login_user(User(request.args["id"]))
        return "ok"

    @app.get("/report")
    @requires_access
    def report() -> str:
        return "report"

    lz.grant("u-1", "WEEK_PASS", reason="test")
    client = app.test_client()
    assert client.get("/report").status_code == 401
    client.post("/login?id=u-2")
    assert client.get("/report").status_code == 402
    assert client.get("/billing/access").json["subject_ref"] == "u-2"  # type: ignore[index]
    client.post("/login?id=u-1")
    assert client.get("/report").status_code == 200
