"""``Licenzy.reconcile``: heal what missed webhooks left wrong, from what Stripe knows.

Stripe retries a failed delivery for three days and keeps events for thirty; a wrong secret
after a deploy, a disabled endpoint or a long outage still leaves entitlements behind. Two
passes, both through the rules webhooks use, so reconciling can never do what a delivery
would not:

1. **Events.** Stripe's Events API is listed for the handled types (``HANDLED_EVENTS``),
   created since ``since`` (at most 30 days back: Stripe keeps no older ones), and each event
   goes through the same exactly-once path as the webhook route (without a signature — it
   was read with the app's own key — but with the same parsing, mode check and unit of
   work). One already applied is a ``duplicate`` and changes nothing; a missed one is
   applied, in any order, and recorded under its own Stripe id, so the late webhook copy
   answers ``duplicate``.
2. **Current state.** For drift older than the event window, or events Stripe no longer has,
   each known subscription and each known payment (packs, passes, a subscription's current
   payment) is re-read, and its state applied as the claim of an event created when it was
   read (:meth:`WebhookProcessor.apply_claim`): the ordering rules date it, so a real event
   created later still wins, and one created earlier cannot roll it back. A subscription
   gives its status and period; a payment whose latest charge was fully refunded gives the
   refund. What it does not heal: a period's units (its invoice event grants them), a
   dispute's outcome, and a purchase whose every event is older than 30 days (no
   entitlement exists to re-read) — those need the event, or a support ``grant``.

**Dry run.** Everything runs inside one transaction that is rolled back at the end, so the
report shows exactly what a real run would change and nothing is written, delivered or
announced. (On SQLite that transaction holds the database's write lock for the run; Stripe is
read before it opens.)

**The report** lists, per subject whose access changed (only those), its
``customer_access`` before and after, and counts. A second run changes and announces nothing:
its events are duplicates and its claims change nothing (a claim that changes nothing is
rolled back and leaves no trace).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .clock import aware, iso
from .errors import InvalidPayload, InvalidRequest, PaymentProviderError
from .events import ChangeEvent
from .gateway import StripeHistory
from .stores.base import StoreTransaction
from .webhooks import HANDLED_EVENTS
from .webhooks.event import StripeEvent
from .webhooks.fields import as_dict, stored_id

if TYPE_CHECKING:
    from .licenzy import Licenzy

logger = logging.getLogger("licenzy_embed")
EVENT_WINDOW = timedelta(days=30)
Progress = Callable[[int, int], object]  # (done, total) after each item applied


@dataclass(frozen=True)
class SubjectChange:
    """One subject whose access changed: its ``customer_access`` before and after."""

    subject_ref: str
    before: dict[str, Any]
    after: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"subject_ref": self.subject_ref, "before": self.before, "after": self.after}


@dataclass
class ReconcileReport:
    dry_run: bool
    since: datetime
    events_seen: int = 0
    events_applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    skipped: int = 0  # unreadable (InvalidPayload): logged, not applied
    objects_reread: int = 0
    claims_applied: int = 0
    changes: list[SubjectChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "since": iso(self.since),
            "events_seen": self.events_seen, "events_applied": self.events_applied,
            "duplicates": self.duplicates, "ignored": self.ignored, "skipped": self.skipped,
            "objects_reread": self.objects_reread, "claims_applied": self.claims_applied,
            "changes": [c.to_dict() for c in self.changes],
        }


class _DryRun(Exception):
    """Raised at the end of a dry run so that its one transaction rolls back."""


def since_bound(since: datetime | timedelta | None, now: datetime) -> datetime:
    """The earliest event to list: ``since`` (an instant, or a duration back from now), never
    more than Stripe's 30-day window back."""
    oldest = now - EVENT_WINDOW
    if since is None:
        return oldest
    if isinstance(since, timedelta):
        if since <= timedelta(0):
            raise InvalidRequest("since must be a positive duration or a past instant")
        since = now - since
    elif isinstance(since, datetime):
        since = aware(since)
    else:
        raise InvalidRequest("since must be a datetime, a timedelta or None")
    if since > now:
        raise InvalidRequest("since must not be in the future")
    return max(since, oldest)


