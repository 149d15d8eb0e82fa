"""Hostile requests to the mounted billing routes, shared by every framework: each framework's
``test_hostile.py`` imports these tests and provides ``make_raw`` (its own real test client,
sending exact bytes and header values) and ``sized_path`` (its metered view whose units come
from ``?n=``).

What the internet can send gets a 2xx or 4xx, never a 5xx, and changes nothing that a valid
request would not: nesting, sizes, encodings, control characters, odd headers, wrong methods
and content types. ``LICENZY_FUZZ_EXAMPLES`` sets how many generated requests each framework
gets (60 by default, so CI stays quick; see RELIABILITY.md for a long run).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from licenzy_embed import Licenzy
from licenzy_embed.errors import PaymentProviderError, StoreUnavailable
from licenzy_embed.integrations import _common
from licenzy_embed.integrations._common import PLAIN_MESSAGES
from licenzy_embed.testing import sign_payload

from ._support import WEBHOOK_SECRET, FlakyStore, credits, remaining

WEBHOOK = "/billing/webhooks/stripe"
CHECKOUT = "/billing/checkout"
ACCESS = "/billing/access"
ROUTES = (WEBHOOK, CHECKOUT, ACCESS)

FUZZ_EXAMPLES = int(os.environ.get("LICENZY_FUZZ_EXAMPLES", "60"))
MIB = 1024 * 1024


class CountingBody:
    """A body of ``size`` bytes produced on demand, counting how much the app read: a 50 MB
    upload without 50 MB in the test's memory, and proof the app stopped reading early."""

    def __init__(self, size: int, chunk: int = 64 * 1024) -> None:
        self.size = size
        self.chunk = chunk
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.read_bytes
        n = left if n is None or n < 0 else min(n, left)
        self.read_bytes += n
        return b"{" * n

    def tell(self) -> int:
        return self.read_bytes

    def readline(self, limit: int = -1) -> bytes:
        return self.read(limit if limit and limit > 0 else self.chunk)

    def __iter__(self) -> Iterator[bytes]:
        while self.read_bytes < self.size:
            yield self.read(self.chunk)


class Raw(Protocol):
    def send(self, method: str, path: str, body: bytes | CountingBody,
             headers: dict[str, bytes], *, declare_length: bool = True) -> tuple[int, bytes]:
        """Send ``body`` with exactly these header values; ``declare_length=False`` sends a
        stream without ``Content-Length`` (chunked, where the framework's client allows)."""
        ...


MakeRaw = Callable[..., Raw]


@pytest.fixture
def raw(make_raw: MakeRaw, lz: Licenzy) -> Raw:
    return make_raw(lz)


def error_of(body: bytes) -> dict[str, Any]:
    data = json.loads(body)
    assert isinstance(data, dict), data
    return data


def state(lz: Licenzy) -> object:
    """What a request could change for the subjects the generated requests name."""
    return [(lz.customer_access(s).to_dict(), [(e.action, e.units_delta) for e in lz.ledger(s)])
            for s in ("alice", "bob")]


# --------------------------------------------------------------------------- generated requests
_HEADER_TEXT = st.binary(max_size=80).map(
    lambda b: bytes(c for c in b if c not in b"\r\n\x00"))  # what HTTP itself can carry
_SIGNATURES = st.one_of(
    _HEADER_TEXT,
    st.sampled_from([b"t=1,v1=\xc3\xa9", b"t=1,v1=\xff", "v1=é".encode("latin-1"),
                     b"t=,v1=", b"t=1772366400,v1=" + b"0" * 64, b"t=9" * 200, b"\x01\x7f",
                     b"t=1,v0=abc,v1=", b",,,,", b"t=-1,v1=00"]),
)
_CONTENT_TYPES = st.sampled_from([
    b"application/json", b"application/json; charset=utf-16", b"text/plain",
    b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
    b"multipart/form-data", b"application/octet-stream", b"", b"\xff\xfe", b"json/\x01"])
