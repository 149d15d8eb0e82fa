"""``requires_access`` and ``consumes_usage`` on sync and async Django views, through
``django.test.Client`` (WSGI handler) and ``AsyncClient`` (ASGI handler)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client
from django.test.utils import override_settings

from licenzy_embed import Licenzy
from licenzy_embed.integrations.django import consumes_usage, get_licenzy
from licenzy_embed.integrations.django.conf import read_settings

from .._support import credits, remaining

KINDS = ["sync", "async"]


def subject(user: Any) -> str:
    return str(user.pk)


@pytest.fixture
def client(alice: Any) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    return client


@contextmanager
def licenzy_settings(lz: Licenzy, **extra: Any) -> Iterator[None]:
    with override_settings(LICENZY={"INSTANCE": lz, **extra}):
        yield


# --------------------------------------------------------------------------- requires_access
@pytest.mark.parametrize("kind", [*KINDS, "class"])
def test_requires_access_allows_a_subject_with_access(client: Client, lz: Licenzy, alice: Any,
                                                      kind: str) -> None:
    lz.grant(subject(alice), "WEEK_PASS", reason="test")
    response = client.get(f"/{kind}/report")
    assert response.status_code == 200
    assert response.json() == {"report": kind}


@pytest.mark.parametrize("kind", [*KINDS, "class"])
def test_requires_access_answers_402_without_access(client: Client, lz: Licenzy,
                                                    kind: str) -> None:
    response = client.get(f"/{kind}/report")
    assert response.status_code == 402
    assert response.json()["error"] == "access_denied"


@pytest.mark.parametrize("kind", KINDS)
def test_requires_access_answers_401_without_a_subject(lz: Licenzy, kind: str) -> None:
    response = Client().get(f"/{kind}/report")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


@pytest.mark.parametrize("kind", KINDS)
def test_requires_access_fails_closed_when_the_store_is_down(client: Client, lz: Licenzy,
                                                             alice: Any, kind: str) -> None:
    lz.grant(subject(alice), "WEEK_PASS", reason="test")
    with lz.store.unavailable():  # type: ignore[attr-defined]
        response = client.get(f"/{kind}/report")
    assert response.status_code == 503
    assert response.json()["error"] == "entitlements_unavailable"


def test_async_views_through_the_asgi_handler(lz: Licenzy, alice: Any, bob: Any) -> None:
    lz.grant(subject(alice), "WEEK_PASS", reason="test")

    async def scenario() -> list[int]:
        as_alice, as_bob = AsyncClient(), AsyncClient()
        await as_alice.aforce_login(alice)
        await as_bob.aforce_login(bob)
        statuses = []
        for client in (as_alice, as_bob, AsyncClient()):
            statuses.append((await client.get("/async/report")).status_code)
        with lz.store.unavailable():  # type: ignore[attr-defined]
            statuses.append((await as_alice.get("/async/report")).status_code)
        return statuses

    assert asyncio.run(scenario()) == [200, 402, 401, 503]


@pytest.mark.parametrize("path", ["/sync/report", "/async/report", "/class/report",
                                  "/sync/generate", "/async/generate"])
def test_options_preflight_is_answered_without_running_the_view(lz: Licenzy, client: Client,
                                                                alice: Any, path: str) -> None:
    """Django hands OPTIONS to every function view: the decorator answers the preflight
    itself, so neither the paid content nor the metered work is given away for free."""
    credits(lz, subject(alice))
    for anyone in (Client(), client):
        response = anyone.options(path)
        assert (response.status_code, response.content) == (200, b"")
    assert remaining(lz, subject(alice)) == 100
    assert {e.action for e in lz.ledger(subject(alice))} == {"granted"}  # nothing was held
    assert Client().get("/sync/report").status_code == 401


# --------------------------------------------------------------------------- consumes_usage
@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_charges_once_on_success(client: Client, lz: Licenzy, alice: Any,
                                                kind: str) -> None:
    credits(lz, subject(alice))
    response = client.post(f"/{kind}/generate")
    assert response.status_code == 200
    assert response.json() == {"generated": kind, "hold": 10}
    assert remaining(lz, subject(alice)) == 90


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_charges_nothing_when_the_view_raises(client: Client, lz: Licenzy,
                                                             alice: Any, kind: str) -> None:
    credits(lz, subject(alice))
    assert client.post(f"/{kind}/boom").status_code == 500
    assert remaining(lz, subject(alice)) == 100


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_charges_nothing_for_a_500_response(client: Client, lz: Licenzy,
                                                           alice: Any, kind: str) -> None:
    credits(lz, subject(alice))
    response = client.post(f"/{kind}/fail500")
    assert response.status_code == 500 and response.json() == {"error": "upstream"}
    assert remaining(lz, subject(alice)) == 100


def test_consumes_usage_charges_a_redirect(client: Client, lz: Licenzy, alice: Any) -> None:
    credits(lz, subject(alice))
    assert client.post("/sync/redirect").status_code == 302
    assert remaining(lz, subject(alice)) == 90


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_answers_409_when_short(client: Client, lz: Licenzy, alice: Any,
                                               kind: str) -> None:
    credits(lz, subject(alice), units=4)
    response = client.post(f"/{kind}/generate")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "insufficient_usage"
    assert (body["requested"], body["usage_remaining"]) == (10, 4)
    assert remaining(lz, subject(alice)) == 4


@pytest.mark.parametrize("kind", KINDS)
def test_consumes_usage_denials(client: Client, lz: Licenzy, alice: Any, kind: str) -> None:
    assert Client().post(f"/{kind}/generate").status_code == 401
    credits(lz, subject(alice))
    with lz.store.unavailable():  # type: ignore[attr-defined]
        assert client.post(f"/{kind}/generate").status_code == 503
    assert remaining(lz, subject(alice)) == 100


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_with_the_same_idempotency_key_is_charged_once(client: Client, lz: Licenzy,
                                                               alice: Any, kind: str) -> None:
    credits(lz, subject(alice))
    first = client.post(f"/{kind}/generate", headers={"Idempotency-Key": "job-42"})
    retry = client.post(f"/{kind}/generate", headers={"Idempotency-Key": "job-42"})
    assert first.status_code == retry.status_code == 200
    assert remaining(lz, subject(alice)) == 90
    assert client.post(f"/{kind}/generate",
                       headers={"Idempotency-Key": "job-43"}).status_code == 200
    assert remaining(lz, subject(alice)) == 80


def test_units_may_be_a_function_of_the_request(client: Client, lz: Licenzy,
                                                alice: Any) -> None:
    credits(lz, subject(alice))
    assert client.post("/sync/sized?n=7").status_code == 200
    assert remaining(lz, subject(alice)) == 93


def test_bad_units_fail_when_decorating() -> None:
    with pytest.raises(ValueError):
        consumes_usage(-1)


def test_concurrent_requests_never_overspend_sync_view(lz: Licenzy) -> None:
    """20 threads, each its own WSGI test client: exactly 10 of 20 requests for 10 units fit
    in 100 units."""
    credits(lz, "api-user")
    with licenzy_settings(lz, SUBJECT_RESOLVER="tests.integrations.django.billing.header_subject"):
        def call(_: int) -> int:
            return Client().post("/sync/generate", headers={"X-User": "api-user"}).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(call, range(20)))
    assert (statuses.count(200), statuses.count(409)) == (10, 10)
    assert remaining(lz, "api-user") == 0


def test_concurrent_requests_never_overspend_async_view(lz: Licenzy) -> None:
    credits(lz, "api-user")
    with licenzy_settings(lz, SUBJECT_RESOLVER="tests.integrations.django.billing.header_subject"):
        async def burst() -> list[int]:
            client = AsyncClient()
            responses = await asyncio.gather(*(
                client.post("/async/generate", headers={"X-User": "api-user"})
                for _ in range(20)))
            return [r.status_code for r in responses]

        statuses = asyncio.run(burst())
    assert (statuses.count(200), statuses.count(409)) == (10, 10)
    assert remaining(lz, "api-user") == 0


# --------------------------------------------------------------------------- settings
def test_the_denial_response_can_be_replaced(lz: Licenzy) -> None:
    with licenzy_settings(lz, DENIAL_HANDLER="tests.integrations.django.billing.teapot"):
        response = Client().get("/sync/report")
    assert response.status_code == 418
    assert response.content == b"denied: unauthenticated"


def test_the_instance_may_be_a_factory_or_a_dotted_path(lz: Licenzy) -> None:
    with override_settings(LICENZY={"INSTANCE": lambda: lz}):
        assert get_licenzy() is lz
    with override_settings(LICENZY={
            "INSTANCE": "tests.integrations.django.billing.create_licenzy"}):
        assert isinstance(get_licenzy(), Licenzy)


@pytest.mark.parametrize("config", [
    None,
    {},
    {"INSTANCE": "tests.integrations.django.billing.nothing_here"},
    {"INSTANCE": "tests.integrations.django.billing.teapot_"},
    {"INSTANCE": 42},
    {"INSTANCE": lambda: "not a Licenzy"},
    {"INSTANCE": "tests.integrations.django.billing.create_licenzy", "SUBJECT_RESOLVR": "x"},
    {"INSTANCE": "tests.integrations.django.billing.create_licenzy",
     "SUBJECT_RESOLVER": "tests.integrations.django.billing.WEBHOOK_SECRET_"},
    {"INSTANCE": "tests.integrations.django.billing.create_licenzy", "DENIAL_HANDLER": 3},
])
def test_bad_settings_are_improperly_configured(config: Any) -> None:
    with override_settings(LICENZY=config), pytest.raises(ImproperlyConfigured):
        read_settings()


def test_the_app_checks_its_settings_when_django_loads_it() -> None:
    from django.apps import apps

    config = apps.get_app_config("licenzy_embed")
    with override_settings(LICENZY={"INSTANCE": 42}), pytest.raises(ImproperlyConfigured):
        config.ready()


@pytest.mark.parametrize("kind", KINDS)
def test_a_view_that_outlives_its_hold_is_not_charged(client: Client, lz: Licenzy,
                                                      alice: Any, kind: str) -> None:
    credits(lz, subject(alice))
    response = client.post(f"/{kind}/slow")
    assert (response.status_code, response.json()["error"]) == (409, "reservation_expired")
    assert remaining(lz, subject(alice)) == 100


@pytest.mark.parametrize("kind", KINDS)
def test_a_uuid_primary_key_is_a_subject(lz: Licenzy, kind: str) -> None:
    """Custom user models often have a UUID pk: the default resolver returns ``user.pk``, so
    a UUID must be a subject (its str), not a 500 on every request."""
    pk = uuid.UUID("12345678-1234-5678-1234-567812345678")
    lz.grant(str(pk), "WEEK_PASS", reason="test")
    with licenzy_settings(lz, SUBJECT_RESOLVER=lambda request: pk):
        response = Client(raise_request_exception=False).get(f"/{kind}/report")
    assert response.status_code == 200


def _broken_resolver(request: Any) -> str:
    raise LookupError("the session backend is down")


@pytest.mark.parametrize("path", ["/sync/report", "/async/report", "/class/report",
                                  "/sync/generate", "/async/generate"])
def test_a_raising_resolver_or_a_missing_setting_never_lets_the_view_run(
        client: Client, lz: Licenzy, alice: Any, path: str) -> None:
    """A bug in the app's resolver, or LICENZY gone, is a 500 — never an allow — and holds
    nothing."""
    credits(lz, subject(alice))
    lz.grant(subject(alice), "WEEK_PASS", reason="test")
    method = client.get if path.endswith("report") else client.post
    with licenzy_settings(lz, SUBJECT_RESOLVER=_broken_resolver):
        response = method(path)
    assert response.status_code == 500
    assert b"report" not in response.content and b"generated" not in response.content
    with override_settings(LICENZY=None):
        response = method(path)
    assert response.status_code == 500
    assert b"report" not in response.content and b"generated" not in response.content
    assert remaining(lz, subject(alice)) == 100
