"""The README's Flask testing recipe, with the fixtures of licenzy-embed's pytest plugin."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from licenzy_embed import Licenzy
from licenzy_embed.testing import StripeSimulator

from .app import create_app


@pytest.fixture
def client(licenzy: Licenzy) -> FlaskClient:
    return create_app(licenzy).test_client()


def test_a_purchase_unlocks_the_report(client: FlaskClient, licenzy: Licenzy,
                                       stripe_simulator: StripeSimulator) -> None:
    stripe_simulator.deliver_with(
        lambda payload, signature: client.post("/billing/webhooks/stripe", data=payload,
                                               headers={"Stripe-Signature": signature}))
    alice = {"X-User": "alice"}
    assert client.get("/sync/report", headers=alice).status_code == 402

    session = licenzy.create_checkout_session("alice", "PRO_MONTHLY", idempotency_key="t-1")
    stripe_simulator.complete_checkout(session)  # signed events through the webhook route
    assert client.get("/sync/report", headers=alice).status_code == 200

    stripe_simulator.cancel("alice")
    assert client.get("/sync/report", headers=alice).status_code == 402
