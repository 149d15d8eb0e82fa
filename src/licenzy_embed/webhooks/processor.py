"""``Licenzy.handle_webhook``: verify → parse → mode check → one unit of work.

**Verification** uses the SDK (:mod:`.signature`); only then is the body parsed, and the
event's object read by its type's typed reader (:mod:`.handlers`), so a body that is not a
Stripe event, or names ids the store could not hold, is ``InvalidPayload``; an event of the
other mode is ``ModeMismatch``. All three answer 400 and record nothing.

**Exactly once.** The event id is inserted (unique per mode) as the *first* write of the unit of
work that applies the event, so a second copy — also one arriving at the same moment in
another process, whose insert blocks on the unique index until the first commits — is
answered ``duplicate`` without touching anything. Any other failure rolls the whole
transaction back, event id included, so Stripe's retry runs it again (the dj-stripe #832
lesson). Two *different* events creating the same entitlement at the same moment collide on
its primary key (derived from the Stripe object), and the unit of work re-runs the loser
against what the winner committed; an existing entitlement is row-locked before anything else
about it is read or written, so events on one purchase serialise. Events that meet on
something with no row to lock yet — a refund and the checkout creating its purchase, an
invoice and its ``invoice_payment.paid`` — first upsert a lock row (invoice, then payment
intent, then the entitlement: always in that order), so at READ COMMITTED one of them waits
and then sees what the other committed.

**Notes.** An event that changes nothing — older than the state, naming a subject or price
this app does not know, a partial refund — is still recorded (outcome ``processed``, with a
``note`` saying why) so it is never re-applied. Types outside the table are recorded and
answered ``ignored``: never a 4xx, because Stripe disables endpoints that keep failing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..catalog import Catalog
from ..errors import ModeMismatch
from ..events import ChangeEvent
from ..records import ProcessedEvent
from ..stores.base import DuplicateKey, StoreTransaction
from ..unit_of_work import UnitOfWork
from .context import Context, valid_subject
from .event import StripeEvent, WebhookResult, parse_event, payload_text
from .fields import metadata
from .handlers import HANDLERS, Apply, Handler
from .signature import WebhookSecrets, verify

NOTHING_CHANGED = "this event changed nothing: the state already reflects it or newer events"


class _Unchanged(Exception):
    """Raised inside a claim's transaction when it changed nothing, so it leaves no trace."""


class _AlreadyProcessed(Exception):
    """Raised inside the transaction so that it rolls back and the delivery reads
    ``duplicate``."""


class WebhookProcessor:
    """Everything a delivery needs, given explicitly: where to apply it (``unit_of_work``,
    in ``mode``), what the app sells, its clock, the rules' settings and the secrets."""

    def __init__(self, *, unit_of_work: UnitOfWork, mode: str, catalog: Catalog,
                 now: Callable[[], datetime], secrets: WebhookSecrets, tolerance: int,
                 past_due_grace: timedelta,
                 handlers: Mapping[str, Handler[Any]] = HANDLERS) -> None:
        self.unit_of_work = unit_of_work
        self.mode = mode
        self.catalog = catalog
        self.now = now
        self.secrets = secrets
        self.tolerance = tolerance
        self.past_due_grace = past_due_grace
        self.handlers = handlers

    def handle(self, payload: bytes, signature_header: str) -> WebhookResult:
        text = payload_text(payload)
        verify(self.secrets, text, signature_header, self.tolerance)
        return self.process(parse_event(text))

    def handle_fetched(self, envelope: dict[str, Any]) -> WebhookResult:
        """An event read from Stripe's Events API with the app's own key (``reconcile``):
        no signature to check, everything else as for a delivery — the same parsing, mode
        check and exactly-once unit of work, under its own Stripe id, so a late webhook copy
        of it answers ``duplicate``."""
        return self.process(parse_event(json.dumps(envelope)))

    def apply_claim(self, event: StripeEvent) -> tuple[bool, list[ChangeEvent]]:
        """Apply a state read from Stripe now (``reconcile``) as the claim of an event
        created at the time it was read: the ordering rules date it, so a later real event
        still wins and an older one cannot roll it back. Its id is not recorded (it is no
        Stripe event); a claim that changes nothing is rolled back and leaves no trace.
        Returns whether it changed anything, and the change events it announced."""
        handler = self.handlers[event.type]
        apply = handler.prepare(event.obj)
        if event.livemode != (self.mode == "live"):
            raise ModeMismatch(f"a {'live' if event.livemode else 'test'}-mode object read "
                               f"by a {self.mode}-mode Licenzy")

        def work(tx: StoreTransaction) -> tuple[list[ChangeEvent], list[ChangeEvent]]:
            ctx = Context(tx, event, mode=self.mode, now=self.now(), catalog=self.catalog,
                          past_due_grace=self.past_due_grace)
            apply(ctx)
            ctx.flush()
            if not ctx.settled and not any(t.changed for t in ctx.targets.values()):
                raise _Unchanged
            return ctx.events, ctx.events

        try:
            return True, self.unit_of_work.run(work)
        except _Unchanged:
            return False, []

    def process(self, event: StripeEvent) -> WebhookResult:
        handler = self.handlers.get(event.type)
        apply = handler.prepare(event.obj) if handler is not None else None
        if event.livemode != (self.mode == "live"):
            raise ModeMismatch(
                f"a {'live' if event.livemode else 'test'}-mode event reached a "
                f"{self.mode}-mode Licenzy; nothing was recorded")
        try:
            return self.unit_of_work.run(lambda tx: self._apply(tx, event, apply))
        except _AlreadyProcessed:
            return WebhookResult(event.id, event.type, "duplicate",
                                 "this event was already processed")

    def _apply(self, tx: StoreTransaction, event: StripeEvent,
               apply: Apply | None) -> tuple[WebhookResult, list[ChangeEvent]]:
        if tx.get_processed_event(event.id) is not None:
            raise _AlreadyProcessed
        now = self.now()
        try:
            tx.insert_processed_event(ProcessedEvent(
                mode=self.mode, event_id=event.id, event_type=event.type,
                outcome="processed" if apply is not None else "ignored",
                object_id=event.object_id, event_created=event.created, processed_at=now,
                subject_ref=valid_subject(metadata(event.obj).get("subject_ref")),
            ))
        except DuplicateKey:
            raise _AlreadyProcessed from None
        if apply is None:
            return WebhookResult(event.id, event.type, "ignored",
                                 "licenzy-embed does not use this event type"), []
        ctx = Context(tx, event, mode=self.mode, now=now, catalog=self.catalog,
                      past_due_grace=self.past_due_grace)
        apply(ctx)
        ctx.flush()
        if not ctx.notes and not ctx.changed_anything:
            ctx.note(NOTHING_CHANGED)
        note = "; ".join(dict.fromkeys(ctx.notes)) or None
        return WebhookResult(event.id, event.type, "processed", note), ctx.events

