"""Checkout through the real SDK, against a local HTTP server standing in for Stripe's API.

The server records every request exactly as the SDK sent it (form-encoded body, headers), so
these tests check the request itself — not a mock of the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import stripe
from licenzy_embed import (
    IdempotencyConflict,
    InvalidRequest,
    Licenzy,
    ModeMismatch,
    PaymentProviderError,
    UnknownProduct,
)
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock

from .._stripe_standin import Answer, Request, StripeStandIn, not_found, serving
from ..conftest import catalog


class FakeStripeAPI(StripeStandIn):
    """Answers /v1/customers and /v1/checkout/sessions like Stripe."""

    def respond(self, request: Request) -> Answer:
        n = len(self.requests)
        if request.path == "/v1/customers":
            return 200, {"id": f"cus_local{n}", "object": "customer", "livemode": False,
                         "metadata": {}}
        if request.path == "/v1/checkout/sessions":
            session_id = f"cs_test_local{n}"
            return 200, {"id": session_id, "object": "checkout.session", "livemode": False,
                         "mode": request.form.get("mode"), "status": "open",
                         "url": f"https://checkout.stripe.com/c/pay/{session_id}"}
        return not_found()


@pytest.fixture
def api() -> Iterator[FakeStripeAPI]:
    with serving(FakeStripeAPI()) as server:
        yield server


@pytest.fixture
def client(api: FakeStripeAPI) -> Iterator[stripe.StripeClient]:
    yield stripe.StripeClient("sk_test_local", base_addresses={"api": api.url},
                              max_network_retries=0)


@pytest.fixture
def real(store: Store, clock: FrozenClock, client: stripe.StripeClient) -> Licenzy:
    return Licenzy(store=store, products=catalog(), clock=clock, stripe_api_key="sk_test_local",
                   stripe_client=client, stripe_webhook_secret="whsec_local",
                   success_url="https://app.example/billing/success",
                   cancel_url="https://app.example/billing/cancel")


def test_subscription_checkout_request(real: Licenzy, api: FakeStripeAPI) -> None:
    session = real.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")

    assert api.paths() == ["/v1/customers", "/v1/checkout/sessions"]
    customer, checkout = api.requests
    assert customer.form == {"metadata[subject_ref]": "user_1"}
    assert customer.headers["Idempotency-Key"].startswith("licenzy-customer-test-")
    assert checkout.headers["Idempotency-Key"] == "k1"
    assert checkout.headers["Authorization"] == "Bearer sk_test_local"
    assert checkout.form == {
        "mode": "subscription",
        "line_items[0][price]": "price_pro_monthly",
        "line_items[0][quantity]": "1",
        "customer": "cus_local1",
        "client_reference_id": "user_1",
        "metadata[subject_ref]": "user_1",
        "metadata[product_code]": "PRO_MONTHLY",
        "subscription_data[metadata][subject_ref]": "user_1",
        "subscription_data[metadata][product_code]": "PRO_MONTHLY",
        "success_url": "https://app.example/billing/success",
        "cancel_url": "https://app.example/billing/cancel",
    }
    assert session.to_dict() == {
        "attempt_id": session.attempt_id, "status": "created",
        "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_local2", "mode": "test",
        "subject_ref": "user_1", "product_code": "PRO_MONTHLY",
        "session_id": "cs_test_local2", "created_at": "2026-03-01T12:00:00Z",
    }
    attempt = real.store.get_attempt(real.mode, session.attempt_id)
    assert attempt is not None
    assert (attempt.status, attempt.stripe_session_id, attempt.idempotency_key) == (
        "created", "cs_test_local2", "k1")


def test_same_key_and_arguments_replay_without_a_second_request(real: Licenzy,
                                                                api: FakeStripeAPI) -> None:
    first = real.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    again = real.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")

    assert len(api.requests) == 2  # one customer, one session: nothing for the retry
    assert (again.attempt_id, again.checkout_url, again.replayed) == (
        first.attempt_id, first.checkout_url, True)


def test_same_key_with_other_arguments_is_a_conflict(real: Licenzy, api: FakeStripeAPI) -> None:
    real.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    for args, kwargs in [(("user_1", "CREDITS_1K"), {}), (("user_2", "PRO_MONTHLY"), {}),
                         (("user_1", "PRO_MONTHLY"), {"success_url": "https://other.example/"})]:
        with pytest.raises(IdempotencyConflict) as caught:
            real.create_checkout_session(*args, idempotency_key="k1", **kwargs)
        assert caught.value.status == 422
    assert len(api.requests) == 2


def test_one_customer_per_subject_reused_for_a_payment_checkout(real: Licenzy,
                                                                api: FakeStripeAPI) -> None:
    real.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="k1")
    real.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k2",
                                 success_url="https://app.example/thanks")

    assert api.paths() == ["/v1/customers", "/v1/checkout/sessions", "/v1/checkout/sessions"]
    pack = api.requests[2]
    assert pack.headers["Idempotency-Key"] == "k2"
    assert pack.form["mode"] == "payment"
    assert pack.form["customer"] == "cus_local1"
    assert pack.form["line_items[0][price]"] == "price_credits_1k"
    assert pack.form["payment_intent_data[metadata][subject_ref]"] == "user_1"
    assert pack.form["payment_intent_data[metadata][product_code]"] == "CREDITS_1K"
    assert pack.form["success_url"] == "https://app.example/thanks"
    assert not any(k.startswith("subscription_data") for k in pack.form)

    real.create_checkout_session("user_2", "CREDITS_1K", idempotency_key="k3")
    assert api.paths()[3:] == ["/v1/customers", "/v1/checkout/sessions"]
    assert api.requests[4].form["customer"] == "cus_local4"


def test_long_subject_refs_travel_in_metadata_only(real: Licenzy, api: FakeStripeAPI) -> None:
    subject = "org:" + "x" * 250  # Stripe caps client_reference_id at 200 characters
    real.create_checkout_session(subject, "WEEK_PASS", idempotency_key="k1")
    sent = api.requests[-1].form
    assert "client_reference_id" not in sent
    assert sent["metadata[subject_ref]"] == subject


def test_a_stripe_error_is_a_payment_provider_error_and_stores_no_attempt(
        real: Licenzy, api: FakeStripeAPI) -> None:
    real.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k0")
    api.fail_next = (400, {"error": {"type": "invalid_request_error", "param": "line_items",
                                     "message": "This price is no longer active."}})
    with pytest.raises(PaymentProviderError, match="no longer active") as caught:
        real.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    assert caught.value.status == 502
    # Nothing stored under k1, so the retry asks Stripe again (with the same key).
    session = real.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    assert session.replayed is False
    assert [r.headers["Idempotency-Key"] for r in api.requests[-2:]] == ["k1", "k1"]


def test_a_price_of_the_other_mode_is_a_mode_mismatch(real: Licenzy, api: FakeStripeAPI) -> None:
    api.fail_next = (400, {"error": {
        "type": "invalid_request_error", "code": "resource_missing", "param": "customer",
        "message": "No such customer: 'cus_x'; a similar object exists in live mode, but a "
                   "test mode key was used to make this request."}})
    with pytest.raises(ModeMismatch):
        real.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")


def test_stripe_unreachable_is_a_payment_provider_error(store: Store, clock: FrozenClock,
                                                        api: FakeStripeAPI) -> None:
    api.server.shutdown()
    api.server.server_close()
    lz = Licenzy(store=store, products=catalog(), clock=clock, stripe_api_key="sk_test_local",
                 stripe_client=stripe.StripeClient("sk_test_local",
                                                   base_addresses={"api": api.url},
                                                   max_network_retries=0))
    with pytest.raises(PaymentProviderError):
        lz.create_checkout_session("user_1", "CREDITS_1K", idempotency_key="k1")
    with lz.store.transaction(lz.mode) as tx:
        assert tx.get_attempt_by_key("k1") is None
        assert tx.get_customer("user_1") is None


@pytest.mark.parametrize("args, kwargs, error", [
    (("", "PRO_MONTHLY"), {"idempotency_key": "k"}, InvalidRequest),
    (("user\n1", "PRO_MONTHLY"), {"idempotency_key": "k"}, InvalidRequest),
    (("user_1", "pro monthly"), {"idempotency_key": "k"}, InvalidRequest),
    (("user_1", "NOT_SOLD"), {"idempotency_key": "k"}, UnknownProduct),
    (("user_1", "PRO_MONTHLY"), {"idempotency_key": ""}, InvalidRequest),
    (("user_1", "PRO_MONTHLY"), {"idempotency_key": None}, InvalidRequest),
    (("user_1", "PRO_MONTHLY"), {"idempotency_key": "k", "success_url": "javascript:x"},
     InvalidRequest),
    (("user_1", "PRO_MONTHLY"), {"idempotency_key": "k", "cancel_url": "https://a b"},
     InvalidRequest),
])
def test_bad_input_is_refused_before_any_request(real: Licenzy, api: FakeStripeAPI,
                                                 args: tuple[Any, ...], kwargs: dict[str, Any],
                                                 error: type[Exception]) -> None:
    with pytest.raises(error):
        real.create_checkout_session(*args, **kwargs)
    assert api.requests == []
    with real.store.transaction(real.mode) as tx:
        assert tx.get_customer("user_1") is None


def test_the_stripe_client_is_built_from_the_key_when_not_given(store: Store,
                                                                clock: FrozenClock) -> None:
    from licenzy_embed.gateway import StripeClientGateway

    lz = Licenzy(store=store, products=catalog(), clock=clock, stripe_api_key="rk_live_abc",
                 stripe_webhook_secret="whsec_1")
    assert lz.mode == "live"
    assert isinstance(lz.gateway, StripeClientGateway)


def test_configuration_is_validated_up_front(store: Store) -> None:
    client = stripe.StripeClient("sk_test_x")
    with pytest.raises(ValueError, match="mode"):
        Licenzy(store=store, products=catalog(), stripe_client=client)
    with pytest.raises(ValueError, match="webhook_secret"):
        Licenzy(store=store, products=catalog(), stripe_webhook_secret=["whsec_1", ""])
    with pytest.raises(ValueError, match="success_url"):
        Licenzy(store=store, products=catalog(), success_url="/relative")
