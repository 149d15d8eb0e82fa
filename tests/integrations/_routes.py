"""The billing routes' tests, shared by every framework: each framework's ``test_routes.py``
imports them and provides an ``http`` fixture driving its own test client, so that Flask,
Django, Starlette and FastAPI answer exactly the same assertions.

The subject is sent as ``X-User``: every test app resolves it from that header.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from licenzy_embed import Licenzy
from licenzy_embed.testing import StripeSimulator, sign_payload

from ._support import WEBHOOK_SECRET, FlakyStore

WEBHOOK = "/billing/webhooks/stripe"


class Http(Protocol):
    def get(self, path: str, headers: dict[str, str]) -> tuple[int, Any]: ...

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]: ...


class Delivery:
    """Deliver the simulator's signed events through the mounted webhook route, keeping each
    delivery and its answer."""

    def __init__(self, http: Http, lz: Licenzy) -> None:
        self.http = http
        self.simulator = StripeSimulator.for_licenzy(lz)
        self.simulator.deliver_with(self)
        self.delivered: list[tuple[bytes, str, int, Any]] = []

    def __call__(self, payload: bytes, signature: str) -> tuple[int, Any]:
        status, body = self.post(payload, signature)
        self.delivered.append((payload, signature, status, body))
        return status, body

    def post(self, payload: bytes, signature: str | None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return self.http.post(WEBHOOK, payload, headers)


def buy(lz: Licenzy, delivery: Delivery, subject: str = "alice",
        product: str = "CREDITS_100") -> None:
    session = lz.create_checkout_session(subject, product, idempotency_key=f"buy-{subject}")
    delivery.simulator.complete_checkout(session)


# --------------------------------------------------------------------------- webhook route
def test_webhook_route_processes_a_signed_event_then_its_duplicate(http: Http,
                                                                   lz: Licenzy) -> None:
    delivery = Delivery(http, lz)
    assert not lz.check_access("alice")
    buy(lz, delivery)
    assert delivery.delivered
    assert all(status == 200 for _, _, status, _ in delivery.delivered)
    payload, signature, _, first = delivery.delivered[0]
    assert first["outcome"] == "processed"
    assert first["event_type"] == "checkout.session.completed"
    assert lz.check_access("alice")

    status, again = delivery.post(payload, signature)
    assert status == 200
    assert (again["event_id"], again["outcome"]) == (first["event_id"], "duplicate")
    assert [e.usage_remaining for e in lz.entitlements("alice")] == [100]


def test_webhook_route_acknowledges_unknown_event_types(http: Http, lz: Licenzy) -> None:
    delivery = Delivery(http, lz)
    event = delivery.simulator.event("customer.created", {"id": "cus_123",
                                                          "object": "customer"})
    status, body = delivery.post(*delivery.simulator.signed(event))
    assert (status, body["outcome"]) == (200, "ignored")


def test_webhook_route_refuses_a_forged_signature(http: Http, lz: Licenzy) -> None:
    delivery = Delivery(http, lz)
    event = delivery.simulator.event("customer.created", {"id": "cus_1", "object": "customer"})
    payload, _ = delivery.simulator.signed(event)
    status, body = delivery.post(payload, sign_payload(payload, "whsec_someone_else"))
    assert (status, body["error"]) == (400, "invalid_signature")
    tampered = payload.replace(b"cus_1", b"cus_2")
    status, body = delivery.post(tampered, delivery.simulator.signed(event)[1])
    assert (status, body["error"]) == (400, "invalid_signature")
    status, body = delivery.post(payload, None)
    assert (status, body["error"]) == (400, "invalid_signature")


def test_webhook_route_refuses_an_event_of_the_other_mode(http: Http, lz: Licenzy) -> None:
    delivery = Delivery(http, lz)
    event = delivery.simulator.event("customer.created", {"id": "cus_1", "object": "customer",
                                                          "livemode": True})
    event["livemode"] = True
    status, body = delivery.post(*delivery.simulator.signed(event))
    assert (status, body["error"]) == (400, "mode_mismatch")


def test_webhook_route_verifies_the_exact_bytes_it_was_sent(http: Http, lz: Licenzy) -> None:
    """No JSON re-serialisation and no charset decoding: odd spacing, key order, escapes
    and raw UTF-8 in the body still verify, because the signed bytes reach the core as sent."""
    delivery = Delivery(http, lz)
    payload = ('{ "id" : "evt_bytes_1", "type":"customer.created", "object":"event",'
               '"livemode":false, "created": 1772366400, "api_version": "2024-06-20",'
               '"data":{"object":{"object":"customer","id":"cus_\u00e9","name":"Zoë  ✓"}}}'
               ).encode()
    status, body = delivery.post(payload, sign_payload(payload, WEBHOOK_SECRET))
    assert (status, body.get("outcome")) == (200, "ignored"), body


def test_webhook_route_refuses_a_malformed_payload(http: Http, lz: Licenzy) -> None:
    delivery = Delivery(http, lz)
    for payload in (b"{not json", b"[1, 2, 3]", b'{"object": "event"}'):
        status, body = delivery.post(payload, sign_payload(payload, WEBHOOK_SECRET))
        assert status == 400, payload
        assert body["error"] == "invalid_payload"
        assert body["message"]


def test_webhook_route_answers_5xx_when_processing_fails(http: Http, lz: Licenzy) -> None:
    """Nothing is recorded, so Stripe's retry of the very same delivery is processed."""
    assert isinstance(lz.store, FlakyStore)
    delivery = Delivery(http, lz)
    lz.store.broken = True
    buy(lz, delivery)
    payload, signature, status, body = delivery.delivered[0]
    assert status == 500 and body["error"] == "webhook_processing_failed"
    assert not lz.check_access("alice")

    lz.store.broken = False
    status, body = delivery.post(payload, signature)
    assert (status, body["outcome"]) == (200, "processed")
    assert lz.check_access("alice")


