"""A verified delivery as the processor reads it (:class:`StripeEvent`), and what handling it
answered (:class:`WebhookResult`).

Parsing refuses, as ``InvalidPayload`` and before anything is written, whatever is not a
Stripe event or could not be stored: no JSON (or JSON nested too deep to read), missing
envelope fields, an id or type the processed-events table cannot hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InvalidPayload
from ..validation import has_control_chars
from .fields import integer, stored_id, time
from .keys import COLUMN

Order = tuple[int, str]  # (event created, event id): the order events are applied in


@dataclass(frozen=True)
class WebhookResult:
    """What ``handle_webhook`` did with one delivery. ``note`` says why a processed event
    changed nothing (older than the state, unknown subject or price, …)."""

    event_id: str
    event_type: str
    outcome: str  # processed | duplicate | ignored
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "outcome": self.outcome,
        }
        if self.note is not None:
            body["note"] = self.note
        return body


@dataclass(frozen=True)
class StripeEvent:
    """The parts of a verified event the processor reads."""

    id: str
    type: str
    created: int
    livemode: bool
    obj: dict[str, Any]
    object_id: str | None  # data.object.id, checked like every stored id
    # A state ``reconcile`` read from Stripe, not an event Stripe sent: it may add a fact
    # nobody told us, never re-date one already known (see ``payment.fact``).
    claim: bool = False

    @property
    def order(self) -> Order:
        return (self.created, self.id)

    @property
    def at(self) -> datetime:
        return time(self.created)


def payload_text(payload: Any) -> str:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPayload("the webhook body is not UTF-8 text") from None
    if isinstance(payload, str):
        return payload
    raise InvalidPayload("the webhook body must be the raw request bytes")


def _envelope_string(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= COLUMN and not has_control_chars(value)


def parse_event(text: str) -> StripeEvent:
    """Check that a verified body is a Stripe event and keep what processing reads."""
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidPayload("the webhook body is not JSON") from None
    except RecursionError:
        raise InvalidPayload("the webhook body is nested too deeply to be a Stripe event"
                             ) from None
    if not isinstance(data, dict) or data.get("object") != "event":
        raise InvalidPayload("the webhook body is not a Stripe event")
    event_id, event_type = data.get("id"), data.get("type")
    created, livemode = integer(data.get("created")), data.get("livemode")
    inner = data.get("data")
    obj = inner.get("object") if isinstance(inner, dict) else None
    if not _envelope_string(event_id):
        raise InvalidPayload("the event has no valid id")
    if not _envelope_string(event_type):
        raise InvalidPayload("the event has no valid type")
    if created is None:
        raise InvalidPayload("the event has no valid created timestamp")
    if not isinstance(livemode, bool):
        raise InvalidPayload("the event does not say whether it is live")
    if not isinstance(obj, dict):
        raise InvalidPayload("the event has no data.object")
    object_id = stored_id(obj.get("id"), "object")
    return StripeEvent(str(event_id), str(event_type), created, livemode, obj, object_id)
