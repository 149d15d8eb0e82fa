"""What the internet can send to the webhook route, signed or not, gets a 400-class error
decided before any write — never a 500 — and the secrets stay out of every traceback."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from licenzy_embed import InMemoryStore, InvalidPayload, InvalidSignature, Licenzy
from licenzy_embed.testing import FrozenClock, sign_payload
from licenzy_embed.webhooks import WebhookSecrets
from licenzy_embed.webhooks.keys import COLUMN, MAX_STRIPE_ID

from ..conftest import catalog
from . import payloads

SECRET = "whsec_hostile_test_secret"


def nothing_recorded(lz: Licenzy, event_id: str) -> bool:
    return (lz.store.get_processed_event(lz.mode, event_id) is None
            and lz.entitlements("user_1") == [] and lz.ledger("user_1") == [])


def frames_hold(exc: BaseException, secret: str) -> bool:
    """Whether any frame of ``exc``'s traceback (or of the exceptions it chains) holds the
    secret in a local, as a locals-capturing error tracker would record it."""
    seen: BaseException | None = exc
    while seen is not None:
        tb = seen.__traceback__
        while tb is not None:
            if any(secret in repr(value) for value in tb.tb_frame.f_locals.values()):
                return True
            tb = tb.tb_next
        seen = seen.__cause__ or seen.__context__
    return False


@pytest.fixture
def hostile(clock: FrozenClock) -> Licenzy:
    return Licenzy(store=InMemoryStore(), products=catalog(), clock=clock,
                   stripe_webhook_secret=[SECRET, "whsec_previous_secret"])


@pytest.mark.parametrize("signature", [
    "t={now},v1=é",
    "t={now},v1=" + "é" * 64,
    "t={now},v1=\udcff",
    b"t={now},v1=\xff",
    "t={now},v1=\x00",
    "t=é,v1=abc",
])
def test_a_signature_of_non_ascii_text_is_an_invalid_signature(
        hostile: Licenzy, clock: FrozenClock, caplog: pytest.LogCaptureFixture,
        signature: str | bytes) -> None:
    payload = json.dumps(payloads.event("customer.created", {"id": "cus_1"},
                                        created=clock.timestamp())).encode()
    now = str(int(time.time()))
    header: Any = (signature.replace(b"{now}", now.encode()) if isinstance(signature, bytes)
                   else signature.replace("{now}", now))
    with caplog.at_level(logging.DEBUG), pytest.raises(InvalidSignature) as caught:
        hostile.handle_webhook(payload, header)
    assert caught.value.status == 400
    assert not frames_hold(caught.value, SECRET)
    assert not any(record.exc_info or record.levelno >= logging.ERROR
                   for record in caplog.records)
    assert hostile.store.get_processed_event(hostile.mode, "cus_1") is None


def test_no_refusal_carries_a_secret_in_its_frames(hostile: Licenzy,
                                                   clock: FrozenClock) -> None:
    payload = json.dumps(payloads.event("customer.created", {"id": "cus_1"},
                                        created=clock.timestamp())).encode()
    for header in (sign_payload(payload, "whsec_other"),
                   sign_payload(payload, SECRET, int(time.time()) - 3600),
                   f"t={int(time.time())},v1=é", "garbage"):
        with pytest.raises(InvalidSignature) as caught:
            hostile.handle_webhook(payload, header)
        assert not frames_hold(caught.value, SECRET)


def test_the_secrets_hide_in_their_repr(hostile: Licenzy) -> None:
    secrets = hostile.webhook_secrets
    assert isinstance(secrets, WebhookSecrets)
    assert SECRET not in repr(secrets) and SECRET not in str(secrets)
    assert repr(secrets) == "WebhookSecrets(2 secrets)"
    assert (len(secrets), secrets[0], list(secrets)) == (2, SECRET,
                                                         [SECRET, "whsec_previous_secret"])


# ---------------------------------------------------------------------------- signed, malformed
def send_raw(lz: Licenzy, text: str) -> Any:
    payload = text.encode()
    return lz.handle_webhook(payload, sign_payload(payload, lz.webhook_secrets[0]))


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_json_nested_too_deep_is_an_invalid_payload(lz: Licenzy, depth: int) -> None:
    bodies = ["[" * depth + "]" * depth,
              '{"object": "event", "id": "evt_deep", "type": "charge.refunded", "created": 1, '
              '"livemode": false, "data": {"object": {"id": "ch_1", "x": '
              + "[" * depth + "]" * depth + "}}}"]
    for body in bodies:
        with pytest.raises(InvalidPayload, match="nested too deeply"):
            send_raw(lz, body)
    assert nothing_recorded(lz, "evt_deep")


LONG = "x" * (COLUMN + 1)
BAD_IDS = {"longer than the column": "pi_" + LONG, "NUL": "pi_1\x00", "control": "pi_\x1b[2J",
           "a line break": "pi_1\nX", "one past the limit": "pi_" + "x" * (MAX_STRIPE_ID - 2)}


def session_event(clock: FrozenClock, **fields: Any) -> dict[str, Any]:
    obj = payloads.checkout_session(
        session_id=fields.pop("session_id", payloads.new_id("cs")), mode="payment",
        payment_intent=fields.pop("payment_intent", payloads.new_id("pi")),
        customer=fields.pop("customer", None),
        metadata={"subject_ref": "user_1", "product_code": "CREDITS_1K"})
    return payloads.event("checkout.session.completed", obj, created=clock.timestamp())


def where(clock: FrozenClock, field: str, bad: str) -> dict[str, Any]:
    """A validly shaped event whose ``field`` holds the id ``bad``."""
    if field in ("session_id", "payment_intent", "customer"):
        return session_event(clock, **{field: bad})
    if field == "subscription":
        return payloads.event("customer.subscription.updated", payloads.subscription(
            sub_id=bad, status="active", price="price_pro_monthly", shape="current",
            metadata={"subject_ref": "user_1"}), created=clock.timestamp())
    if field == "invoice":
        return payloads.event("invoice_payment.paid", payloads.invoice_payment(
            invoice_id=bad, payment_intent=payloads.new_id("pi"), created=clock.timestamp()),
            created=clock.timestamp())
    if field == "dispute payment intent":
        return payloads.event("charge.dispute.created", payloads.dispute(
            payment_intent=bad, status="needs_response"), created=clock.timestamp())
    # the object of an event type this library ignores: its id is stored all the same
    return payloads.event("customer.created", {"id": bad, "object": "customer"},
                          created=clock.timestamp())


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
@pytest.mark.parametrize("field", ["session_id", "payment_intent", "customer", "subscription",
                                   "invoice", "dispute payment intent", "object"])
def test_an_id_the_store_cannot_hold_is_an_invalid_payload(
        lz: Licenzy, clock: FrozenClock, field: str, bad: str) -> None:
    envelope = where(clock, field, bad)
    with pytest.raises(InvalidPayload) as caught:
        payloads.send(lz, envelope)
    assert (caught.value.code, caught.value.status) == ("invalid_payload", 400)
    assert nothing_recorded(lz, envelope["id"])


@pytest.mark.parametrize("event_id, event_type", [
    ("evt_\x00", "charge.refunded"), ("evt_" + LONG, "charge.refunded"),
    ("evt_ok", "charge.\x00refunded"), ("evt_ok", "x" * (COLUMN + 1)),
])
def test_an_envelope_the_store_cannot_hold_is_an_invalid_payload(
        lz: Licenzy, clock: FrozenClock, event_id: str, event_type: str) -> None:
    envelope = payloads.event(event_type, {"id": "ch_1"}, created=clock.timestamp(),
                              event_id=event_id)
    with pytest.raises(InvalidPayload):
        payloads.send(lz, envelope)
    assert lz.store.get_processed_event(lz.mode, "evt_ok") is None


def test_ids_as_long_as_the_limit_are_stored_with_every_key_they_derive(
        lz: Licenzy, clock: FrozenClock) -> None:
    pi = "pi_" + "p" * (MAX_STRIPE_ID - 3)
    session = "cs_" + "s" * (MAX_STRIPE_ID - 3)
    customer = "cus_" + "c" * (MAX_STRIPE_ID - 4)
    assert payloads.send(lz, session_event(clock, session_id=session, payment_intent=pi,
                                           customer=customer)).outcome == "processed"
    dispute = payloads.event("charge.dispute.created", payloads.dispute(
        payment_intent=pi, status="needs_response"), created=clock.timestamp() + 1)
    assert payloads.send(lz, dispute).outcome == "processed"
    (ent,) = lz.entitlements("user_1")
    assert ent.status == "disputed"
    sub = "sub_" + "b" * (MAX_STRIPE_ID - 4)
    meta = {"subject_ref": "user_1", "product_code": "PRO_MONTHLY"}
    now = clock.timestamp()
    failed = payloads.invoice(sub_id=sub, price="price_pro_monthly", shape="current",
                              period=(now, now + 86400), paid=False, sub_metadata=meta,
                              invoice_id="in_" + "i" * (MAX_STRIPE_ID - 3))
    assert payloads.send(lz, payloads.event("invoice.payment_failed", failed,
                                            created=now)).outcome == "processed"
    assert {e.product_code for e in lz.entitlements("user_1")} == {"CREDITS_1K", "PRO_MONTHLY"}


def test_the_id_limit_follows_the_store_columns() -> None:
    pytest.importorskip("sqlalchemy")
    from licenzy_embed.stores import _sql_schema

    assert COLUMN == _sql_schema.REF
