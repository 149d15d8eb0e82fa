"""Reading fields of Stripe payloads: tolerant of absent or odd values (they name nothing),
strict about the identifiers the library stores (a payload it cannot store is refused at
parse time, before any write, rather than failing half-way into the database)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..errors import InvalidPayload
from ..validation import has_control_chars
from .keys import MAX_STRIPE_ID

MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z


def time(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[dict[str, Any]]:
    """The items of a Stripe list object (``{"object": "list", "data": [...]}``) or array."""
    if isinstance(value, dict):
        value = value.get("data")
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def integer(value: Any) -> int | None:
    """An integer field (amounts, quantities, timestamps), or None when it is missing or could
    not be a date a ``datetime`` holds."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TIMESTAMP:
        return value
    return None


def stored_id(value: Any, what: str) -> str | None:
    """An id the library stores (or looks rows up by), whether the field holds the id or the
    expanded object. Absent or not a string: None. A string the store's columns cannot hold
    (too long, NUL or other control characters): ``InvalidPayload``."""
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        return None
    if len(value) > MAX_STRIPE_ID or has_control_chars(value):
        raise InvalidPayload(f"the event's {what} id is not a Stripe id this library can store "
                             f"(at most {MAX_STRIPE_ID} characters, no control characters)")
    return value


def ref(value: Any) -> str | None:
    """An id only compared, never stored (a price): no length rule."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None


def metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("metadata"))


def price_ids(item: dict[str, Any]) -> list[str]:
    """Price ids named by a subscription item, invoice line or checkout line item: the current
    ``price``/``pricing.price_details.price`` and the legacy ``plan``."""
    found = [
        ref(item.get("price")),
        ref(as_dict(as_dict(item.get("pricing")).get("price_details")).get("price")),
        ref(item.get("plan")),
    ]
    return [p for p in found if p]
