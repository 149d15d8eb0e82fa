"""What reaches processing at all: signatures, payloads, modes, event types — and that a
refused or failed delivery records nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from licenzy_embed import (
    InMemoryStore,
    InvalidPayload,
    InvalidSignature,
    Licenzy,
    LicenzyError,
    ModeMismatch,
    StoreUnavailable,
)
from licenzy_embed.testing import FrozenClock, sign_payload
from licenzy_embed.webhooks import HANDLERS, Handler

from ..conftest import catalog
from . import payloads
from .conftest import Scenario


def pack_event(created: int, *, livemode: bool = False) -> dict[str, Any]:
    return payloads.event("checkout.session.completed", payloads.checkout_session(
        session_id=payloads.new_id("cs"), mode="payment", payment_intent=payloads.new_id("pi"),
        metadata={"subject_ref": "user_1", "product_code": "CREDITS_1K"}),
        created=created, livemode=livemode)


def assert_nothing_recorded(lz: Licenzy, event_id: str) -> None:
    assert lz.store.get_processed_event(lz.mode, event_id) is None
    assert lz.entitlements("user_1") == []
    assert lz.ledger("user_1") == []


@pytest.fixture
def envelope(clock: FrozenClock) -> dict[str, Any]:
    return pack_event(clock.timestamp())


def body(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode()


def test_a_genuine_delivery_is_processed(lz: Licenzy, envelope: dict[str, Any]) -> None:
    payload = body(envelope)
    result = lz.handle_webhook(payload, sign_payload(payload, lz.webhook_secrets[0]))
    assert result.outcome == "processed"
    assert lz.check_access("user_1")


def signature_cases(lz: Licenzy, payload: bytes) -> dict[str, tuple[bytes, Any]]:
    secret = lz.webhook_secrets[0]
    good = sign_payload(payload, secret)
    stale = sign_payload(payload, secret, int(time.time()) - lz.webhook_tolerance - 30)
    tampered = payload.replace(b"CREDITS_1K", b"CREDITS_XX")
    return {
        "forged": (payload, f"t={int(time.time())},v1={'0' * 64}"),
        "wrong secret": (payload, sign_payload(payload, "whsec_someone_else")),
        "tampered body": (tampered, good),
        "stale": (payload, stale),
        "missing": (payload, None),
        "empty": (payload, ""),
        "not a signature header": (payload, "garbage"),
        "other scheme only": (payload, good.replace("v1=", "v0=")),
    }


@pytest.mark.parametrize("case", ["forged", "wrong secret", "tampered body", "stale", "missing",
                                  "empty", "not a signature header", "other scheme only"])
def test_bad_signatures_are_refused_and_change_nothing(lz: Licenzy, envelope: dict[str, Any],
                                                      case: str) -> None:
    payload, header = signature_cases(lz, body(envelope))[case]
    with pytest.raises(InvalidSignature) as caught:
        lz.handle_webhook(payload, header)
    assert (caught.value.code, caught.value.status) == ("invalid_signature", 400)
    if case == "stale":
        assert "tolerance" in caught.value.message
    assert_nothing_recorded(lz, envelope["id"])


def test_rotated_secrets_are_all_accepted(clock: FrozenClock) -> None:
    lz = Licenzy(store=InMemoryStore(), products=catalog(), clock=clock,
                 stripe_webhook_secret=["whsec_new", "whsec_old"])
    for n, secret in enumerate(["whsec_old", "whsec_new"]):
        payload = body(pack_event(clock.timestamp() + n))
        assert lz.handle_webhook(payload, sign_payload(payload, secret)).outcome == "processed"
    payload = body(pack_event(clock.timestamp()))
    with pytest.raises(InvalidSignature):
        lz.handle_webhook(payload, sign_payload(payload, "whsec_retired"))


def test_without_a_configured_secret_every_event_is_refused(clock: FrozenClock) -> None:
    lz = Licenzy(store=InMemoryStore(), products=catalog(), clock=clock,
                 stripe_api_key="sk_test_123")
    payload = body(pack_event(clock.timestamp()))
    with pytest.raises(InvalidSignature, match="no stripe_webhook_secret"):
        lz.handle_webhook(payload, sign_payload(payload, "whsec_anything"))


@pytest.mark.parametrize("payload, message", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"[1, 2]", "not a Stripe event"),
    (b'{"object": "customer", "id": "cus_1"}', "not a Stripe event"),
    (b'{"object": "event", "type": "x", "created": 1, "livemode": false, '
     b'"data": {"object": {}}}', "no valid id"),
    (b'{"object": "event", "id": "evt_1", "type": "x", "created": "1", "livemode": false, '
     b'"data": {"object": {}}}', "created"),
    (b'{"object": "event", "id": "evt_1", "type": "x", "created": 1, "livemode": "no", '
     b'"data": {"object": {}}}', "live"),
    (b'{"object": "event", "id": "evt_1", "type": "x", "created": 1, "livemode": false, '
     b'"data": {}}', "data.object"),
])
def test_signed_bodies_that_are_not_events_are_invalid_payloads(lz: Licenzy, payload: bytes,
                                                                message: str) -> None:
    secret = lz.webhook_secrets[0]
    header = f"t={int(time.time())},v1={'0' * 64}"
    if not payload.startswith(b"\xff"):  # a signature over text the SDK can read
        header = sign_payload(payload, secret)
    with pytest.raises((InvalidPayload, InvalidSignature)) as caught:
        lz.handle_webhook(payload, header)
    if not payload.startswith(b"\xff"):
        assert isinstance(caught.value, InvalidPayload)
        assert message in caught.value.message
    assert (caught.value.status, lz.ledger("user_1")) == (400, [])
    assert lz.store.get_processed_event(lz.mode, "evt_1") is None


def test_a_live_event_on_a_test_key_is_refused(lz: Licenzy, clock: FrozenClock) -> None:
    envelope = pack_event(clock.timestamp(), livemode=True)
    payload = body(envelope)
    with pytest.raises(ModeMismatch) as caught:
        lz.handle_webhook(payload, sign_payload(payload, lz.webhook_secrets[0]))
    assert (caught.value.code, caught.value.status) == ("mode_mismatch", 400)
    assert_nothing_recorded(lz, envelope["id"])


def test_a_test_event_on_a_live_key_is_refused(clock: FrozenClock) -> None:
    lz = Licenzy(store=InMemoryStore(), products=catalog(), clock=clock,
                 stripe_api_key="sk_live_123", stripe_webhook_secret="whsec_live")
    envelope = pack_event(clock.timestamp())
    payload = body(envelope)
    with pytest.raises(ModeMismatch):
        lz.handle_webhook(payload, sign_payload(payload, "whsec_live"))
    assert_nothing_recorded(lz, envelope["id"])
    live = pack_event(clock.timestamp(), livemode=True)
    payload = body(live)
    assert lz.handle_webhook(payload, sign_payload(payload, "whsec_live")).outcome == (
        "processed")
    assert lz.check_access("user_1")


@pytest.mark.parametrize("event_type", ["plan.created", "customer.created",
                                        "payment_intent.succeeded", "invoice.created",
                                        "some.future.event"])
def test_unknown_event_types_are_acknowledged_as_ignored(lz: Licenzy, clock: FrozenClock,
                                                         event_type: str) -> None:
    envelope = payloads.fixture("event")  # Stripe's example event is a plan.created
    envelope.update(id=payloads.new_id("evt"), type=event_type, created=clock.timestamp())
    result = payloads.send(lz, envelope)

    assert result.to_dict() == {"event_id": envelope["id"], "event_type": event_type,
                                "outcome": "ignored",
                                "note": "licenzy-embed does not use this event type"}
    recorded = lz.store.get_processed_event(lz.mode, envelope["id"])
    assert recorded is not None and recorded.outcome == "ignored"
    assert payloads.send(lz, envelope).outcome == "duplicate"


def test_a_failure_while_applying_records_nothing_so_the_retry_applies_it(
        lz: Licenzy, stripe_events: Scenario, monkeypatch: pytest.MonkeyPatch,
        envelope: dict[str, Any]) -> None:
    # The handler table is the seam: this one applies the event, then fails before commit.
    completed = HANDLERS["checkout.session.completed"]

    def broken(ctx: Any, session: Any) -> None:
        completed.apply(ctx, session)
        raise RuntimeError("database went away mid-event")

    monkeypatch.setattr(lz.webhooks, "handlers", {
        **HANDLERS, "checkout.session.completed": Handler(completed.read, broken)})
    with pytest.raises(RuntimeError):
        payloads.send(lz, envelope)
    assert_nothing_recorded(lz, envelope["id"])
    assert stripe_events.changes == []  # nothing announced for a rolled-back change

    monkeypatch.setattr(lz.webhooks, "handlers", HANDLERS)
    assert payloads.send(lz, envelope).outcome == "processed"  # Stripe's retry
    assert stripe_events.only("user_1").usage_remaining == 1000


def test_every_refusal_is_a_licenzy_error_adapters_can_translate() -> None:
    for error in (InvalidSignature, InvalidPayload, ModeMismatch):
        assert issubclass(error, LicenzyError)
        assert error().to_dict()["error"] == error.code


def test_a_store_outage_answers_unavailable_and_the_retry_applies(clock: FrozenClock) -> None:
    store = InMemoryStore()
    lz = Licenzy(store=store, products=catalog(), clock=clock)
    envelope = pack_event(clock.timestamp())
    with store.unavailable(), pytest.raises(StoreUnavailable) as caught:
        payloads.send(lz, envelope)
    assert caught.value.status == 503  # the route answers 5xx: Stripe retries
    assert_nothing_recorded(lz, envelope["id"])
    assert payloads.send(lz, envelope).outcome == "processed"
    assert lz.check_access("user_1")