class Reconciler:
    def __init__(self, lz: Licenzy) -> None:
        self.lz = lz

    def history(self) -> StripeHistory:
        gateway = self.lz.gateway
        if not isinstance(gateway, StripeHistory):
            raise PaymentProviderError("this Licenzy's Stripe gateway cannot read Stripe's "
                                       "events and objects, which reconcile needs")
        return gateway

    def run(self, *, since: datetime | timedelta | None, dry_run: bool,
            progress: Progress | None) -> ReconcileReport:
        now = self.lz.now()
        bound = since_bound(since, now)
        history = self.history()
        # Stripe is read first, before any transaction opens (a dry run holds one open).
        events = history.list_events(types=HANDLED_EVENTS, created_gte=int(bound.timestamp()))
        events.sort(key=lambda e: (e.get("created") or 0, str(e.get("id"))))  # oldest first
        claims = self._claims(history)
        report = ReconcileReport(dry_run=dry_run, since=bound, events_seen=len(events),
                                 objects_reread=len(claims[1]))
        claims_list = claims[0]
        subjects = self._subjects(events)
        total = len(events) + len(claims_list)

        def apply_all() -> None:
            # From zero: a transaction run again after a deadlock counts again.
            report.events_applied = report.duplicates = report.ignored = report.skipped = 0
            report.claims_applied = 0
            report.changes = []
            before = {s: self.lz.customer_access(s).to_dict() for s in sorted(subjects)}
            done = 0
            if progress is not None:
                progress(0, total)
            for envelope in events:
                try:
                    result = self.lz.webhooks.handle_fetched(envelope)
                except InvalidPayload as exc:  # one unreadable event must not stop the rest
                    logger.warning("licenzy-embed: reconcile skipped Stripe event %s: %s",
                                   envelope.get("id"), exc)
                    report.skipped += 1
                    result = None
                if result is None:
                    pass
                elif result.outcome == "duplicate":
                    report.duplicates += 1
                elif result.outcome == "ignored":
                    report.ignored += 1
                else:
                    report.events_applied += 1
                done += 1
                if progress is not None:
                    progress(done, total)
            for claim in claims_list:
                changed, _ = self.lz.webhooks.apply_claim(claim)
                report.claims_applied += changed
                done += 1
                if progress is not None:
                    progress(done, total)
            self._compare(report, before)

        if not dry_run:
            apply_all()
            return report

        def dry(tx: StoreTransaction) -> tuple[None, list[ChangeEvent]]:
            apply_all()
            raise _DryRun  # every unit of work inside joined this one: all of it rolls back

        with suppress(_DryRun):
            self.lz.unit_of_work.run(dry)
        return report

    def _claims(self, history: StripeHistory) -> tuple[list[StripeEvent], list[str]]:
        """The current state of every known subscription and payment, as claims dated now."""
        claims: list[StripeEvent] = []
        read: list[str] = []
        live = self.lz.mode == "live"
        subscriptions: dict[str, None] = {}
        payments: dict[str, None] = {}
        for record in self.lz.store.known_purchases(self.lz.mode):
            if record.stripe_subscription_id:
                subscriptions[record.stripe_subscription_id] = None
            if record.stripe_payment_intent_id:
                payments[record.stripe_payment_intent_id] = None
        for sub_id in subscriptions:
            sub = history.retrieve_subscription(sub_id)
            read.append(sub_id)
            if sub is None:
                continue
            ended = sub.get("status") == "canceled"
            kind = "customer.subscription.deleted" if ended else "customer.subscription.updated"
            claims.append(self._claim(kind, sub, sub_id, live))
        for pi_id in payments:
            intent = history.retrieve_payment_intent(pi_id)
            read.append(pi_id)
            charge = as_dict((intent or {}).get("latest_charge"))
            amount, refunded = charge.get("amount"), charge.get("amount_refunded")
            full = charge.get("refunded") is True or (
                isinstance(amount, int) and isinstance(refunded, int) and refunded >= amount > 0)
            if full:
                charge.setdefault("payment_intent", pi_id)
                claims.append(self._claim("charge.refunded", charge, pi_id, live))
        return claims, read

    def _claim(self, kind: str, obj: dict[str, Any], object_id: str,
               live: bool) -> StripeEvent:
        read_at = int(self.lz.now().timestamp())
        return StripeEvent(id=f"lzclaim_{object_id}_{read_at}", type=kind, created=read_at,
                           livemode=live, obj=obj,
                           object_id=stored_id(obj.get("id"), "object"), claim=True)

    def _subjects(self, events: Iterable[dict[str, Any]]) -> set[str]:
        """Every subject the run could change, so that its access before is known: those of
        known purchases, those the events name, and the subjects of the customers they name."""
        from .webhooks.context import valid_subject

        subjects = {r.subject_ref for r in self.lz.store.known_purchases(self.lz.mode)}
        customers: set[str] = set()
        for envelope in events:
            obj = as_dict(as_dict(envelope.get("data")).get("object"))
            for candidate in (as_dict(obj.get("metadata")).get("subject_ref"),
                              obj.get("client_reference_id")):
                subject = valid_subject(candidate)
                if subject is not None:
                    subjects.add(subject)
            customer = stored_id(obj.get("customer"), "customer") if isinstance(
                obj.get("customer"), str) else None
            if customer:
                customers.add(customer)
        if customers:
            with self.lz.store.transaction(self.lz.mode) as tx:
                for customer in sorted(customers):
                    link = tx.get_customer_by_stripe_id(customer)
                    if link is not None:
                        subjects.add(link.subject_ref)
        return subjects

    def _compare(self, report: ReconcileReport, before: dict[str, dict[str, Any]]) -> None:
        for subject, was in before.items():
            now = self.lz.customer_access(subject).to_dict()
            if now != was:
                report.changes.append(SubjectChange(subject, was, now))
