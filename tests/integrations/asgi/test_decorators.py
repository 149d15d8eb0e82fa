"""``requires_access`` and ``consumes_usage`` on async and sync Starlette endpoints; the
assertions FastAPI's dependencies share are in ``_asgi_metering.py``."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from licenzy_embed import Licenzy
from licenzy_embed.errors import LicenzyError
from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage, requires_access

from .._asgi_metering import *  # noqa: F403 - the tests shared with FastAPI's dependencies
from .._support import credits, remaining
from .app import create_app

KINDS = ["async", "sync"]


def as_user(subject: str) -> dict[str, str]:
    return {"X-User": subject}


# --------------------------------------------------------------------------- requires_access
@pytest.mark.parametrize("kind", KINDS)
def test_requires_access_allows_a_subject_with_access(client: TestClient, lz: Licenzy,
                                                      kind: str) -> None:
    lz.grant("alice", "WEEK_PASS", reason="test")
    response = client.get(f"/{kind}/report", headers=as_user("alice"))
    assert response.status_code == 200 and response.json() == {"report": kind}


@pytest.mark.parametrize("path", ["/async/report", "/sync/report", "/async/generate",
                                  "/sync/generate"])
def test_options_preflight_is_answered_without_running_the_endpoint(
        client: TestClient, lz: Licenzy, path: str) -> None:
    """An endpoint that lists OPTIONS itself still never runs unguarded (nor uncharged)."""
    credits(lz, "alice")
    for headers in ({}, as_user("alice")):
        response = client.options(path, headers=headers)
        assert (response.status_code, response.content) == (200, b"")
    assert remaining(lz, "alice") == 100
    assert {e.action for e in lz.ledger("alice")} == {"granted"}  # nothing was held
    assert client.get("/async/report").status_code == 401


def test_an_endpoint_without_a_request_parameter_fails_at_import_time() -> None:
    with pytest.raises(TypeError, match="request"):
        @requires_access
        async def endpoint(req: Request) -> Response:  # pragma: no cover
            raise AssertionError

    with pytest.raises(TypeError, match="request"):
        @consumes_usage(1)
        def other() -> Response:  # pragma: no cover
            raise AssertionError


def test_decorators_keep_the_endpoint_shape() -> None:
    async def report(request: Request) -> Response:
        """doc"""
        raise AssertionError

    wrapped = requires_access(report)
    assert inspect.iscoroutinefunction(wrapped) and wrapped.__doc__ == "doc"
    assert not inspect.iscoroutinefunction(consumes_usage(1)(lambda request: request))


def test_async_subject_resolvers_work_on_sync_and_async_endpoints(lz: Licenzy) -> None:
    async def resolver(request: Request) -> str | None:
        await asyncio.sleep(0)
        return request.headers.get("X-User")

    lz.grant("alice", "WEEK_PASS", reason="test")
    with TestClient(create_app(lz, subject_resolver=resolver)) as client:
        for kind in KINDS:
            assert client.get(f"/{kind}/report", headers=as_user("alice")).status_code == 200
            assert client.get(f"/{kind}/report").status_code == 401


def test_decorated_endpoints_fail_closed_without_configuration() -> None:
    @requires_access
    async def secret(request: Request) -> Response:
        return PlainTextResponse("secret")

    app = Starlette(routes=[Route("/secret", secret)])
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/secret")
    assert response.status_code == 500 and "secret" not in response.text


def test_app_state_may_hold_the_licenzy_instance_itself(lz: Licenzy) -> None:
    """Then the default resolver is used: request.state.licenzy_subject, else request.user."""

    @requires_access
    async def report(request: Request) -> Response:
        return PlainTextResponse("ok")

    class Subject:
        def __init__(self, app: object) -> None:
            self.app = app

        async def __call__(self, scope: dict[str, object], receive: object,
                           send: object) -> None:
            scope.setdefault("state", {})["licenzy_subject"] = "alice"  # type: ignore[index]
            await self.app(scope, receive, send)  # type: ignore[operator]

    from starlette.middleware import Middleware

    app = Starlette(routes=[Route("/report", report)], middleware=[Middleware(Subject)])
    app.state.licenzy = lz
    lz.grant("alice", "WEEK_PASS", reason="test")
    with TestClient(app) as client:
        assert client.get("/report").status_code == 200


def test_the_denial_response_can_be_replaced(lz: Licenzy) -> None:
    def teapot(request: Request, error: LicenzyError) -> Response:
        return PlainTextResponse(f"denied: {error.code}", status_code=418)

    with TestClient(create_app(lz, denial_handler=teapot)) as client:
        response = client.get("/sync/report")
        assert (response.status_code, response.text) == (418, "denied: unauthenticated")
        response = client.get("/billing/access")
        assert (response.status_code, response.text) == (418, "denied: unauthenticated")


def test_configuration_errors_are_raised_early(lz: Licenzy) -> None:
    with pytest.raises(ValueError):
        LicenzyASGI(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LicenzyASGI(lz, subject_resolver="header")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        consumes_usage(0)


# --------------------------------------------------------------------------- consumes_usage


def test_consumes_usage_charges_a_redirect(client: TestClient, lz: Licenzy) -> None:
    credits(lz, "alice")
    response = client.post("/async/redirect", headers=as_user("alice"), follow_redirects=False)
    assert response.status_code == 303
    assert remaining(lz, "alice") == 90


def test_units_may_be_a_function_of_the_request(client: TestClient, lz: Licenzy) -> None:
    credits(lz, "alice")
    assert client.post("/async/sized?n=7", headers=as_user("alice")).status_code == 200
    assert remaining(lz, "alice") == 93
    assert client.post("/async/sized?n=-2", headers=as_user("alice")).status_code == 400
    assert remaining(lz, "alice") == 93


def _broken_resolver(request: Request) -> str:
    raise LookupError("the session backend is down")


async def _broken_async_resolver(request: Request) -> str:
    raise LookupError("the session backend is down")


@pytest.mark.parametrize("resolver", [_broken_resolver, _broken_async_resolver])
@pytest.mark.parametrize("path", ["/async/report", "/sync/report", "/async/generate",
                                  "/sync/generate"])
def test_a_raising_resolver_never_lets_the_endpoint_run(lz: Licenzy, path: str,
                                                        resolver: Any) -> None:
    """A bug in the app's resolver is a 500, never an allow, and holds nothing."""
    credits(lz, "alice")
    lz.grant("alice", "WEEK_PASS", reason="test")
    app = create_app(lz, subject_resolver=resolver)
    method = "GET" if path.endswith("report") else "POST"
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.request(method, path, headers=as_user("alice"))
    assert response.status_code == 500
    assert "report" not in response.text and "generated" not in response.text
    assert remaining(lz, "alice") == 100


def test_a_streaming_response_is_charged_before_its_body_is_sent(lz: Licenzy) -> None:
    """The hold is settled on the response the endpoint returns, before the first chunk: a
    stream that fails part-way stays charged (as the README says)."""
    seen: list[int] = []

    @consumes_usage(10)
    async def stream(request: Request) -> Response:
        async def body() -> Any:
            seen.append(remaining(lz, "alice"))  # already charged when streaming starts
            yield b"first chunk"
            raise RuntimeError("the stream broke")

        return StreamingResponse(body())

    credits(lz, "alice")
    app = Starlette(routes=[Route("/stream", stream, methods=["POST"])])
    app.state.licenzy = LicenzyASGI(lz, subject_resolver=lambda request: "alice")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/stream")
    assert response.status_code == 200  # the status went out before the stream broke
    assert seen == [90]
    assert remaining(lz, "alice") == 90
