"""The README's Django testing recipe, with the fixtures of licenzy-embed's pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

from licenzy_embed import Licenzy
from licenzy_embed.testing import StripeSimulator


@pytest.fixture
def client(licenzy: Licenzy) -> Iterator[Client]:
    with override_settings(LICENZY={"INSTANCE": licenzy}):
        yield Client()


def test_a_purchase_unlocks_the_report(client: Client, licenzy: Licenzy,
                                       stripe_simulator: StripeSimulator, alice: Any) -> None:
    stripe_simulator.deliver_with(
        lambda payload, signature: client.post(
            "/billing/webhooks/stripe", data=payload, content_type="application/json",
            headers={"Stripe-Signature": signature}))
    client.force_login(alice)
    assert client.get("/sync/report").status_code == 402

    session = licenzy.create_checkout_session(str(alice.pk), "PRO_MONTHLY",
                                              idempotency_key="t-1")
    stripe_simulator.complete_checkout(session)
    assert client.get("/sync/report").status_code == 200
