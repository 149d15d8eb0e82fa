"""FastAPI dependencies ``require_access`` and ``consume_usage`` with ``LicenzyRoute``; the
assertions Starlette's decorators share are in ``_asgi_metering.py``."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from licenzy_embed import Licenzy, Reservation
from licenzy_embed.integrations.asgi import (
    LicenzyDenied,
    consume_usage,
    denial_exception_handler,
    require_access,
)

from .._asgi_metering import *  # noqa: F403 - the tests shared with Starlette's decorators
from .._support import credits, remaining

KINDS = ["async", "sync"]


def as_user(subject: str) -> dict[str, str]:
    return {"X-User": subject}


# --------------------------------------------------------------------------- require_access
@pytest.mark.parametrize("kind", KINDS)
def test_require_access_allows_and_gives_the_subject(client: TestClient, lz: Licenzy,
                                                     kind: str) -> None:
    lz.grant("alice", "WEEK_PASS", reason="test")
    response = client.get(f"/{kind}/report", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.json() == {"report": kind, "subject": "alice"}


def test_the_subject_may_come_from_a_fastapi_dependency(client: TestClient,
                                                        lz: Licenzy) -> None:
    lz.grant("carol", "WEEK_PASS", reason="test")
    credits(lz, "carol")
    token = {"Authorization": "Bearer user:carol"}
    assert client.get("/token/report", headers=token).json() == {"subject": "carol"}
    assert client.get("/token/report").status_code == 401
    assert client.post("/token/generate", headers=token).json() == {"subject": "carol"}
    assert remaining(lz, "carol") == 95


def test_without_licenzy_route_denials_keep_their_status(lz: Licenzy) -> None:
    """A plain FastAPI route answers a denial with the right status and FastAPI's own
    ``{"detail": ...}`` body; the exception handler gives the standard JSON instead."""

    def plain_app(*, handler: bool) -> FastAPI:
        plain = FastAPI()
        if handler:
            plain.add_exception_handler(LicenzyDenied, denial_exception_handler)

        access = require_access(lz)

        @plain.get("/report")
        async def report(subject: str = Depends(access)) -> dict[str, Any]:
            return {"subject": subject}

        return plain

    with TestClient(plain_app(handler=False)) as client:
        response = client.get("/report")
        assert response.status_code == 401 and "detail" in response.json()
    with TestClient(plain_app(handler=True)) as client:
        response = client.get("/report")
        assert response.status_code == 401 and response.json()["error"] == "unauthenticated"


def test_consume_usage_without_licenzy_route_holds_nothing_and_fails(lz: Licenzy) -> None:
    plain = FastAPI()

    charge10 = consume_usage(lz, 10)

    @plain.post("/generate")
    async def generate(hold: Reservation = Depends(charge10)) -> dict[str, Any]:
        return {}

    credits(lz, "alice")

    @plain.middleware("http")
    async def subject(request: Any, call_next: Any) -> Any:
        request.state.licenzy_subject = "alice"
        return await call_next(request)

    with TestClient(plain, raise_server_exceptions=False) as client:
        assert client.post("/generate").status_code == 500
    assert remaining(lz, "alice") == 100


# --------------------------------------------------------------------------- consume_usage


def test_consume_usage_charges_nothing_for_an_http_exception(client: TestClient,
                                                             lz: Licenzy) -> None:
    credits(lz, "alice")
    response = client.post("/async/not-found", headers=as_user("alice"))
    assert response.status_code == 404 and response.json() == {"detail": "no such thing"}
    assert remaining(lz, "alice") == 100


def test_consume_usage_charges_a_201(client: TestClient, lz: Licenzy) -> None:
    credits(lz, "alice")
    assert client.post("/async/created", headers=as_user("alice")).status_code == 201
    assert remaining(lz, "alice") == 90


def test_the_charge_is_committed_before_the_response_is_sent(client: TestClient,
                                                             lz: Licenzy) -> None:
    credits(lz, "alice")
    response = client.post("/async/stream", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.text == "remaining while streaming: 90"


def test_units_may_be_a_function_of_the_request(client: TestClient, lz: Licenzy) -> None:
    credits(lz, "alice")
    assert client.post("/async/sized?n=7", headers=as_user("alice")).json() == {"units": 7}
    assert remaining(lz, "alice") == 93


