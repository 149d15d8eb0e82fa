"""Change events (Licenzy's outbound event names), delivered to ``Licenzy.on`` callbacks.

Events are collected while a change is being made and dispatched only after its transaction
committed, so a callback never sees a change that was later rolled back. A failing callback is
logged and does not undo the change: the state is already true.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
