"""``requires_access`` and ``consumes_usage`` on sync and async Flask views."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient

from licenzy_embed import Licenzy
from licenzy_embed.integrations.flask import LicenzyFlask, consumes_usage, requires_access

from .._support import credits, make_lz, remaining

KINDS = ["sync", "async"]


def as_user(subject: str) -> dict[str, str]:
    return {"X-User": subject}


# --------------------------------------------------------------------------- requires_access
@pytest.mark.parametrize("kind", KINDS)
def test_requires_access_allows_a_subject_with_access(client: FlaskClient, lz: Licenzy,
                                                      kind: str) -> None:
    lz.grant("alice", "WEEK_PASS", reason="test")
    response = client.get(f"/{kind}/report", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.json == {"report": kind}


@pytest.mark.parametrize("kind", KINDS)
def test_requires_access_answers_402_without_access(client: FlaskClient, kind: str) -> None:
    response = client.get(f"/{kind}/report", headers=as_user("bob"))
    assert response.status_code == 402
    assert response.json is not None and response.json["error"] == "access_denied"
    assert response.json["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_requires_access_answers_401_without_a_subject(client: FlaskClient, kind: str) -> None:
    response = client.get(f"/{kind}/report")
    assert response.status_code == 401
    assert response.json is not None and response.json["error"] == "unauthenticated"


@pytest.mark.parametrize("kind", KINDS)
def test_requires_access_fails_closed_when_the_store_is_down(client: FlaskClient, lz: Licenzy,
                                                             kind: str) -> None:
    lz.grant("alice", "WEEK_PASS", reason="test")
    with lz.store.unavailable():  # type: ignore[attr-defined]
        response = client.get(f"/{kind}/report", headers=as_user("alice"))
    assert response.status_code == 503
    assert response.json is not None and response.json["error"] == "entitlements_unavailable"


def test_expired_access_is_denied(client: FlaskClient, lz: Licenzy) -> None:
    lz.grant("alice", "WEEK_PASS", reason="test")
    lz.clock.advance(days=8)  # type: ignore[attr-defined]
    assert client.get("/sync/report", headers=as_user("alice")).status_code == 402


def test_options_preflight_is_answered_without_running_the_view(client: FlaskClient,
                                                                lz: Licenzy) -> None:
    """A view that lists OPTIONS itself still never runs unguarded (nor uncharged) for it."""
    credits(lz, "alice")
    for headers in ({}, as_user("alice")):
        response = client.open("/sync/guarded-preflight", method="OPTIONS", headers=headers)
        assert (response.status_code, response.data) == (200, b"")
        assert set(response.headers["Allow"].split(", ")) >= {"GET", "OPTIONS"}
    assert remaining(lz, "alice") == 100
    assert {e.action for e in lz.ledger("alice")} == {"granted"}  # nothing was held
    assert client.get("/sync/guarded-preflight").status_code == 401


def test_requires_access_keeps_the_view_metadata() -> None:
    @requires_access
    def bare() -> str:
        """doc"""
        return ""

    @requires_access()
    async def called() -> str:
        return ""

    import inspect

    assert bare.__name__ == "bare" and bare.__doc__ == "doc"
    assert inspect.iscoroutinefunction(called) and called.__name__ == "called"


# --------------------------------------------------------------------------- consumes_usage
@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_charges_once_on_success(client: FlaskClient, lz: Licenzy,
                                                kind: str) -> None:
    credits(lz, "alice")
    response = client.post(f"/{kind}/generate", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.json == {"generated": kind, "hold": 10}
    assert remaining(lz, "alice") == 90


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_charges_nothing_when_the_view_raises(client: FlaskClient, lz: Licenzy,
                                                             kind: str) -> None:
    credits(lz, "alice")
    response = client.post(f"/{kind}/boom", headers=as_user("alice"))
    assert response.status_code == 500
    assert remaining(lz, "alice") == 100


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_charges_nothing_for_a_500_response(client: FlaskClient, lz: Licenzy,
                                                           kind: str) -> None:
    credits(lz, "alice")
    response = client.post(f"/{kind}/fail500", headers=as_user("alice"))
    assert response.status_code == 500
    assert response.json == {"error": "upstream"}
    assert remaining(lz, "alice") == 100


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_releases_the_hold_when_the_view_returns_no_valid_response(
        client: FlaskClient, lz: Licenzy, kind: str) -> None:
    """Flask cannot make a response of None: that 500 must give the units back at once,
    not leave them held until the hold expires."""
    credits(lz, "alice")
    response = client.post(f"/{kind}/invalid", headers=as_user("alice"))
    assert response.status_code == 500
    assert remaining(lz, "alice") == 100
    assert [e.action for e in lz.ledger("alice")].count("released") == 1


def test_consumes_usage_charges_nothing_for_an_aborted_view(client: FlaskClient,
                                                            lz: Licenzy) -> None:
    credits(lz, "alice")
    assert client.post("/sync/missing", headers=as_user("alice")).status_code == 404
    assert remaining(lz, "alice") == 100


def test_consumes_usage_charges_a_redirect(client: FlaskClient, lz: Licenzy) -> None:
    credits(lz, "alice")
    assert client.post("/sync/redirect", headers=as_user("alice")).status_code == 303
    assert remaining(lz, "alice") == 90


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_answers_409_when_short(client: FlaskClient, lz: Licenzy,
                                               kind: str) -> None:
    credits(lz, "alice", units=4)
    response = client.post(f"/{kind}/generate", headers=as_user("alice"))
    assert response.status_code == 409
    assert response.json is not None
    assert response.json["error"] == "insufficient_usage"
    assert response.json["requested"] == 10
    assert response.json["usage_remaining"] == 4
    assert remaining(lz, "alice") == 4


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_denials(client: FlaskClient, lz: Licenzy, kind: str) -> None:
    assert client.post(f"/{kind}/generate").status_code == 401
    # Nothing to spend from at all: 402, like a denied access (409 is for "not enough").
    assert client.post(f"/{kind}/generate", headers=as_user("nobody")).status_code == 402
    credits(lz, "alice")
    with lz.store.unavailable():  # type: ignore[attr-defined]
        response = client.post(f"/{kind}/generate", headers=as_user("alice"))
    assert response.status_code == 503
    assert remaining(lz, "alice") == 100


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_with_the_same_idempotency_key_is_charged_once(client: FlaskClient,
                                                               lz: Licenzy, kind: str) -> None:
    credits(lz, "alice")
    headers = {**as_user("alice"), "Idempotency-Key": "job-42"}
    first = client.post(f"/{kind}/generate", headers=headers)
    retry = client.post(f"/{kind}/generate", headers=headers)
    assert first.status_code == retry.status_code == 200
    assert remaining(lz, "alice") == 90
    # A new key is a new piece of work.
    assert client.post(f"/{kind}/generate",
                       headers={**as_user("alice"), "Idempotency-Key": "job-43"}).status_code == 200
    assert remaining(lz, "alice") == 80


def test_a_failed_attempt_then_its_retry_is_charged_once(client: FlaskClient,
                                                         lz: Licenzy) -> None:
    credits(lz, "alice")
    headers = {**as_user("alice"), "Idempotency-Key": "job-7"}
    assert client.post("/sync/fail500", headers=headers).status_code == 500
    assert remaining(lz, "alice") == 100
    assert client.post("/sync/generate", headers=headers).status_code == 200
    assert client.post("/sync/generate", headers=headers).status_code == 200
    assert remaining(lz, "alice") == 90


def test_an_idempotency_key_is_scoped_to_its_view(client: FlaskClient, lz: Licenzy) -> None:
    """One key charged on one metered view does not make another metered view free."""
    credits(lz, "alice")
    headers = {**as_user("alice"), "Idempotency-Key": "same"}
    assert client.post("/sync/generate", headers=headers).status_code == 200
    assert client.post("/async/generate", headers=headers).status_code == 200
    assert remaining(lz, "alice") == 80


def test_units_may_be_a_function_of_the_request(client: FlaskClient, lz: Licenzy) -> None:
    credits(lz, "alice")
    assert client.post("/sync/sized?n=7", headers=as_user("alice")).status_code == 200
    assert remaining(lz, "alice") == 93
    response = client.post("/sync/sized?n=0", headers=as_user("alice"))
    assert response.status_code == 400
    assert response.json is not None and response.json["error"] == "invalid_request"
    assert remaining(lz, "alice") == 93


def test_the_view_may_commit_fewer_units(client: FlaskClient, lz: Licenzy) -> None:
    credits(lz, "alice")
    response = client.post("/sync/partial", headers=as_user("alice"))
    assert response.status_code == 200 and response.json == {"used": 3}
    assert remaining(lz, "alice") == 97


def test_bad_units_fail_when_decorating() -> None:
    with pytest.raises(ValueError):
        consumes_usage(0)
    with pytest.raises(TypeError):
        consumes_usage(True)
    with pytest.raises(TypeError):
        consumes_usage("10")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_requests_never_overspend(app: Flask, lz: Licenzy, kind: str) -> None:
    """20 concurrent requests for 10 units each on 100 units: exactly 10 succeed."""
    credits(lz, "alice")

    def call(_: int) -> int:
        with app.test_client() as client:
            return client.post(f"/{kind}/generate", headers=as_user("alice")).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(call, range(20)))
    assert statuses.count(200) == 10
    assert statuses.count(409) == 10
    assert remaining(lz, "alice") == 0


# --------------------------------------------------------------------------- configuration
def test_the_denial_response_can_be_replaced(lz: Licenzy) -> None:
    app = Flask(__name__)
    billing = LicenzyFlask(lz, app)

    @billing.denial_handler
    def denied(error: Exception) -> tuple[str, int]:
        return f"denied: {getattr(error, 'code', '?')}", 418

    @app.get("/report")
    @requires_access
    def report() -> str:
        return "ok"

    response = app.test_client().get("/report")
    assert response.status_code == 418
    assert response.get_data(as_text=True) == "denied: unauthenticated"


def test_default_subject_is_g_licenzy_subject(lz: Licenzy) -> None:
    from flask import g, request

    app = Flask(__name__)
    LicenzyFlask(lz).init_app(app)

    @app.before_request
    def api_token() -> None:
        if request.headers.get("Authorization") == "Bearer t0ken":
            g.licenzy_subject = "alice"

    @app.get("/report")
    @requires_access
    def report() -> str:
        return "ok"

    lz.grant("alice", "WEEK_PASS", reason="test")
    client = app.test_client()
    assert client.get("/report", headers={"Authorization": "Bearer t0ken"}).status_code == 200
    assert client.get("/report").status_code == 401


def test_decorated_views_fail_closed_without_the_extension() -> None:
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/report")
    @requires_access
    def report() -> str:
        return "secret"

    response = app.test_client().get("/report")
    assert response.status_code == 500
    assert b"secret" not in response.data


def test_configuration_errors_are_raised_early(lz: Licenzy) -> None:
    with pytest.raises(ValueError):
        LicenzyFlask().init_app(Flask(__name__))
    with pytest.raises(ValueError):
        LicenzyFlask(object())  # type: ignore[arg-type]
    app = Flask(__name__)
    LicenzyFlask(lz, app)
    with pytest.raises(RuntimeError):
        LicenzyFlask(lz, app)
    app = Flask(__name__)
    app.config["LICENZY_URL_PREFIX"] = "billing"
    with pytest.raises(ValueError):
        LicenzyFlask(lz, app)


def test_app_factory_gives_the_instance_to_init_app() -> None:
    billing = LicenzyFlask(url_prefix="/pay")
    lz = make_lz()
    app = Flask(__name__)
    billing.init_app(app, lz)
    assert app.extensions["licenzy"] is billing and billing.lz is lz
    response = app.test_client().get("/pay/access")
    assert response.status_code == 401


def test_a_view_that_outlives_its_hold_is_not_charged(client: FlaskClient,
                                                      lz: Licenzy) -> None:
    """The commit fails (the hold expired and its units went back): the client gets that
    error instead of the view's answer, and may retry under the same key."""
    credits(lz, "alice")
    response = client.post("/sync/slow", headers=as_user("alice"))
    assert response.status_code == 409
    assert response.json is not None and response.json["error"] == "reservation_expired"
    assert remaining(lz, "alice") == 100


@pytest.mark.parametrize("path", ["/sync/report", "/async/report", "/sync/generate",
                                  "/async/generate"])
def test_a_raising_subject_loader_never_lets_the_view_run(app: Flask, lz: Licenzy,
                                                          path: str) -> None:
    """A bug in the app's loader is a 500, never an allow, and holds nothing."""
    credits(lz, "alice")
    lz.grant("alice", "WEEK_PASS", reason="test")

    def broken() -> str:
        raise LookupError("the session backend is down")

    app.extensions["licenzy"].subject_loader(broken)
    method = "get" if path.endswith("report") else "post"
    response = app.test_client().open(path, method=method, headers=as_user("alice"))
    assert response.status_code == 500
    assert b"report" not in response.data and b"generated" not in response.data
    assert remaining(lz, "alice") == 100