def test_webhook_route_answers_503_when_the_store_is_down(http: Http, lz: Licenzy) -> None:
    delivery = Delivery(http, lz)
    session = lz.create_checkout_session("alice", "CREDITS_100", idempotency_key="k")
    with lz.store.unavailable():  # type: ignore[attr-defined]
        delivery.simulator.complete_checkout(session)
    assert delivery.delivered[0][2] == 503
    assert delivery.delivered[0][3]["error"] == "entitlements_unavailable"


# --------------------------------------------------------------------------- checkout route
def checkout(http: Http, body: object, **headers: str) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post("/billing/checkout", raw, {"Content-Type": "application/json", **headers})


def test_checkout_route_takes_the_subject_from_the_resolver(http: Http, lz: Licenzy) -> None:
    status, body = checkout(http, {"product_code": "CREDITS_100", "subject_ref": "mallory"},
                            **{"X-User": "alice", "Idempotency-Key": "chk-1"})
    assert status == 200, body
    assert set(body) >= {"attempt_id", "status", "checkout_url", "mode"}
    assert (body["status"], body["mode"]) == ("created", "test")
    assert (body["subject_ref"], body["product_code"]) == ("alice", "CREDITS_100")
    assert not lz.check_access("alice")  # creating a session grants nothing

    delivery = Delivery(http, lz)
    delivery.simulator.complete_checkout(body["session_id"])
    assert lz.check_access("alice")
    assert lz.entitlements("mallory") == []


def test_idempotency_keys_of_two_subjects_never_meet(http: Http) -> None:
    """Checkout keys are unique per mode: the route scopes the client's key to the subject,
    so bob's key can neither replay nor conflict with (and so reveal) alice's checkout."""
    alice = checkout(http, {"product_code": "WEEK_PASS"},
                     **{"X-User": "alice", "Idempotency-Key": "k"})
    bob = checkout(http, {"product_code": "CREDITS_100"},
                   **{"X-User": "bob", "Idempotency-Key": "k"})
    assert alice[0] == bob[0] == 200
    assert bob[1]["subject_ref"] == "bob" and bob[1]["attempt_id"] != alice[1]["attempt_id"]


def test_checkout_route_replays_under_the_same_idempotency_key(http: Http) -> None:
    first = checkout(http, {"product_code": "WEEK_PASS"},
                     **{"X-User": "alice", "Idempotency-Key": "chk-2"})
    second = checkout(http, {"product_code": "WEEK_PASS"},
                      **{"X-User": "alice", "Idempotency-Key": "chk-2"})
    assert first == second and first[0] == 200
    other = checkout(http, {"product_code": "WEEK_PASS"}, **{"X-User": "alice"})
    assert other[0] == 200 and other[1]["attempt_id"] != first[1]["attempt_id"]
    status, body = checkout(http, {"product_code": "CREDITS_100"},
                            **{"X-User": "alice", "Idempotency-Key": "chk-2"})
    assert (status, body["error"]) == (422, "idempotency_conflict")


def test_checkout_route_errors(http: Http, lz: Licenzy) -> None:
    alice = {"X-User": "alice"}
    status, body = checkout(http, {"product_code": "CREDITS_100"})
    assert (status, body["error"]) == (401, "unauthenticated")
    status, body = checkout(http, {"product_code": "NOPE"}, **alice)
    assert (status, body["error"]) == (404, "unknown_product")
    for bad in (b"not json", [1], {"product": "CREDITS_100"}, {"product_code": 7}, b""):
        status, body = checkout(http, bad, **alice)
        assert (status, body["error"]) == (400, "invalid_request"), bad
    with lz.store.unavailable():  # type: ignore[attr-defined]
        status, body = checkout(http, {"product_code": "CREDITS_100"}, **alice)
    assert (status, body["error"]) == (503, "entitlements_unavailable")


# --------------------------------------------------------------------------- access route
def test_access_route_answers_the_subjects_customer_access(http: Http, lz: Licenzy) -> None:
    status, body = http.get("/billing/access", {})
    assert (status, body["error"]) == (401, "unauthenticated")
    assert http.get("/billing/access", {"X-User": "alice"}) == (200, {
        "subject_ref": "alice", "has_access": False, "status": "none", "features": [],
        "entitlements": []})
    buy(lz, Delivery(http, lz), product="WEEK_PASS")
    status, body = http.get("/billing/access", {"X-User": "alice"})
    assert status == 200
    assert body == json.loads(json.dumps(lz.customer_access("alice").to_dict()))
    assert body["has_access"] is True and body["status"] == "active"
    assert body["entitlements"][0]["product_code"] == "WEEK_PASS"
    with lz.store.unavailable():  # type: ignore[attr-defined]
        status, body = http.get("/billing/access", {"X-User": "alice"})
    assert (status, body["error"]) == (503, "entitlements_unavailable")
