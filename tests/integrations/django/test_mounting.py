"""The Django app under a non-default prefix, beside the project's sessions, auth and CSRF."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from licenzy_embed import Licenzy


def test_the_webhook_is_csrf_exempt_while_the_apps_posts_stay_protected(lz: Licenzy,
                                                                        alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    # No CSRF token, yet the webhook reaches its own signature check (400), not CSRF (403).
    response = client.post("/billing/webhooks/stripe", data=b"{}",
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_signature"
    # The app's own POST view and the checkout route (it acts for the signed-in user) keep
    # CsrfViewMiddleware's protection.
    assert client.post("/app/post").status_code == 403
    assert client.post("/billing/checkout", data=b'{"product_code": "WEEK_PASS"}',
                       content_type="application/json").status_code == 403
    token = client.get("/csrf").json()["token"]
    assert client.post("/app/post", headers={"X-CSRFToken": token}).status_code == 200


def test_mounted_under_another_prefix_beside_the_apps_routes(lz: Licenzy) -> None:
    with override_settings(ROOT_URLCONF="tests.integrations.django.urls_prefixed"):
        assert reverse("licenzy:access") == "/api/v2/payments/access"
        assert reverse("licenzy:webhook") == "/api/v2/payments/webhooks/stripe"
        client = Client()
        assert client.get("/billing/access").status_code == 404
        assert client.get("/api/v2/payments/access").status_code == 401
        # A real login through the auth backend and the session middleware.
        assert client.login(username="bob", password="pw")
        from django.contrib.auth.models import User

        bob = str(User.objects.get(username="bob").pk)
        body = client.get("/api/v2/payments/access").json()
        assert body == {"subject_ref": bob, "has_access": False, "status": "none",
                        "features": [], "entitlements": []}
        assert client.get("/sync/report").status_code == 402
        lz.grant(bob, "WEEK_PASS", reason="test")
        assert client.get("/api/v2/payments/access").json()["has_access"] is True
        assert client.get("/sync/report").status_code == 200
        client.logout()
        assert client.get("/sync/report").status_code == 401


def test_billing_routes_answer_only_their_methods(lz: Licenzy) -> None:
    client = Client()
    assert client.get("/billing/webhooks/stripe").status_code == 405
    assert client.post("/billing/access").status_code == 405
    assert client.get("/billing/checkout").status_code == 405
