"""Input rules of SPEC §3, checked before anything touches the store.

A bad value raises ``InvalidRequest`` and nothing changes: every public entry point calls these
first, so the store never sees input it would have to reject half-way through a transaction.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidRequest

MAX_UNITS = 10**12
_PRODUCT_CODE = re.compile(r"[A-Z0-9_]{1,64}")


# C0 controls, DEL and C1 controls. One regex search, not a Python loop over the characters:
# every access check validates its subject, and the loop was half of an in-memory check.
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")


def has_control_chars(value: str) -> bool:
    if value.isascii() and value.isprintable():
        return False  # the common case, decided in C without the regex
    return _CONTROL_CHARS.search(value) is not None


def subject_ref(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest("subject_ref must be a string")
    if not 1 <= len(value) <= 255:
        raise InvalidRequest("subject_ref must be 1 to 255 characters")
    if has_control_chars(value):
        raise InvalidRequest("subject_ref must not contain control characters")
    return value


def idempotency_key(value: Any) -> str:
    if value is None or value == "":
        raise InvalidRequest("an idempotency_key is required")
    if not isinstance(value, str):
        raise InvalidRequest("idempotency_key must be a string")
    if len(value) > 255:
        raise InvalidRequest("idempotency_key must be at most 255 characters")
    if has_control_chars(value):
        raise InvalidRequest("idempotency_key must not contain control characters")
    return value


def units(value: Any, *, name: str = "units") -> int:
    # bool is an int subclass; True units is a bug in the caller, not one unit.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer")
    if not 1 <= value <= MAX_UNITS:
        raise InvalidRequest(f"{name} must be between 1 and {MAX_UNITS}")
    return value


def delta(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("delta must be an integer")
    if value == 0 or abs(value) > MAX_UNITS:
        raise InvalidRequest(f"delta must be non-zero and at most {MAX_UNITS} in size")
    return value


def product_code(value: Any) -> str:
    if not isinstance(value, str) or not _PRODUCT_CODE.fullmatch(value):
        raise InvalidRequest("product_code must match [A-Z0-9_]{1,64}")
    return value


def reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("a reason is required")
    if len(value) > 1000:
        raise InvalidRequest("reason must be at most 1000 characters")
    return value


def is_valid_product_code(value: str) -> bool:
    return bool(_PRODUCT_CODE.fullmatch(value))
