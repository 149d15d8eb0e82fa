from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from licenzy_embed import ChangeEvent, Entitlement, Licenzy
from licenzy_embed.entitlement import EntitlementRecord
from licenzy_embed.testing import FrozenClock
from licenzy_embed.webhooks import WebhookResult

from . import payloads

DAY = 24 * 3600


class Scenario:
    """Sends fixture-built events to one Licenzy and reads back what they did."""

    def __init__(self, lz: Licenzy, clock: FrozenClock) -> None:
        self.lz = lz
        self.clock = clock
        self.changes: list[ChangeEvent] = []
        lz.on("*", self.changes.append)

    @property
    def now(self) -> int:
        return self.clock.timestamp()

    def send(self, event_type: str, obj: dict[str, Any], *, created: int | None = None,
             event_id: str | None = None) -> WebhookResult:
        envelope = payloads.event(event_type, obj, created=self.now if created is None
                                  else created, event_id=event_id)
        return payloads.send(self.lz, envelope)

    def records(self, subject_ref: str) -> list[EntitlementRecord]:
        return self.lz.store.list_entitlements(self.lz.mode, subject_ref)

    def only(self, subject_ref: str) -> Entitlement:
        found = self.lz.entitlements(subject_ref)
        assert len(found) == 1, found
        return found[0]

    def changes_of(self, event_type: str) -> list[ChangeEvent]:
        return [c for c in self.changes if c.type == event_type]

    def advance(self, days: float) -> None:
        self.clock.advance(timedelta(days=days))


@pytest.fixture
def stripe_events(lz: Licenzy, clock: FrozenClock) -> Scenario:
    return Scenario(lz, clock)
