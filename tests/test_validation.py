"""The input rules of SPEC §3 (licenzy_embed.validation) and the error classes' contract."""

from __future__ import annotations

from typing import Any

import pytest

from licenzy_embed import errors, validation
from licenzy_embed.errors import InvalidRequest, LicenzyError


@pytest.mark.parametrize("value", ["u", "x" * 255, "user_1", "équipe 42", "org/1:user@x",
                                   "emoji 🙂"])
def test_good_subject_refs(value: str) -> None:
    assert validation.subject_ref(value) == value


@pytest.mark.parametrize("value", ["", "x" * 256, "a\nb", "a\rb", "\x00", "a\tb", "\x1b[31m",
                                   "del\x7f", "c1\x9f", None, 1, b"user", ["user"]])
def test_bad_subject_refs(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="subject_ref"):
        validation.subject_ref(value)


@pytest.mark.parametrize("value", [1, 2, 999, 10**12])
def test_good_units(value: int) -> None:
    assert validation.units(value) == value


@pytest.mark.parametrize("value", [0, -1, -(10**12), 10**12 + 1, 10**13, True, False, 1.0, 1.5,
                                   "5", None, [1]])
def test_bad_units(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="units"):
        validation.units(value)


@pytest.mark.parametrize("value", [1, -1, 10**12, -(10**12)])
def test_good_deltas(value: int) -> None:
    assert validation.delta(value) == value


@pytest.mark.parametrize("value", [0, 10**12 + 1, -(10**12) - 1, True, 1.5, "1", None])
def test_bad_deltas(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="delta"):
        validation.delta(value)


@pytest.mark.parametrize("value", ["A", "PRO_MONTHLY", "CREDITS_1K", "_", "9", "A" * 64])
def test_good_product_codes(value: str) -> None:
    assert validation.product_code(value) == value
    assert validation.is_valid_product_code(value)


@pytest.mark.parametrize("value", ["", "pro", "Pro", "A-B", "A B", "A" * 65, "PRO\n", "É",
                                   None, 5])
def test_bad_product_codes(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="product_code"):
        validation.product_code(value)


@pytest.mark.parametrize("value", ["k", "order-42", "x" * 255, "550e8400-e29b-41d4-a716"])
def test_good_idempotency_keys(value: str) -> None:
    assert validation.idempotency_key(value) == value


@pytest.mark.parametrize(("value", "message"), [
    (None, "required"), ("", "required"), (5, "string"), ("x" * 256, "255"),
    ("a\nb", "control"),
])
def test_bad_idempotency_keys(value: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validation.idempotency_key(value)


@pytest.mark.parametrize("value", ["", "  ", None, 5, "x" * 1001])
def test_bad_reasons(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="reason"):
        validation.reason(value)


def test_good_reason() -> None:
    assert validation.reason("support ticket #42") == "support ticket #42"


@pytest.mark.parametrize(("cls", "code", "status"), [
    (errors.InvalidRequest, "invalid_request", 400),
    (errors.EntitlementNotFound, "entitlement_not_found", 404),
    (errors.ReservationExpired, "reservation_expired", 409),
    (errors.IdempotencyConflict, "idempotency_conflict", 422),
    (errors.InvalidSignature, "invalid_signature", 400),
    (errors.InvalidPayload, "invalid_payload", 400),
    (errors.ModeMismatch, "mode_mismatch", 400),
    (errors.StoreUnavailable, "entitlements_unavailable", 503),
    (errors.PaymentProviderError, "payment_provider_error", 502),
])
def test_errors_carry_code_and_status(cls: type[LicenzyError], code: str, status: int) -> None:
    err = cls("something went wrong")
    assert isinstance(err, LicenzyError)
    assert (err.code, err.status) == (code, status)
    assert err.to_dict() == {"error": code, "message": "something went wrong"}
    assert str(err) == "something went wrong"
    assert cls().message  # a default message from the docstring


def test_insufficient_usage_and_unknown_product_carry_their_fields() -> None:
    err = errors.InsufficientUsage(10, 3)
    assert (err.code, err.status, err.requested, err.usage_remaining) == (
        "insufficient_usage", 409, 10, 3)
    assert err.to_dict() == {"error": "insufficient_usage", "message": err.message,
                             "requested": 10, "usage_remaining": 3, "meter": "units",
                             "upgrade": []}
    unknown = errors.UnknownProduct("NOPE")
    assert (unknown.code, unknown.status) == ("unknown_product", 404)
    assert unknown.to_dict()["product_code"] == "NOPE"


def test_every_public_error_is_exported() -> None:
    import licenzy_embed

    for name in ("InvalidRequest", "UnknownProduct", "InsufficientUsage", "IdempotencyConflict",
                 "InvalidSignature", "ModeMismatch", "StoreUnavailable", "LicenzyError",
                 "EntitlementNotFound", "ReservationExpired"):
        assert issubclass(getattr(licenzy_embed, name), LicenzyError)
