"""The metering and access tests Starlette's decorators and FastAPI's dependencies share: one
body, run by ``asgi/test_decorators.py`` and ``fastapi/test_dependencies.py`` against their
own app (``client``, ``app`` and ``lz`` fixtures), each on an async and a sync endpoint.

Both apps expose the same paths: ``/{kind}/report`` (access), ``/{kind}/generate`` (10 units),
``/{kind}/boom`` (raises), ``/{kind}/fail500`` (answers 500), ``/{kind}/slow`` (outlives its
hold); the subject comes from the ``X-User`` header."""

from __future__ import annotations

from typing import Any

import pytest

from licenzy_embed import Licenzy

from ._support import asgi_burst, credits, remaining

KINDS = ["async", "sync"]


def as_user(subject: str) -> dict[str, str]:
    return {"X-User": subject}


# --------------------------------------------------------------------------- access
@pytest.mark.parametrize("kind", KINDS)
def test_access_answers_402_without_access(client: Any, kind: str) -> None:
    response = client.get(f"/{kind}/report", headers=as_user("bob"))
    assert response.status_code == 402 and response.json()["error"] == "access_denied"


@pytest.mark.parametrize("kind", KINDS)
def test_access_answers_401_without_a_subject(client: Any, kind: str) -> None:
    response = client.get(f"/{kind}/report")
    assert response.status_code == 401 and response.json()["error"] == "unauthenticated"


@pytest.mark.parametrize("kind", KINDS)
def test_access_fails_closed_when_the_store_is_down(client: Any, lz: Licenzy,
                                                    kind: str) -> None:
    lz.grant("alice", "WEEK_PASS", reason="test")
    with lz.store.unavailable():  # type: ignore[attr-defined]
        response = client.get(f"/{kind}/report", headers=as_user("alice"))
    assert response.status_code == 503
    assert response.json()["error"] == "entitlements_unavailable"


# --------------------------------------------------------------------------- metering
@pytest.mark.parametrize("kind", KINDS)
def test_metering_charges_once_on_success(client: Any, lz: Licenzy, kind: str) -> None:
    credits(lz, "alice")
    response = client.post(f"/{kind}/generate", headers=as_user("alice"))
    assert response.status_code == 200
    assert response.json() == {"generated": kind, "hold": 10}
    assert remaining(lz, "alice") == 90


@pytest.mark.parametrize("kind", KINDS)
def test_metering_charges_nothing_when_the_endpoint_raises(client: Any, lz: Licenzy,
                                                           kind: str) -> None:
    credits(lz, "alice")
    assert client.post(f"/{kind}/boom", headers=as_user("alice")).status_code == 500
    assert remaining(lz, "alice") == 100


@pytest.mark.parametrize("kind", KINDS)
def test_metering_charges_nothing_for_a_returned_500(client: Any, lz: Licenzy,
                                                     kind: str) -> None:
    """What a yield dependency cannot see: the endpoint returned an error response."""
    credits(lz, "alice")
    response = client.post(f"/{kind}/fail500", headers=as_user("alice"))
    assert response.status_code == 500 and response.json() == {"error": "upstream"}
    assert remaining(lz, "alice") == 100


@pytest.mark.parametrize("kind", KINDS)
def test_metering_answers_409_when_short(client: Any, lz: Licenzy, kind: str) -> None:
    credits(lz, "alice", units=4)
    response = client.post(f"/{kind}/generate", headers=as_user("alice"))
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "insufficient_usage"
    assert (body["requested"], body["usage_remaining"]) == (10, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_metering_denials(client: Any, lz: Licenzy, kind: str) -> None:
    assert client.post(f"/{kind}/generate").status_code == 401
    credits(lz, "alice")
    with lz.store.unavailable():  # type: ignore[attr-defined]
        assert client.post(f"/{kind}/generate", headers=as_user("alice")).status_code == 503
    assert remaining(lz, "alice") == 100


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_with_the_same_idempotency_key_is_charged_once(client: Any, lz: Licenzy,
                                                               kind: str) -> None:
    credits(lz, "alice")
    headers = {**as_user("alice"), "Idempotency-Key": "job-42"}
    assert client.post(f"/{kind}/generate", headers=headers).status_code == 200
    assert client.post(f"/{kind}/generate", headers=headers).status_code == 200
    assert remaining(lz, "alice") == 90
    headers["Idempotency-Key"] = "job-43"
    assert client.post(f"/{kind}/generate", headers=headers).status_code == 200
    assert remaining(lz, "alice") == 80


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_requests_never_overspend(app: Any, lz: Licenzy, kind: str) -> None:
    """asyncio.gather of 20 requests for 10 units on 100 units: exactly 10 succeed."""
    credits(lz, "alice")
    statuses = asgi_burst(app, f"/{kind}/generate", as_user("alice"))
    assert (statuses.count(200), statuses.count(409)) == (10, 10)
    assert remaining(lz, "alice") == 0


@pytest.mark.parametrize("kind", KINDS)
def test_an_endpoint_that_outlives_its_hold_is_not_charged(client: Any, lz: Licenzy,
                                                           kind: str) -> None:
    credits(lz, "alice")
    response = client.post(f"/{kind}/slow", headers=as_user("alice"))
    assert (response.status_code, response.json()["error"]) == (409, "reservation_expired")
    assert remaining(lz, "alice") == 100