_SUBJECTS = st.sampled_from([None, b"alice", b"bob", b"", b" ", b"a" * 300, b"al\x01ice",
                             "é".encode("latin-1"), b"\xff", b"alice\t"])
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)
_PRODUCT_CODES = st.one_of(st.sampled_from(["CREDITS_100", "NOPE", "", "\x00", "credits_100",
                                            "é" * 40, "A" * 5000]), _JSON_VALUES)


def _nested(depth: int, opener: bytes) -> bytes:
    return opener * depth


_BODIES = st.one_of(
    st.binary(max_size=600),
    st.builds(_nested, st.integers(1, 40_000),
              st.sampled_from([b"[", b'{"a":', b'{"product_code":['])),
    st.builds(lambda code, extra: json.dumps({"product_code": code, **extra}).encode(),
              _PRODUCT_CODES, st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=3)),
    st.builds(lambda text, enc: text.encode(enc, "replace"),
              st.text(max_size=200), st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1",
                                                      "cp1252"])),
    _JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.integers(64 * 1024 - 2, 64 * 1024 + 2).map(lambda n: b" " * n),  # at the checkout limit
)
_METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])


def _sign(body: bytes) -> bytes:
    """Stripe's scheme over any bytes (sign_payload takes only the UTF-8 Stripe sends)."""
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body,
                      hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}".encode()


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, bytes]]:
    path = draw(st.sampled_from(ROUTES))
    method = draw(st.one_of(st.just("GET" if path == ACCESS else "POST"), _METHODS))
    body = draw(_BODIES)
    headers: dict[str, bytes] = {"Content-Type": draw(_CONTENT_TYPES)}
    subject = draw(_SUBJECTS)
    if subject is not None:
        headers["X-User"] = subject
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(_HEADER_TEXT)
    signature = draw(st.sampled_from(["none", "forged", "signed"]))
    if signature == "forged":
        headers["Stripe-Signature"] = draw(_SIGNATURES)
    elif signature == "signed":  # validly signed garbage: what a leaked secret could send
        headers["Stripe-Signature"] = _sign(body)
    for name in draw(st.lists(st.sampled_from(["Accept", "X-Forwarded-For", "Origin",
                                               "Transfer-Encoding-Note", "Cookie"]),
                              max_size=2, unique=True)):
        headers[name] = draw(_HEADER_TEXT)
    return method, path, body, headers


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=hostile_requests())
def test_hostile_requests_get_no_5xx_and_change_nothing(
        raw: Raw, lz: Licenzy, request: tuple[str, str, bytes, dict[str, bytes]]) -> None:
    method, path, body, headers = request
    before = state(lz)
    status, answer = raw.send(method, path, body, headers)
    event(f"{path.rsplit('/', 1)[-1]} answered {status}")  # --hypothesis-show-statistics
    assert status < 500, (status, answer[:300])
    if status == 200 and (method, path) == ("POST", CHECKOUT):
        # The one state change a request from outside may make: a checkout for its own
        # subject, of a product in the catalog.
        assert error_of(answer)["product_code"] == "CREDITS_100"
    assert state(lz) == before


# --------------------------------------------------------------------------- each defect
def test_a_deeply_nested_checkout_body_is_a_400(raw: Raw) -> None:
    for body in (b"[" * 5000, b'{"product_code": ' + b"[" * 5000, b"{" * 60_000):
        status, answer = raw.send("POST", CHECKOUT, body,
                                  {"Content-Type": b"application/json", "X-User": b"alice"})
        assert (status, error_of(answer)["error"]) in {(400, "invalid_request"),
                                                       (413, "payload_too_large")}


def test_product_codes_of_a_wrong_type_are_a_400(raw: Raw) -> None:
    for code in (7, None, [], {}, ["CREDITS_100"], True, 1.5):
        status, answer = raw.send("POST", CHECKOUT, json.dumps({"product_code": code}).encode(),
                                  {"Content-Type": b"application/json", "X-User": b"alice"})
        assert (status, error_of(answer)["error"]) == (400, "invalid_request"), code


