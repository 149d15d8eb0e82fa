"""The state of one event being applied inside one store transaction: the entitlements it
touches (row-locked, changed in memory, written once by :meth:`Context.flush`), its notes,
the change events to dispatch after commit, and typed access to the watermark rows."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import validation
from ..catalog import Catalog, Product
from ..entitlement import PENDING, Entitlement, EntitlementRecord, derive_access
from ..errors import InvalidRequest, LicenzyError
from ..events import ChangeEvent, entitlement_updated
from ..ledger import LedgerEntry
from ..records import CheckoutAttempt, CustomerLink, Watermark
from ..stores.base import StoreTransaction
from . import keys
from .event import Order, StripeEvent

logger = logging.getLogger("licenzy_embed")
INCOMPLETE = "incomplete"


def entitlement_id(mode: str, purchase_key: str) -> str:
    """One entitlement per Stripe subscription or payment, with an id derived from it: two
    events racing to create it collide on the primary key instead of making two."""
    return "ent_" + hashlib.sha256(f"{mode}|{purchase_key}".encode()).hexdigest()[:32]


def valid_subject(value: Any) -> str | None:
    try:
        return validation.subject_ref(value)
    except InvalidRequest:
        return None


def purchase_key(record: EntitlementRecord) -> str:
    return (record.stripe_subscription_id or record.stripe_payment_intent_id
            or record.stripe_checkout_session_id or record.id)


@dataclass
class Target:
    """One entitlement being changed by the current event."""

    record: EntitlementRecord
    is_new: bool
    original: EntitlementRecord  # as read (or as inserted): what the flush compares against
    # (action, reason, units_delta, meter) of each ledger entry the event writes
    ledger: list[tuple[str, str, int | None, str | None]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.is_new or bool(self.ledger) or self.record != self.original


class Context:
    def __init__(self, tx: StoreTransaction, event: StripeEvent, *, mode: str, now: datetime,
                 catalog: Catalog, past_due_grace: timedelta) -> None:
        self.tx = tx
        self.ev = event
        self.mode = mode
        self.now = now
        self.catalog = catalog
        self.past_due_grace = past_due_grace
        self.events: list[ChangeEvent] = []
        self.targets: dict[str, Target] = {}
        self.notes: list[str] = []
        self.settled = False  # a checkout attempt or a customer link was written

    # -- notes and warnings
    def note(self, text: str) -> None:
        self.notes.append(text)

    def unmatched(self, what: str) -> None:
        logger.warning("licenzy-embed: Stripe event %s (%s): %s; recorded without effect",
                       self.ev.id, self.ev.type, what)
        self.note(what)

    @property
    def changed_anything(self) -> bool:
        return self.settled or bool(self.events) or any(t.changed for t in self.targets.values())

    # -- resolution
    def subject_from(self, *candidates: Any, customer: str | None = None) -> str | None:
        for candidate in candidates:
            subject = valid_subject(candidate)
            if subject is not None:
                return subject
        if customer is not None:
            link = self.tx.get_customer_by_stripe_id(customer)
            if link is not None:
                return link.subject_ref
        return None

    def product_from(self, prices: Iterable[str], *codes: Any) -> Product | None:
        for price in prices:
            product = self.catalog.by_price(price)
            if product is not None:
                return product
        for code in codes:
            if isinstance(code, str):
                try:
                    return self.catalog.get(code)
                except LicenzyError:  # an unknown or malformed code names nothing we sell
                    continue
        return None

    # -- entitlements
    def target(self, purchase: str,
               create: Callable[[], EntitlementRecord | None]) -> Target | None:
        """The entitlement of a subscription or payment, locked for the rest of the
        transaction. When it does not exist yet, ``create`` builds it and it is inserted at
        once: events racing to create it collide on its primary key (the losers re-run and
        find it), and everything else they write happens under its lock."""
        ent_id = entitlement_id(self.mode, purchase)
        if ent_id in self.targets:
            return self.targets[ent_id]
        record = self.tx.get_entitlement(ent_id)
        if record is not None:
            found = Target(record, False, record)
        else:
            built = create()
            if built is None:
                return None
            self.tx.insert_entitlement(built)
            found = Target(built, True, built)
        self.targets[ent_id] = found
        return found

    def payment_target(self, payment_intent: str) -> Target | None:
        target = self.target(payment_intent, lambda: None)
        if target is not None:
            return target
        found = self.tx.find_entitlements(stripe_payment_intent_id=payment_intent)
        if not found:
            return None
        record = found[0]
        return self.targets.setdefault(record.id, Target(record, False, record))

    def new_record(self, purchase: str, subject_ref: str, product: Product, *,
                   customer: str | None, subscription: str | None = None,
                   session: str | None = None, payment_intent: str | None = None,
                   quantity: int = 1) -> EntitlementRecord:
        # Every meter starts at zero: a subscription's units come with the period grant of a
        # paid invoice (the $0 trial invoice too), once per period; a pack's when it is paid,
        # each meter times the quantity bought.
        if product.kind == "subscription":
            status, granted = INCOMPLETE, dict(product.meters)
        elif product.kind == "usage_pack":
            status = PENDING
            granted = {meter: count * quantity for meter, count in product.meters.items()}
        else:
            status, granted = PENDING, {}
        return derive_access(EntitlementRecord(
            id=entitlement_id(self.mode, purchase), mode=self.mode, subject_ref=subject_ref,
            product_code=product.code, kind=product.kind, status=status, source="stripe",
            created_at=self.now, updated_at=self.now, balances=dict.fromkeys(granted, 0),
            grants=granted, quantity=quantity, stripe_customer_id=customer,
            stripe_subscription_id=subscription, stripe_checkout_session_id=session,
            stripe_payment_intent_id=payment_intent,
        ))

    def change(self, target: Target, action: str | None, reason: str,
               units_delta: int | None = None, meter: str | None = None,
               **changes: Any) -> None:
        """Change the entitlement; ``action`` names its ledger entry (None: bookkeeping that
        support has no use for, such as which payment is the current one), ``meter`` the
        meter its ``units_delta`` is of."""
        target.record = target.record.evolve(self.now, **changes)
        if action is not None:
            target.ledger.append((action, reason, units_delta, meter))

    def announce(self, event: ChangeEvent) -> None:
        self.events.append(event)

    def view(self, target: Target) -> Entitlement:
        product = self.catalog.by_code(target.record.product_code)
        return Entitlement.at(target.record, self.now, product.features if product else ())

    def flush(self) -> None:
        for target in self.targets.values():
            record = target.record
            entries = target.ledger
            if record != target.original:
                self.tx.save_entitlement(record)
            if target.is_new:
                # One entry for the whole creation (one per meter), with what it ended up as.
                recorded = (f"{self.ev.type}: {record.product_code} recorded, "
                            f"status {record.status}")
                entries = [("granted", recorded, left, meter)
                           for meter, left in record.balances.items()
                           ] or [("granted", recorded, None, None)]
            for action, reason, delta, meter in entries:
                self.tx.add_ledger(LedgerEntry.new(
                    mode=self.mode, subject_ref=record.subject_ref, action=action,
                    source="stripe", reason=reason, at=self.now, entitlement_id=record.id,
                    units_delta=delta, status=record.status, reference=self.ev.id,
                    meter=meter,
                ))
            if not target.is_new and record == target.original:
                continue  # recorded (a partial refund), but nothing changed to announce
            self.events.append(entitlement_updated(self.view(target), source="stripe",
                                                   reference=self.ev.id))

    # -- checkout attempts and customers
    def settle_attempt(self, attempt: CheckoutAttempt | None, status: str) -> bool:
        """created → finalized or failed, once; returns whether this call settled it."""
        if attempt is None or attempt.status != "created":
            return False
        self.tx.save_attempt(dataclasses.replace(attempt, status=status, updated_at=self.now))
        self.settled = True
        return True

    def link_customer(self, subject: str, customer: str | None) -> None:
        """Remember a customer Stripe created for the subject (e.g. a session created without
        one), so that later events naming only the customer still match."""
        if customer is None:
            return
        if self.tx.get_customer(subject) is None and self.tx.get_customer_by_stripe_id(
                customer) is None:
            self.tx.insert_customer(CustomerLink(self.mode, subject, customer, self.now))
            self.settled = True

    # -- watermarks, each kind through its own accessor
    def order_of(self, key: keys.OrderKey) -> Order | None:
        mark = self.tx.get_watermark(key.key)
        return None if mark is None else (mark.event_created, mark.event_id)

    def advance(self, key: keys.OrderKey, order: Order) -> None:
        current = self.order_of(key)
        if current is None or order > current:
            self.tx.save_watermark(Watermark(self.mode, key.key, order[0], order[1]))

    def linked(self, key: keys.LinkKey) -> str | None:
        mark = self.tx.get_watermark(key.key)
        return None if mark is None else mark.event_id

    def link(self, key: keys.LinkKey, stripe_id: str) -> None:
        self.tx.save_watermark(Watermark(self.mode, key.key, self.ev.created, stripe_id))

    def past_due_since(self, key: keys.PastDueKey) -> int | None:
        mark = self.tx.get_watermark(key.key)
        return None if mark is None else mark.event_created

    def remember_past_due(self, key: keys.PastDueKey, since: int) -> None:
        self.tx.save_watermark(Watermark(self.mode, key.key, since, self.ev.id))

    def grace_of(self, key: keys.GraceKey) -> tuple[int, str] | None:
        """(start, the past-due key it is about) of the grace kept aside."""
        mark = self.tx.get_watermark(key.key)
        return None if mark is None else (mark.event_created, mark.event_id)

    def keep_grace(self, key: keys.GraceKey, start: int, about: keys.PastDueKey) -> None:
        self.tx.save_watermark(Watermark(self.mode, key.key, start, about.key))

    def lock(self, stripe_id: str) -> None:
        """Serialise on ``stripe_id``: an upsert of its lock row holds the row lock until the
        transaction ends, so a concurrent transaction taking the same lock waits for this
        one to commit — also when neither has a row to lock yet, the case ``SELECT … FOR
        UPDATE`` cannot cover. Locks are taken in one order (invoice, payment intent,
        entitlement), so two events never wait on each other."""
        self.tx.save_watermark(Watermark(self.mode, keys.lock(stripe_id).key, self.ev.created,
                                         self.ev.id))
