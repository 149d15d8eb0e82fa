"""Stripe settings are checked when ``Licenzy`` is built: a mistake is a ``ValueError`` at
start-up, never a surprise when the first customer pays or the first event arrives."""

from __future__ import annotations

from typing import Any

import pytest

from licenzy_embed import InMemoryStore, InvalidSignature, Licenzy
from licenzy_embed.testing import StripeSimulator

from .conftest import catalog


def build(**kwargs: Any) -> Licenzy:
    return Licenzy(store=InMemoryStore(), products=catalog(), **kwargs)


@pytest.mark.parametrize("key", ["sk_test_abc\n", " sk_test_abc", "sk_test_abc ",
                                 "rk_live_abc\r\n", "\tsk_live_abc"])
def test_an_api_key_with_surrounding_whitespace_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="stripe_api_key has surrounding whitespace"):
        build(stripe_api_key=key, stripe_webhook_secret="whsec_x")


@pytest.mark.parametrize("secret", ["sk_test_abc", "we_123", "secret", "whsec_", "WHSEC_abc",
                                    ["whsec_ok", "not_a_secret"]])
def test_a_webhook_secret_that_is_not_a_signing_secret_is_refused(secret: Any) -> None:
    with pytest.raises(ValueError, match="must be an endpoint signing secret"):
        build(stripe_api_key="sk_test_abc", stripe_webhook_secret=secret)


@pytest.mark.parametrize("secret", ["whsec_abc\n", " whsec_abc"])
def test_a_webhook_secret_with_surrounding_whitespace_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="stripe_webhook_secret has surrounding whitespace"):
        build(stripe_webhook_secret=secret)


def test_a_keyless_licenzy_without_a_secret_takes_the_simulators_as_it_attaches() -> None:
    # No random secret of its own any more: events signed elsewhere would fail later for no
    # visible reason. Without the simulator it has none (every event is refused, saying so);
    # the simulator supplies one when it attaches, and signs with it.
    lz = build()
    sim = StripeSimulator.for_licenzy(lz)  # under pytest the plugin attached it already
    assert list(lz.webhook_secrets) == [sim.secret]
    assert sim.secret.startswith("whsec_")


def test_a_configured_secret_is_the_one_the_simulator_signs_with() -> None:
    lz = build(stripe_webhook_secret="whsec_mine")
    assert StripeSimulator.for_licenzy(lz).secret == "whsec_mine"
    assert list(lz.webhook_secrets) == ["whsec_mine"]


def test_only_a_keyless_licenzy_without_a_secret_takes_a_gateways_secret() -> None:
    lz = build(stripe_api_key="sk_test_abc", stripe_webhook_secret="whsec_mine")
    with pytest.raises(ValueError, match="only a key-less Licenzy"):
        lz.use_gateway(StripeSimulator.for_licenzy(lz), webhook_secret="whsec_other")
    assert list(lz.webhook_secrets) == ["whsec_mine"]


def test_a_key_without_a_secret_is_allowed_and_refuses_every_event_saying_why() -> None:
    # A process that only checks access and spends (a worker) needs no secret; the webhook
    # route of such a process answers every delivery 400 "no stripe_webhook_secret".
    lz = build(stripe_api_key="sk_live_abc")
    assert not lz.webhook_secrets
    with pytest.raises(InvalidSignature, match="no stripe_webhook_secret"):
        lz.handle_webhook(b"{}", "t=1,v1=abc")