def test_a_non_ascii_signature_is_a_400_and_logs_no_traceback(
        raw: Raw, caplog: pytest.LogCaptureFixture) -> None:
    payload = b'{"id": "evt_1", "object": "event"}'
    caplog.set_level(logging.DEBUG, logger="licenzy_embed")
    for signature in (b"t=1,v1=\xc3\xa9", b"t=1,v1=\xff", "t=1,v1=é".encode("latin-1"),
                      b"t=1,v1=\x01"):
        status, answer = raw.send("POST", WEBHOOK, payload,
                                  {"Content-Type": b"application/json",
                                   "Stripe-Signature": signature})
        assert (status, error_of(answer)["error"]) == (400, "invalid_signature"), signature
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_signed_but_deeply_nested_event_is_a_400_not_a_retry_forever(raw: Raw) -> None:
    for payload in (b"[" * 5000, b'{"id": "evt_1", "data": ' + b"[" * 5000):
        status, answer = raw.send("POST", WEBHOOK, payload, {
            "Content-Type": b"application/json",
            "Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET).encode()})
        assert (status, error_of(answer)["error"]) == (400, "invalid_payload")


def test_a_webhook_body_over_one_mib_is_a_413(raw: Raw, lz: Licenzy) -> None:
    payload = b" " * (MIB + 1)
    status, answer = raw.send("POST", WEBHOOK, payload, {
        "Content-Type": b"application/json",
        "Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET).encode()})
    assert (status, error_of(answer)["error"]) == (413, "payload_too_large")
    status, answer = raw.send("POST", WEBHOOK, b" " * MIB, {"Content-Type": b"application/json"})
    assert (status, error_of(answer)["error"]) == (400, "invalid_signature")  # at the limit


def test_a_checkout_body_over_64_kib_is_a_413(raw: Raw) -> None:
    alice = {"Content-Type": b"application/json", "X-User": b"alice"}
    status, answer = raw.send("POST", CHECKOUT, b" " * (64 * 1024 + 1), alice)
    assert (status, error_of(answer)["error"]) == (413, "payload_too_large")
    body = json.dumps({"product_code": "CREDITS_100"}).encode()
    status, answer = raw.send("POST", CHECKOUT, body + b" " * (64 * 1024 - len(body)), alice)
    assert status == 200, answer


def test_the_limits_are_configurable(make_raw: MakeRaw, lz: Licenzy) -> None:
    raw = make_raw(lz, webhook_max_bytes=100, checkout_max_bytes=40)
    status, answer = raw.send("POST", WEBHOOK, b" " * 101, {"Stripe-Signature": b"t=1,v1=0"})
    assert (status, error_of(answer)["error"]) == (413, "payload_too_large")
    status, _ = raw.send("POST", WEBHOOK, b" " * 100, {"Stripe-Signature": b"t=1,v1=0"})
    assert status == 400
    status, answer = raw.send("POST", CHECKOUT, b'{"product_code": "CREDITS_100"}' + b" " * 10,
                              {"X-User": b"alice", "Content-Type": b"application/json"})
    assert (status, error_of(answer)["error"]) == (413, "payload_too_large")


@pytest.mark.parametrize("path", [WEBHOOK, CHECKOUT])
@pytest.mark.parametrize("declare_length", [True, False])
def test_a_50_mb_body_is_refused_without_being_read(raw: Raw, path: str,
                                                    declare_length: bool) -> None:
    body = CountingBody(50 * MIB)
    status, answer = raw.send("POST", path, body, {
        "Content-Type": b"application/json", "X-User": b"alice",
        "Stripe-Signature": b"t=1,v1=00"}, declare_length=declare_length)
    limit = MIB if path == WEBHOOK else 64 * 1024
    # Refused by its Content-Length before any of it is read; a body without one is read only
    # up to the limit (plus one chunk). Frameworks whose WSGI stream needs a length read none.
    assert body.read_bytes <= limit + body.chunk, body.read_bytes
    assert status in (400, 413), answer[:200]
    if declare_length:
        assert (status, error_of(answer)["error"]) == (413, "payload_too_large")
        assert body.read_bytes <= body.chunk


def test_wrong_methods_are_405(raw: Raw) -> None:
    for method, path in (("GET", WEBHOOK), ("PUT", WEBHOOK), ("GET", CHECKOUT),
                         ("DELETE", CHECKOUT), ("POST", ACCESS), ("PATCH", ACCESS)):
        status, _ = raw.send(method, path, b"", {"X-User": b"alice"})
        assert status == 405, (method, path, status)


# --------------------------------------------------------------------------- what clients are told
DRIVER_TEXT = ('connection to server at "db.internal" (10.0.0.5), port 5432 failed: '
               "Connection refused")
MIGRATE_TEXT = ("the licenzy tables are missing: run `licenzy-embed migrate --url …` or build "
                "the store with create_tables=True (relation \"licenzy_entitlements\" does not "
                "exist)")


@pytest.mark.parametrize("outage", [DRIVER_TEXT, MIGRATE_TEXT])
def test_a_503_says_nothing_of_the_database_and_logs_it(
        raw: Raw, lz: Licenzy, outage: str, caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(lz.store, FlakyStore)
    caplog.set_level(logging.WARNING, logger="licenzy_embed")
    lz.store.outage = outage
    answers = [raw.send("GET", ACCESS, b"", {"X-User": b"alice"}),
               raw.send("POST", CHECKOUT, b'{"product_code": "CREDITS_100"}',
                        {"X-User": b"alice", "Content-Type": b"application/json"})]
    lz.store.outage = None
    for status, answer in answers:
        body = error_of(answer)
        assert (status, body["error"]) == (503, "entitlements_unavailable")
        assert body["message"] == PLAIN_MESSAGES[503]
        for secret in ("5432", "db.internal", "10.0.0.5", "migrate", "relation"):
            assert secret not in answer.decode(), secret
    assert any(outage in r.getMessage() for r in caplog.records)


def test_a_502_says_nothing_of_stripe_and_a_denial_handler_sees_the_plain_error() -> None:
    error = PaymentProviderError("Stripe refused the checkout: Invalid API Key provided: "
                                 "sk_test_****1234")
    status, body = _common.denial(error)
    assert (status, body["error"]) == (502, "payment_provider_error")
    assert "sk_test" not in body["message"] and body["message"] == PLAIN_MESSAGES[502]
    shown = _common.public(StoreUnavailable("host db:5432", retryable=True))
    assert isinstance(shown, StoreUnavailable) and shown.retryable
    assert "5432" not in shown.message and "5432" not in str(shown)


def test_the_401_message_is_a_sentence_for_the_client(raw: Raw) -> None:
    status, answer = raw.send("GET", ACCESS, b"", {})
    body = error_of(answer)
    assert (status, body["error"]) == (401, "unauthenticated")
    assert "Raised by" not in body["message"] and "adapters" not in body["message"]
    assert "sign in" in body["message"]


def test_an_idempotency_conflict_names_the_clients_key(raw: Raw) -> None:
    headers = {"X-User": b"alice", "Content-Type": b"application/json",
               "Idempotency-Key": b"order-1"}
    assert raw.send("POST", CHECKOUT, b'{"product_code": "WEEK_PASS"}', headers)[0] == 200
    status, answer = raw.send("POST", CHECKOUT, b'{"product_code": "CREDITS_100"}', headers)
    body = error_of(answer)
    assert (status, body["error"]) == (422, "idempotency_conflict")
    assert "'order-1'" in body["message"] and "sub-" not in body["message"]


def test_a_metered_idempotency_conflict_names_the_clients_key(raw: Raw, lz: Licenzy,
                                                             sized_path: str) -> None:
    credits(lz, "alice")
    headers = {"X-User": b"alice", "Idempotency-Key": b"job-1"}
    assert raw.send("POST", f"{sized_path}?n=3", b"", headers)[0] == 200
    status, answer = raw.send("POST", f"{sized_path}?n=4", b"", headers)
    body = error_of(answer)
    assert (status, body["error"]) == (422, "idempotency_conflict")
    assert "'job-1'" in body["message"] and "view-" not in body["message"]
    assert remaining(lz, "alice") == 97
