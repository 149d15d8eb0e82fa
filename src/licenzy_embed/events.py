"""Change events (Licenzy's outbound event names), delivered to ``Licenzy.on`` callbacks.

Every event is built by one typed constructor below, so each name has one payload shape
wherever in the library the change happened (an admin grant and a Stripe event announce the
same ``entitlement.updated``).

Events are collected while a change is being made, written to the outbox in the change's own
transaction (which gives each its stable ``id``), and delivered only after that transaction
committed, so a callback never sees a change that was later rolled back. A failing callback is
logged and does not undo the change: the state is already true; :mod:`.outbox` retries it.
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
    """``id`` is given when the event is written to the outbox (``lzev_…``) and stays the same
    on every redelivery, so a receiver can dedupe on it; ``created_at`` is when the change
    was committed (ISO 8601, UTC)."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    created_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "created_at": self.created_at,
                "data": self.data}


Callback = Callable[[ChangeEvent], Any]
# A callback that forwards to another dispatcher (Django's signal, blinker) sets this
# attribute to a function telling whether anyone is connected there. While nobody is, it
# counts as not registered: the events wait, pending, rather than go to no one.
LISTENING = "licenzy_listening"


def listening(callback: Callback) -> bool:
    check = getattr(callback, LISTENING, None)
    return check is None or bool(check())


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


def callback_name(callback: Callback) -> str:
    """A callback's name that is the same in every process of the app (module and qualified
    name), so the outbox can remember which callbacks already received an event."""
    module = getattr(callback, "__module__", None) or type(callback).__module__
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    return f"{module}.{name}"


class EventBus:
    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)
        # (registered type, callback) -> its delivery name, unique within this bus: the n-th
        # registration of one name gets "#n", so two lambdas of one module stay apart.
        self._names: dict[tuple[str, int], str] = {}
        self._seen: dict[str, int] = defaultdict(int)

    def __bool__(self) -> bool:
        return any(listening(c) for callbacks in self._callbacks.values() for c in callbacks)

    def receivers(self, event_type: str) -> list[tuple[str, Callback]]:
        """The callbacks of ``event_type`` (its own, then ``*``'s), each with its name."""
        found = []
        for registered in (event_type, "*"):
            for index, callback in enumerate(self._callbacks.get(registered, ())):
                if listening(callback):
                    found.append((self._names[(registered, index)], callback))
        return found

    def on(self, event_type: str, callback: Callback) -> None:
        if event_type != "*" and event_type not in EVENT_TYPES:
            raise ValueError(
                f"unknown event type {event_type!r}; one of {', '.join(sorted(EVENT_TYPES))}"
            )
        if not callable(callback):
            raise ValueError("callback must be callable")
        base = f"{event_type}:{callback_name(callback)}"
        self._seen[base] += 1
        self._names[(event_type, len(self._callbacks[event_type]))] = (
            base if self._seen[base] == 1 else f"{base}#{self._seen[base]}")
        self._callbacks[event_type].append(callback)

