"""The README's Starlette testing recipe, with the fixtures of licenzy-embed's pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from licenzy_embed import Licenzy
from licenzy_embed.testing import StripeSimulator

from .app import create_app


@pytest.fixture
def client(licenzy: Licenzy) -> Iterator[TestClient]:
    with TestClient(create_app(licenzy)) as client:
        yield client


def test_a_purchase_unlocks_the_report(client: TestClient, licenzy: Licenzy,
                                       stripe_simulator: StripeSimulator) -> None:
    stripe_simulator.deliver_with(
        lambda payload, signature: client.post("/billing/webhooks/stripe", content=payload,
                                               headers={"Stripe-Signature": signature}))
    alice = {"X-User": "alice"}
    assert client.get("/async/report", headers=alice).status_code == 402

    session = licenzy.create_checkout_session("alice", "CREDITS_1K", idempotency_key="t-1")
    stripe_simulator.complete_checkout(session)
    assert client.post("/async/generate", headers=alice).status_code == 200
    assert licenzy.entitlements("alice")[0].usage_remaining == 990
