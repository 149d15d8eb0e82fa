"""The one table of handled event types: immutable, the source of the handled set, and the
only dispatch there is (a type outside it is ignored, never handled by another's branch)."""

from __future__ import annotations

from typing import Any

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.webhooks import HANDLED_EVENTS, HANDLERS, Handler

from . import payloads

SPEC_EVENTS = {  # SPEC §5, "Events processed"
    "checkout.session.completed", "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed", "checkout.session.expired",
    "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "customer.subscription.paused",
    "customer.subscription.resumed", "invoice.paid", "invoice.payment_succeeded",
    "invoice.payment_failed", "charge.refunded", "refund.created", "refund.updated",
    "charge.dispute.created", "charge.dispute.closed", "invoice_payment.paid",
}


def test_the_handled_set_is_the_tables_and_the_specs() -> None:
    assert HANDLED_EVENTS == frozenset(HANDLERS) == SPEC_EVENTS
    assert all(isinstance(handler, Handler) for handler in HANDLERS.values())


def test_the_table_cannot_be_changed_in_place() -> None:
    with pytest.raises(TypeError):
        HANDLERS["charge.dispute.funds_withdrawn"] = HANDLERS["charge.dispute.created"]  # type: ignore[index]


def test_dispatch_is_the_table_alone(lz: Licenzy, clock: Any,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Taking a type out of the table makes it ignored: nothing else would handle it.
    table = {k: v for k, v in HANDLERS.items() if k != "charge.dispute.created"}
    monkeypatch.setattr(lz.webhooks, "handlers", table)
    dispute = payloads.dispute(payment_intent=payloads.new_id("pi"), status="needs_response")
    result = payloads.send(lz, payloads.event("charge.dispute.created", dispute,
                                              created=clock.timestamp()))
    assert (result.outcome, result.note) == ("ignored",
                                            "licenzy-embed does not use this event type")
