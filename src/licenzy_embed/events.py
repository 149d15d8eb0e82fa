"""Change events (Licenzy's outbound event names), delivered to ``Licenzy.on`` callbacks.

Every event is built by one typed constructor below, so each name has one payload shape
wherever in the library the change happened (an admin grant and a Stripe event announce the
same ``entitlement.updated``).

Events are collected while a change is being made and dispatched only after its transaction
committed, so a callback never sees a change that was later rolled back. A failing callback is
logged and does not undo the change: the state is already true.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .entitlement import Entitlement

logger = logging.getLogger("licenzy_embed")

EVENT_TYPES = frozenset({
    "purchase.finalized",
    "entitlement.updated",
    "usage.consumed",
    "subscription.updated",
    "subscription.deleted",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
})


@dataclass(frozen=True)
class ChangeEvent:
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data}


Callback = Callable[[ChangeEvent], Any]


def entitlement_updated(view: Entitlement, *, source: str,
                        reference: str | None = None) -> ChangeEvent:
    """An entitlement was created or changed; ``source`` is ``admin`` or ``stripe``, and
    ``reference`` the Stripe event that changed it."""
    return ChangeEvent("entitlement.updated", {
        "entitlement": view.to_dict(), "source": source, "reference": reference,
    })


def purchase_finalized(*, attempt_id: str | None, session_id: str, subject_ref: str,
                       product_code: str, view: Entitlement) -> ChangeEvent:
    return ChangeEvent("purchase.finalized", {
        "attempt_id": attempt_id, "session_id": session_id, "subject_ref": subject_ref,
        "product_code": product_code, "entitlement": view.to_dict(),
    })


def subscription_changed(*, ended: bool, subscription_id: str, subject_ref: str, status: str,
                         view: Entitlement) -> ChangeEvent:
    """``subscription.updated``, or ``subscription.deleted`` when it ``ended``."""
    return ChangeEvent("subscription.deleted" if ended else "subscription.updated", {
        "subscription_id": subscription_id, "subject_ref": subject_ref, "status": status,
        "entitlement": view.to_dict(),
    })


def invoice_payment(*, succeeded: bool, invoice_id: str, subscription_id: str,
                    subject_ref: str, view: Entitlement) -> ChangeEvent:
    """``invoice.payment_succeeded`` or ``invoice.payment_failed``."""
    name = "invoice.payment_succeeded" if succeeded else "invoice.payment_failed"
    return ChangeEvent(name, {
        "invoice_id": invoice_id, "subscription_id": subscription_id,
        "subject_ref": subject_ref, "entitlement": view.to_dict(),
    })


def usage_consumed(*, subject_ref: str, consumed: int, usage_remaining: int,
                   idempotency_key: str, meter: str = "units") -> ChangeEvent:
    return ChangeEvent("usage.consumed", {
        "subject_ref": subject_ref, "consumed": consumed, "usage_remaining": usage_remaining,
        "idempotency_key": idempotency_key, "meter": meter,
    })


class EventBus:
    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)

    def on(self, event_type: str, callback: Callback) -> None:
        if event_type != "*" and event_type not in EVENT_TYPES:
            raise ValueError(
                f"unknown event type {event_type!r}; one of {', '.join(sorted(EVENT_TYPES))}"
            )
        if not callable(callback):
            raise ValueError("callback must be callable")
        self._callbacks[event_type].append(callback)

    def emit(self, events: list[ChangeEvent]) -> None:
        for event in events:
            for callback in (*self._callbacks.get(event.type, ()), *self._callbacks.get("*", ())):
                try:
                    callback(event)
                except Exception:
                    logger.exception("licenzy-embed: %s callback failed", event.type)
