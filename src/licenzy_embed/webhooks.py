"""Stripe webhooks: verified with the SDK, applied exactly once, in any order.

**Verification.** The signature is checked by ``stripe.WebhookSignature.verify_header`` with the
configured tolerance, against each configured secret in turn (rotation). Only then is the body
parsed; a body that is not a Stripe event is ``InvalidPayload``, an event of the other mode is
``ModeMismatch``. All three answer 400 and record nothing.

**Exactly once.** The event id is inserted (unique per mode) as the *first* write of the store
transaction that applies the event, so a second copy — also one arriving at the same moment in
another process, whose insert blocks on the unique index until the first commits — raises
``DuplicateKey`` and is answered ``duplicate`` without touching anything. Any other failure
rolls the whole transaction back, event id included, so Stripe's retry runs it again (the
dj-stripe #832 lesson). Two *different* events creating the same entitlement at the same moment
collide on its primary key (derived from the Stripe object), and the loser is simply re-run;
an existing entitlement is row-locked before anything else about it is read or written, so
events on one purchase serialise. Events that meet on something with no row to lock yet — a
refund and the checkout creating its purchase, an invoice and its ``invoice_payment.paid`` —
first upsert a lock row (``<invoice>#lock``, then ``<payment intent>#lock``, then the
entitlement: always in that order), so at READ COMMITTED one of them waits and then sees what
the other committed.

**Any order.** Stripe does not keep order and retries for days, so an effect never depends on
arrival order. Each entitlement's state is split into parts, each decided by one rule that gives
the same answer whatever the order:

* *status* (Stripe's own status for a subscription; pending/active/failed for a one-off
  purchase): the newest event that claims a status wins, ordered by ``(created, event id)``
  through a per-entitlement high-water mark; an older claim arriving later is recorded and
  changes nothing. ``canceled`` and ``incomplete_expired`` are final, as in Stripe. In a tie on
  ``created`` an ``incomplete`` claim loses (Stripe sends ``subscription.created: incomplete``
  and ``updated: active`` in the same second). A subscription-mode checkout session claims no
  place in that order: it sets ``active`` (``trialing`` when no payment was required) only
  while no subscription or invoice event has claimed a status.
* *grace* of a past-due subscription runs from when it went past due: the earliest ``created``
  of the events claiming ``past_due`` for that billing period, remembered per period (also
  from claims too old to set the status), so it is the same in any order (and it is
  remembered, so a refund or dispute hiding it for a while gives it back).
* *billing period*: units are granted only when an invoice for a *later* period than the one
  last granted is paid (``period_key``; a new subscription starts with none), so once per
  period whatever the order or count of copies; the period is read from the invoice's
  non-proration lines only (a proration for a mid-period change is not a new period).
  ``expires_at`` is the latest known period end.
* *refunds and disputes* are facts about one payment intent, ordered by their own time and
  remembered even before the purchase they belong to has arrived; an entitlement's
  refund/dispute state is recomputed from the facts of its current payment each time either
  side changes. A full refund is final; a dispute's closing decides it. A subscription's
  current payment is the one of its newest paid invoice, so paying the next period ends the
  effect of a refunded or disputed earlier one; current API versions name that payment only in
  ``invoice_payment.paid``, linked through the remembered ``<invoice>#subscription`` by
  whichever of it and the invoice event arrives second. While it lasts, the subscription reads
  ``past_due`` without grace and Stripe's own status is kept in ``prior_status``.

The high-water marks, facts and remembered grace starts are rows of the store's watermark
table, keyed ``<stripe id>#<part>``.

An event that is older than the state it would change, or that names a subject or price this
app does not know, is still recorded (outcome ``processed``, with a ``note``) so it is never
re-applied; the unknown ones are logged as warnings. Event types this library does not use are
recorded and answered ``ignored`` — never a 4xx, because Stripe disables endpoints that keep
failing.

**Payload shapes.** Both current API versions (period on ``items.data[].current_period_*``,
an invoice's subscription under ``parent.subscription_details``, line prices under
``pricing.price_details``) and older ones (``current_period_*`` on the subscription,
``invoice.subscription``, ``invoice.payment_intent``, ``plan`` beside ``price``) are read, and
``invoice.payments`` when an invoice was expanded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import stripe

from . import validation
from .catalog import Product
from .entitlement import (
    DISPUTED,
    FAILED,
    PAST_DUE,
    PENDING,
    PURCHASE_ACTIVE,
    REFUNDED,
    REVOKED,
    Entitlement,
    EntitlementRecord,
    derive_access,
)
from .errors import (
    InvalidPayload,
    InvalidRequest,
    InvalidSignature,
    LicenzyError,
    ModeMismatch,
)
from .events import ChangeEvent
from .ledger import LedgerEntry
from .records import CheckoutAttempt, CustomerLink, ProcessedEvent, Watermark
from .stores.base import DuplicateKey, StoreTransaction

if TYPE_CHECKING:
    from .licenzy import Licenzy

logger = logging.getLogger("licenzy_embed")

CHECKOUT_EVENTS = frozenset({
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
})
SUBSCRIPTION_EVENTS = frozenset({
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
})
INVOICE_PAID_EVENTS = frozenset({"invoice.paid", "invoice.payment_succeeded"})
# Current API versions name an invoice's payment intent only here (``invoice.payments`` is
# included in invoice events only when expanded).
INVOICE_PAYMENT_EVENT = "invoice_payment.paid"
REFUND_EVENTS = frozenset({"charge.refunded", "refund.created", "refund.updated"})
DISPUTE_EVENTS = frozenset({"charge.dispute.created", "charge.dispute.closed"})
HANDLED_EVENTS = (CHECKOUT_EVENTS | SUBSCRIPTION_EVENTS | INVOICE_PAID_EVENTS | REFUND_EVENTS
                  | DISPUTE_EVENTS | {"invoice.payment_failed", INVOICE_PAYMENT_EVENT})

FINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})
INCOMPLETE = "incomplete"
# Facts about one payment intent, each remembered as a watermark "<pi>#<fact>".
_FACTS = ("refunded", "dispute_open", "dispute_won", "dispute_lost")
_DISPUTE_WON = frozenset({"won", "warning_closed", "prevented"})
_RACE_RETRIES = 5
_MAX_ID = 255
_MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z

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

    @property
    def order(self) -> Order:
        return (self.created, self.id)

    @property
    def at(self) -> datetime:
        return _time(self.created)

    @property
    def object_id(self) -> str | None:
        value = self.obj.get("id")
        return value if isinstance(value, str) else None


class _AlreadyProcessed(Exception):
    """Raised inside the transaction so that it rolls back and the delivery reads
    ``duplicate``."""


class WebhookProcessor:
    """``Licenzy.handle_webhook``: verify, parse, check the mode, apply in one transaction."""

    def __init__(self, licenzy: Licenzy) -> None:
        self.lz = licenzy

    def handle(self, payload: bytes, signature_header: str) -> WebhookResult:
        text = _payload_text(payload)
        self._verify(text, signature_header)
        event = parse_event(text)
        if event.livemode != (self.lz.mode == "live"):
            raise ModeMismatch(
                f"a {'live' if event.livemode else 'test'}-mode event reached a "
                f"{self.lz.mode}-mode Licenzy; nothing was recorded"
            )
        for attempt in range(_RACE_RETRIES):
            try:
                return self.lz._run(lambda tx: _Application(self.lz, tx, event).run())
            except _AlreadyProcessed:
                return WebhookResult(event.id, event.type, "duplicate",
                                     "this event was already processed")
            except DuplicateKey:
                # Another event created the same entitlement or customer link first; re-run
                # against what it committed.
                if attempt == _RACE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _verify(self, text: str, header: Any) -> None:
        if isinstance(header, (bytes, bytearray)):  # some servers hand headers over as bytes
            header = bytes(header).decode("latin-1")
        if not isinstance(header, str) or not header.strip():
            raise InvalidSignature("the Stripe-Signature header is missing")
        secrets = self.lz._webhook_secrets
        if not secrets:
            raise InvalidSignature("no stripe_webhook_secret is configured, so no event can be "
                                   "trusted")
        failures: list[str] = []
        for secret in secrets:
            try:
                stripe.WebhookSignature.verify_header(text, header, secret,
                                                      self.lz.webhook_tolerance)
                return
            except stripe.SignatureVerificationError as exc:
                failures.append(str(exc.user_message or exc))
        # A stale but genuine signature says so, whichever secret was tried first.
        stale = [f for f in failures if "tolerance" in f]
        raise InvalidSignature(f"Stripe signature check failed: {(stale or failures)[0]}")


def _payload_text(payload: Any) -> str:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPayload("the webhook body is not UTF-8 text") from None
    if isinstance(payload, str):
        return payload
    raise InvalidPayload("the webhook body must be the raw request bytes")


def parse_event(text: str) -> StripeEvent:
    """Check that a verified body is a Stripe event and keep what processing reads."""
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidPayload("the webhook body is not JSON") from None
    if not isinstance(data, dict) or data.get("object") != "event":
        raise InvalidPayload("the webhook body is not a Stripe event")
    event_id, event_type = data.get("id"), data.get("type")
    created, livemode = data.get("created"), data.get("livemode")
    inner = data.get("data")
    obj = inner.get("object") if isinstance(inner, dict) else None
    if not (isinstance(event_id, str) and 0 < len(event_id) <= _MAX_ID):
        raise InvalidPayload("the event has no valid id")
    if not (isinstance(event_type, str) and 0 < len(event_type) <= _MAX_ID):
        raise InvalidPayload("the event has no valid type")
    created = _int(created)
    if created is None:
        raise InvalidPayload("the event has no valid created timestamp")
    if not isinstance(livemode, bool):
        raise InvalidPayload("the event does not say whether it is live")
    if not isinstance(obj, dict):
        raise InvalidPayload("the event has no data.object")
    return StripeEvent(event_id, event_type, created, livemode, obj)


def entitlement_id(mode: str, purchase_key: str) -> str:
    """One entitlement per Stripe subscription or payment, with an id derived from it: two
    events racing to create it collide on the primary key instead of making two."""
    return "ent_" + hashlib.sha256(f"{mode}|{purchase_key}".encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------- payload readers
def _time(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    """The items of a Stripe list object (``{"object": "list", "data": [...]}``) or array."""
    if isinstance(value, dict):
        value = value.get("data")
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _ref(value: Any) -> str | None:
    """An id, whether the field holds the id or the expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None


def _int(value: Any) -> int | None:
    """An integer field (amounts, quantities, timestamps), or None when it is missing or could
    not be a date a ``datetime`` holds."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_TIMESTAMP:
        return value
    return None


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("metadata"))


def _price_ids(item: dict[str, Any]) -> list[str]:
    """Price ids named by a subscription item, invoice line or checkout line item: the current
    ``price``/``pricing.price_details.price`` and the legacy ``plan``."""
    found = [
        _ref(item.get("price")),
        _ref(_dict(_dict(item.get("pricing")).get("price_details")).get("price")),
        _ref(item.get("plan")),
    ]
    return [p for p in found if p]


@dataclass(frozen=True)
class _Subscription:
    id: str
    status: str
    customer: str | None
    metadata: dict[str, Any]
    prices: list[str]
    quantity: int
    period_start: int | None
    period_end: int | None


def _read_subscription(obj: dict[str, Any]) -> _Subscription | None:
    sub_id, status = _ref(obj.get("id")), obj.get("status")
    if sub_id is None or not isinstance(status, str):
        return None
    items = _list(obj.get("items"))
    first = items[0] if items else {}
    # Current API versions keep the period on the item; older ones on the subscription.
    start = _int(first.get("current_period_start"))
    end = _int(first.get("current_period_end"))
    if start is None or end is None:
        start, end = _int(obj.get("current_period_start")), _int(obj.get("current_period_end"))
    quantity = _int(first.get("quantity")) or _int(obj.get("quantity")) or 1
    prices = [p for item in items for p in _price_ids(item)]
    prices += _price_ids(obj)  # very old versions: a single plan on the subscription
    return _Subscription(sub_id, status, _ref(obj.get("customer")), _metadata(obj), prices,
                         max(quantity, 1), start, end)


@dataclass(frozen=True)
class _Invoice:
    id: str
    subscription: str | None
    subscription_metadata: dict[str, Any]
    customer: str | None
    prices: list[str]
    period_start: int | None
    period_end: int | None
    payment_intent: str | None
    billing_reason: str | None
    amount_paid: int | None
    created: int | None


def _read_invoice(obj: dict[str, Any]) -> _Invoice | None:
    invoice_id = _ref(obj.get("id"))
    if invoice_id is None:
        return None
    details = _dict(_dict(obj.get("parent")).get("subscription_details"))
    subscription = _ref(details.get("subscription")) or _ref(obj.get("subscription"))
    sub_metadata = _dict(details.get("metadata")) or _dict(
        _dict(obj.get("subscription_details")).get("metadata"))
    lines = _list(obj.get("lines"))
    sub_lines = [line for line in lines if _is_subscription_line(line)]
    subscription = subscription or next(
        (s for s in map(_line_subscription, sub_lines) if s), None)
    # The billing period comes only from a line charging for a period: a proration line (a
    # plan or quantity change mid-period) covers the rest of the current one, and must not
    # look like a new period to grant units for. No such line: no period.
    period_lines = [line for line in sub_lines if not _is_proration(line)]
    period = _dict((period_lines or [{}])[0].get("period"))
    payment_intent = _ref(obj.get("payment_intent"))
    for payment in _list(obj.get("payments")):  # current versions, when the list is included
        payment_intent = payment_intent or _ref(_dict(payment.get("payment")).get(
            "payment_intent"))
    reason = obj.get("billing_reason")
    return _Invoice(
        id=invoice_id,
        subscription=subscription,
        subscription_metadata=sub_metadata,
        customer=_ref(obj.get("customer")),
        prices=[p for line in (sub_lines or lines) for p in _price_ids(line)],
        period_start=_int(period.get("start")),
        period_end=_int(period.get("end")),
        payment_intent=payment_intent,
        billing_reason=reason if isinstance(reason, str) else None,
        amount_paid=_int(obj.get("amount_paid")),
        created=_int(obj.get("created")),
    )


def _is_subscription_line(line: dict[str, Any]) -> bool:
    # current versions: parent.type; older ones: type "subscription"
    return (_dict(line.get("parent")).get("type") == "subscription_item_details"
            or line.get("type") == "subscription")


def _is_proration(line: dict[str, Any]) -> bool:
    # current versions: parent.subscription_item_details.proration; older ones: proration
    details = _dict(_dict(line.get("parent")).get("subscription_item_details"))
    return details.get("proration") is True or line.get("proration") is True


def _line_subscription(line: dict[str, Any]) -> str | None:
    details = _dict(_dict(line.get("parent")).get("subscription_item_details"))
    return _ref(details.get("subscription")) or _ref(line.get("subscription"))


def _payment_intent_of(obj: dict[str, Any]) -> str | None:
    """The payment intent a charge, refund or dispute belongs to."""
    return _ref(obj.get("payment_intent")) or _ref(_dict(obj.get("charge")).get(
        "payment_intent"))


# ---------------------------------------------------------------------------- application
@dataclass
class _Target:
    """One entitlement being changed by the current event."""

    record: EntitlementRecord
    is_new: bool
    original: EntitlementRecord  # as read (or as inserted): what the flush compares against
    ledger: list[tuple[str, str, int | None]] = field(default_factory=list)


class _Application:
    """Applies one event inside one store transaction; ``run`` returns the result and the
    change events to dispatch after commit."""

    def __init__(self, licenzy: Licenzy, tx: StoreTransaction, event: StripeEvent) -> None:
        self.lz = licenzy
        self.tx = tx
        self.ev = event
        self.mode = licenzy.mode
        self.now = licenzy.now()
        self.events: list[ChangeEvent] = []
        self.targets: dict[str, _Target] = {}
        self.notes: list[str] = []

    # -- entry
    def run(self) -> tuple[WebhookResult, list[ChangeEvent]]:
        ev = self.ev
        if self.tx.get_processed_event(ev.id) is not None:
            raise _AlreadyProcessed
        handled = ev.type in HANDLED_EVENTS
        try:
            self.tx.insert_processed_event(ProcessedEvent(
                mode=self.mode, event_id=ev.id, event_type=ev.type,
                outcome="processed" if handled else "ignored", object_id=ev.object_id,
                event_created=ev.created, processed_at=self.now,
                subject_ref=_valid_subject(_metadata(ev.obj).get("subject_ref")),
            ))
        except DuplicateKey:
            raise _AlreadyProcessed from None
        if not handled:
            return WebhookResult(ev.id, ev.type, "ignored",
                                 "licenzy-embed does not use this event type"), []
        self._dispatch()
        self._flush()
        note = "; ".join(dict.fromkeys(self.notes)) or None
        return WebhookResult(ev.id, ev.type, "processed", note), self.events

    def _dispatch(self) -> None:
        kind = self.ev.type
        if kind in CHECKOUT_EVENTS:
            self.checkout()
        elif kind in SUBSCRIPTION_EVENTS:
            self.subscription()
        elif kind in INVOICE_PAID_EVENTS:
            self.invoice(paid=True)
        elif kind == "invoice.payment_failed":
            self.invoice(paid=False)
        elif kind == INVOICE_PAYMENT_EVENT:
            self.invoice_payment()
        elif kind in REFUND_EVENTS:
            self.refund()
        else:
            self.dispute()

    # -- notes and warnings
    def note(self, text: str) -> None:
        self.notes.append(text)

    def unmatched(self, what: str) -> None:
        logger.warning("licenzy-embed: Stripe event %s (%s): %s; recorded without effect",
                       self.ev.id, self.ev.type, what)
        self.note(what)

    # -- resolution
    def subject_from(self, *candidates: Any, customer: str | None = None) -> str | None:
        for candidate in candidates:
            subject = _valid_subject(candidate)
            if subject is not None:
                return subject
        if customer is not None:
            link = self.tx.get_customer_by_stripe_id(customer)
            if link is not None:
                return link.subject_ref
        return None

    def product_from(self, prices: Iterable[str], *codes: Any) -> Product | None:
        for price in prices:
            product = self.lz.catalog.by_price(price)
            if product is not None:
                return product
        for code in codes:
            if isinstance(code, str):
                try:
                    return self.lz.catalog.get(code)
                except LicenzyError:  # an unknown or malformed code names nothing we sell
                    continue
        return None

    # -- entitlements
    def target(self, purchase_key: str,
               create: Callable[[], EntitlementRecord | None]) -> _Target | None:
        """The entitlement of a subscription or payment, locked for the rest of the
        transaction. When it does not exist yet, ``create`` builds it and it is inserted at
        once: events racing to create it collide on its primary key (the losers re-run and
        find it), and everything else they write happens under its lock."""
        ent_id = entitlement_id(self.mode, purchase_key)
        if ent_id in self.targets:
            return self.targets[ent_id]
        record = self.tx.get_entitlement(ent_id)
        if record is not None:
            found = _Target(record, False, record)
        else:
            built = create()
            if built is None:
                return None
            self.tx.insert_entitlement(built)
            found = _Target(built, True, built)
        self.targets[ent_id] = found
        return found

    def new_record(self, purchase_key: str, subject_ref: str, product: Product, *,
                   customer: str | None, subscription: str | None = None,
                   session: str | None = None, payment_intent: str | None = None,
                   quantity: int = 1) -> EntitlementRecord:
        if product.kind == "subscription":
            # No units until a period is paid: the period grant of a paid invoice (the $0
            # trial invoice too) gives them, once per period.
            usage = None if product.units is None else 0
            status, granted = INCOMPLETE, product.units
        elif product.kind == "usage_pack":
            granted = (product.units or 0) * quantity
            status, usage = PENDING, 0
        else:
            status, usage, granted = PENDING, None, None
        return derive_access(EntitlementRecord(
            id=entitlement_id(self.mode, purchase_key), mode=self.mode, subject_ref=subject_ref,
            product_code=product.code, kind=product.kind, status=status, source="stripe",
            created_at=self.now, updated_at=self.now, usage_remaining=usage,
            units_granted=granted, quantity=quantity, stripe_customer_id=customer,
            stripe_subscription_id=subscription, stripe_checkout_session_id=session,
            stripe_payment_intent_id=payment_intent,
        ))

    def change(self, target: _Target, action: str | None, reason: str,
               units_delta: int | None = None, **changes: Any) -> None:
        """Change the entitlement; ``action`` names its ledger entry (None: bookkeeping that
        support has no use for, such as which payment is the current one)."""
        target.record = target.record.evolve(self.now, **changes)
        if action is not None:
            target.ledger.append((action, reason, units_delta))

    def _flush(self) -> None:
        for target in self.targets.values():
            record = target.record
            entries = target.ledger
            if record != target.original:
                self.tx.save_entitlement(record)
            if target.is_new:
                # One entry for the whole creation, with what it ended up as.
                entries = [("granted", f"{self.ev.type}: {record.product_code} recorded, "
                            f"status {record.status}", record.usage_remaining)]
            for action, reason, delta in entries:
                self.tx.add_ledger(LedgerEntry.new(
                    mode=self.mode, subject_ref=record.subject_ref, action=action,
                    source="stripe", reason=reason, at=self.now, entitlement_id=record.id,
                    units_delta=delta, status=record.status, reference=self.ev.id,
                ))
            if not target.is_new and record == target.original:
                continue  # recorded (a partial refund), but nothing changed to announce
            view = Entitlement.at(record, self.now)
            self.events.append(ChangeEvent("entitlement.updated", {
                "entitlement": view.to_dict(), "source": "stripe", "reference": self.ev.id,
            }))

    # -- watermarks
    def watermark(self, key: str) -> Watermark | None:
        return self.tx.get_watermark(key)

    def lock(self, key: str) -> None:
        """Serialise on ``key``: an upsert of the row ``<key>#lock`` holds its row lock until
        the transaction ends, so a concurrent transaction taking the same lock waits for this
        one to commit — also when neither has a row to lock yet, the case ``SELECT … FOR
        UPDATE`` cannot cover. Locks are taken in one order (invoice, payment intent,
        entitlement), so two events never wait on each other."""
        self.tx.save_watermark(Watermark(self.mode, f"{key}#lock", self.ev.created,
                                         self.ev.id))

    def advance(self, key: str, order: Order) -> None:
        current = self.tx.get_watermark(key)
        if current is None or order > (current.event_created, current.event_id):
            self.tx.save_watermark(Watermark(self.mode, key, order[0], order[1]))

    # -- the status part
    def claim_status(self, target: _Target, status: str, *,
                     period: int | None = None) -> bool:
        """Apply a status claimed by the current event if it is the newest claim. A final
        status (canceled, incomplete_expired) applies whenever it arrives and nothing but
        another final status replaces it. Returns whether it applied. ``period``: the start
        of the billing period a ``past_due`` claim is about."""
        record = target.record
        if record.status == REVOKED:
            self.note("the entitlement was revoked by an admin; Stripe changes are not applied")
            return False
        since = None
        if status == PAST_DUE and record.kind == "subscription":
            since = self.past_due_since(target, period)  # also for a claim too old to apply
        key = f"{_purchase_key(record)}#status"
        underlying = _underlying(record)
        newer = _claim_is_newer(self.ev.order, self.watermark(key), status, underlying)
        if underlying in FINAL_STATUSES:
            if status not in FINAL_STATUSES or not newer:
                self.note(f"the subscription already ended ({underlying})")
                return False
        elif not newer and status not in FINAL_STATUSES:
            self.note("an event newer than this one already set the status")
            return False
        self.advance(key, self.ev.order)
        self.set_underlying(target, status, grace_from=since, period=period)
        return True

    def past_due_since(self, target: _Target, period: int | None) -> int:
        """When the subscription went past due for the billing period starting at ``period``:
        the earliest ``created`` of the events saying so, remembered per period (grace runs
        from there, not from the period start: a send_invoice subscription goes past due
        only after its due date, weeks into the period). Every claim counts, also one too
        old to set the status, so the answer is the same whatever order they arrive in; an
        earlier start learned late moves back the grace of the past-due state it belongs
        to."""
        record = target.record
        key = _past_due_key(record, period)
        mark = self.watermark(key)
        if mark is not None and mark.event_created <= self.ev.created:
            return mark.event_created
        since = self.ev.created
        self.tx.save_watermark(Watermark(self.mode, key, since, self.ev.id))
        grace_key = f"{_purchase_key(record)}#grace"
        current = self.watermark(grace_key)
        if current is not None and current.event_id == key and current.event_created > since:
            self.tx.save_watermark(Watermark(self.mode, grace_key, since, key))
            grace = _time(since) + self.lz.past_due_grace
            if record.status == PAST_DUE and record.prior_status is None:
                self.change(target, "updated", f"{self.ev.type}: past due since "
                            f"{_time(since).isoformat()}", grace_until=grace)
        return since

    def set_underlying(self, target: _Target, status: str, *, grace_from: int | None,
                       period: int | None = None) -> None:
        record = target.record
        reason = f"{self.ev.type}: status {status}"
        if record.kind == "subscription":
            grace = None
            if status == PAST_DUE:
                start = grace_from if grace_from is not None else self.ev.created
                grace = _time(start) + self.lz.past_due_grace
                # Kept aside (with the period it is about): a refund or dispute may hide this
                # grace for a while, and must give it back when it ends.
                self.tx.save_watermark(Watermark(self.mode, f"{_purchase_key(record)}#grace",
                                                 start, _past_due_key(record, period)))
            if record.prior_status is not None:  # a refund or dispute keeps it past due
                if record.prior_status != status:
                    self.change(target, "updated", reason, prior_status=status)
            elif (record.status, record.grace_until) != (status, grace):
                self.change(target, "updated", reason, status=status, grace_until=grace)
            return
        if record.prior_status is not None:
            if record.prior_status != status:
                self.change(target, "updated", reason, prior_status=status)
        elif record.status != status:
            self.change(target, "updated", reason, status=status)
        if status == PURCHASE_ACTIVE:
            self.grant_purchase(target, self.ev.at)

    def grant_purchase(self, target: _Target, paid_at: datetime) -> None:
        """A one-off purchase's units and end date, set once, when it is first paid."""
        record = target.record
        if record.period_key is not None:
            return
        product = self.product_from((), record.product_code)
        duration = product.duration if product is not None else None
        expires = paid_at + duration if duration is not None else None
        if record.kind == "usage_pack":
            units = record.units_granted or 0
            if record.status == REFUNDED:
                units = 0  # paid and refunded before we heard of the payment
            self.change(target, "granted", f"{self.ev.type}: {units} units paid for",
                        units_delta=units, usage_remaining=units, period_key="purchase",
                        expires_at=expires)
        else:
            self.change(target, "granted", f"{self.ev.type}: pass paid for",
                        period_key="purchase", expires_at=expires)

    # -- the billing period part (subscriptions)
    def see_period(self, target: _Target, end: int | None) -> None:
        if end is None:
            return
        ends = _time(end)
        record = target.record
        if record.expires_at is None or ends > record.expires_at:
            self.change(target, "updated", f"{self.ev.type}: period ends {ends.isoformat()}",
                        expires_at=ends)

    def grant_period(self, target: _Target, start: int | None) -> None:
        """Reset a metered subscription's units for a newly paid period, once per period."""
        record = target.record
        if start is None:
            return
        if record.period_key is not None and record.period_key.isdigit() and (
            int(record.period_key) >= start
        ):
            return
        if record.units_granted is None:
            self.change(target, "updated", f"{self.ev.type}: period paid", period_key=str(start))
            return
        # Units held by requests still in flight come back to this entitlement when those
        # holds settle; the new period's balance leaves room for them instead of handing them
        # out twice (the entitlement row is locked, so no hold settles meanwhile).
        held = sum(units for hold in self.tx.open_holds(record.subject_ref)
                   for entitlement_id, units in hold.allocations if entitlement_id == record.id)
        fresh = max(record.units_granted - held, 0)
        self.change(target, "units_reset",
                    f"{self.ev.type}: {record.units_granted} units for the paid period"
                    + (f", {held} of them held by requests in flight" if held else ""),
                    units_delta=fresh - (record.usage_remaining or 0), usage_remaining=fresh,
                    period_key=str(start))

    # -- the refund and dispute part
    def facts(self, payment_intent: str) -> list[tuple[Order, str]]:
        found = []
        for fact in _FACTS:
            mark = self.watermark(f"{payment_intent}#{fact}")
            if mark is not None:
                found.append(((mark.event_created, mark.event_id), fact))
        return sorted(found)

    def apply_payment_facts(self, target: _Target) -> None:
        """Recompute the refund/dispute state from the facts of the entitlement's current
        payment, in their own order: the same answer whatever order the facts and the
        payment arrived in."""
        record = target.record
        if record.status == REVOKED:
            return
        pi = record.stripe_payment_intent_id
        state: str | None = None
        since: int | None = None  # when the current refund/dispute state began
        refunded_at: int | None = None
        for (created, _), fact in self.facts(pi) if pi else []:
            if state == REFUNDED:
                break  # a refunded payment stays refunded
            if fact == "refunded":
                state, refunded_at = REFUNDED, created
            elif fact in ("dispute_open", "dispute_lost"):
                state = DISPUTED
            else:
                state = None
            since = None if state is None else (created if since is None else since)
        self.set_overlay(target, state, since, refunded_at)

    def underlying_grace(self, record: EntitlementRecord) -> datetime | None:
        """The grace a past-due subscription had before a refund or dispute hid it (none
        known: none given, failing closed)."""
        started = self.watermark(f"{_purchase_key(record)}#grace")
        if started is None:
            return record.grace_until
        return _time(started.event_created) + self.lz.past_due_grace

    def set_overlay(self, target: _Target, state: str | None, since: int | None,
                    refunded_at: int | None) -> None:
        record = target.record
        on = record.prior_status is not None
        underlying = _underlying(record)
        reason = f"{self.ev.type}: payment {state or 'in good standing'}"
        action = "refunded" if state == REFUNDED else "disputed"
        if state is None or since is None:
            if on:
                grace = self.underlying_grace(record) if underlying == PAST_DUE else None
                self.change(target, "dispute_closed", reason, status=underlying,
                            prior_status=None, grace_until=grace)
            return
        if record.kind == "subscription":
            # No grace: access ends when the money went back (or now, should Stripe's clock
            # run ahead of ours).
            grace = min(_time(since), self.now)
            if not on or (record.status, record.grace_until) != (PAST_DUE, grace):
                self.change(target, action, reason, status=PAST_DUE, grace_until=grace,
                            prior_status=underlying)
            return
        if record.status != state:
            self.change(target, action, reason, status=state, prior_status=underlying)
        if state == REFUNDED and refunded_at is not None:
            record = target.record
            ended = _time(refunded_at)
            if record.kind == "usage_pack" and record.usage_remaining:
                self.change(target, "refunded", f"{self.ev.type}: refunded units removed",
                            units_delta=-record.usage_remaining, usage_remaining=0)
            elif record.kind == "time_pass" and (record.expires_at is None
                                                 or record.expires_at > ended):
                self.change(target, "refunded", f"{self.ev.type}: pass ended by refund",
                            expires_at=ended)

    # ------------------------------------------------------------------ handlers
    def checkout(self) -> None:
        session = self.ev.obj
        session_id = _ref(session.get("id"))
        if session_id is None:
            self.unmatched("the checkout session has no id")
            return
        attempt = self.tx.get_attempt_by_session(session_id)
        kind = self.ev.type
        if kind == "checkout.session.expired":
            self.settle_attempt(attempt, "failed")
            if attempt is None:
                self.note("no checkout attempt of this app has this session")
            return
        paid = session.get("payment_status") in ("paid", "no_payment_required")
        mode = session.get("mode")
        if kind == "checkout.session.async_payment_succeeded":
            claim_sub, claim_one, finalized = "active", PURCHASE_ACTIVE, True
        elif kind == "checkout.session.async_payment_failed":
            claim_sub, claim_one, finalized = INCOMPLETE, FAILED, False
        else:
            claim_sub = ("trialing" if session.get("payment_status") == "no_payment_required"
                         else "active" if paid else INCOMPLETE)
            claim_one = PURCHASE_ACTIVE if paid else PENDING
            finalized = paid
        metadata = _metadata(session)
        customer = _ref(session.get("customer"))
        subject = self.subject_from(
            attempt.subject_ref if attempt else None, metadata.get("subject_ref"),
            session.get("client_reference_id"), customer=customer)
        line_prices = [p for item in _list(session.get("line_items")) for p in _price_ids(item)]
        product = self.product_from(line_prices, attempt.product_code if attempt else None,
                                    metadata.get("product_code"))
        if kind == "checkout.session.async_payment_failed":
            self.settle_attempt(attempt, "failed")
        if subject is None or product is None:
            self.unmatched("no subject matched the checkout session" if subject is None
                           else "no catalog product matched the checkout session")
            return
        subscription = _ref(session.get("subscription"))
        payment_intent = _ref(session.get("payment_intent"))
        if (mode == "subscription") != (product.kind == "subscription") or (
            mode == "subscription" and subscription is None
        ):
            self.unmatched(f"a {mode}-mode session cannot buy {product.code} "
                           f"({product.kind})")
            return
        self.link_customer(subject, customer)
        quantity = _quantity(session, product)
        if not subscription and payment_intent:
            self.lock(payment_intent)  # before the purchase: its refunds serialise on it too
        key = subscription if subscription else (payment_intent or session_id)
        target = self.target(key, lambda: self.new_record(
            key, subject, product, customer=customer, subscription=subscription,
            session=session_id, payment_intent=None if subscription else payment_intent,
            quantity=quantity))
        assert target is not None
        if target.record.stripe_checkout_session_id is None:
            self.change(target, None, "checkout session",
                        stripe_checkout_session_id=session_id)
        if subscription:
            self.provisional_status(target, claim_sub)
        else:
            self.claim_status(target, claim_one)
            self.apply_payment_facts(target)
        # Announced once per purchase: when its attempt turns finalized (or, for a session
        # created outside this app, with the one event that says it was paid).
        if finalized and (self.settle_attempt(attempt, "finalized") or attempt is None):
            view = Entitlement.at(target.record, self.now)
            self.events.append(ChangeEvent("purchase.finalized", {
                "attempt_id": attempt.id if attempt else None,
                "session_id": session_id, "subject_ref": subject,
                "product_code": product.code, "entitlement": view.to_dict(),
            }))

    def provisional_status(self, target: _Target, status: str) -> None:
        """A subscription's status as a checkout session tells it: only until a subscription
        or invoice event has claimed one, and without taking part in their ordering — the
        session does not know about a trial (or anything after it), so a newer session event
        must not override what an older subscription event said."""
        record = target.record
        if record.status == REVOKED or self.watermark(
                f"{_purchase_key(record)}#status") is not None:
            return
        self.set_underlying(target, status, grace_from=None)

    def settle_attempt(self, attempt: CheckoutAttempt | None, status: str) -> bool:
        """created → finalized or failed, once; returns whether this call settled it."""
        if attempt is None or attempt.status != "created":
            return False
        self.tx.save_attempt(dataclasses.replace(attempt, status=status, updated_at=self.now))
        return True

    def link_customer(self, subject: str, customer: str | None) -> None:
        """Remember a customer Stripe created for the subject (e.g. a session created without
        one), so that later events naming only the customer still match."""
        if customer is None:
            return
        if self.tx.get_customer(subject) is None and self.tx.get_customer_by_stripe_id(
                customer) is None:
            self.tx.insert_customer(CustomerLink(self.mode, subject, customer, self.now))

    def subscription(self) -> None:
        sub = _read_subscription(self.ev.obj)
        if sub is None:
            self.unmatched("the subscription has no id or status")
            return
        status = "canceled" if self.ev.type == "customer.subscription.deleted" else sub.status
        product = self.product_from(sub.prices, sub.metadata.get("product_code"))
        target = self.subscription_target(sub.id, sub.customer, sub.metadata, product,
                                          sub.quantity)
        if target is None:
            return
        self.plan(target, product, sub.quantity)
        applied = self.claim_status(target, status, period=sub.period_start)
        self.see_period(target, sub.period_end)
        if applied:
            view = Entitlement.at(target.record, self.now)
            name = ("subscription.deleted" if self.ev.type == "customer.subscription.deleted"
                    else "subscription.updated")
            self.events.append(ChangeEvent(name, {
                "subscription_id": sub.id, "subject_ref": target.record.subject_ref,
                "status": status, "entitlement": view.to_dict(),
            }))

    def subscription_target(self, subscription_id: str, customer: str | None,
                            metadata: dict[str, Any], product: Product | None,
                            quantity: int) -> _Target | None:
        def create() -> EntitlementRecord | None:
            subject = self.subject_from(metadata.get("subject_ref"), customer=customer)
            if subject is None:
                self.unmatched("no subject matched the subscription")
                return None
            if product is None or product.kind != "subscription":
                self.unmatched("no subscription product of the catalog matched its price")
                return None
            return self.new_record(subscription_id, subject, product, customer=customer,
                                   subscription=subscription_id, quantity=quantity)

        return self.target(subscription_id, create)

    def plan(self, target: _Target, product: Product | None, quantity: int) -> None:
        """Follow a plan change (another price of the catalog), newest snapshot wins."""
        record = target.record
        if product is None or product.kind != "subscription" or record.status == REVOKED:
            return
        key = f"{record.stripe_subscription_id}#plan"
        mark = self.watermark(key)
        if mark is not None and self.ev.order <= (mark.event_created, mark.event_id):
            return
        self.advance(key, self.ev.order)
        if (record.product_code, record.quantity) == (product.code, quantity):
            return
        usage = record.usage_remaining
        if product.units is None:
            usage = None
        elif usage is None:
            usage = product.units
        self.change(target, "updated", f"{self.ev.type}: plan {product.code}",
                    product_code=product.code, units_granted=product.units,
                    usage_remaining=usage, quantity=quantity)

    def invoice(self, *, paid: bool) -> None:
        invoice = _read_invoice(self.ev.obj)
        if invoice is None or invoice.subscription is None:
            self.note("not a subscription invoice")
            return
        # Which subscription the invoice belongs to is remembered for its invoice_payment.paid
        # (current API versions name the payment intent only there), under the invoice's lock
        # that event takes too: whichever of the two arrives second links the payment.
        self.lock(invoice.id)
        if self.watermark(f"{invoice.id}#subscription") is None:
            self.tx.save_watermark(Watermark(self.mode, f"{invoice.id}#subscription",
                                             self.ev.created, invoice.subscription))
        payment_intent, payment_order = invoice.payment_intent, self.ev.order
        if payment_intent is None:
            payment_intent, payment_order = self.invoice_payment_of(invoice.id)
        if paid and payment_intent is not None:
            self.lock(payment_intent)
        metadata = invoice.subscription_metadata
        product = self.product_from(invoice.prices, metadata.get("product_code"))
        target = self.subscription_target(invoice.subscription, invoice.customer, metadata,
                                          product, 1)
        if target is None:
            return
        period = invoice.period_start if invoice.period_start is not None else (
            invoice.created)
        if not paid:
            status = INCOMPLETE if invoice.billing_reason == "subscription_create" else PAST_DUE
            self.claim_status(target, status, period=period)
            view = Entitlement.at(target.record, self.now)
            self.events.append(ChangeEvent("invoice.payment_failed", {
                "invoice_id": invoice.id, "subscription_id": invoice.subscription,
                "subject_ref": target.record.subject_ref, "entitlement": view.to_dict(),
            }))
            return
        trial_start = invoice.amount_paid == 0 and invoice.billing_reason == "subscription_create"
        if not trial_start:
            self.claim_status(target, "active")
        self.see_period(target, invoice.period_end)
        self.grant_period(target, invoice.period_start)
        if payment_intent is not None:
            self.current_payment(target, payment_intent, payment_order)
        elif not invoice.amount_paid:
            self.current_payment(target, None, self.ev.order)  # nothing was paid, no refund
        # else: its invoice_payment.paid names the payment and links it
        first_copy = self.watermark(f"{invoice.id}#paid") is None
        self.advance(f"{invoice.id}#paid", self.ev.order)
        if first_copy:  # invoice.paid and invoice.payment_succeeded describe one payment
            view = Entitlement.at(target.record, self.now)
            self.events.append(ChangeEvent("invoice.payment_succeeded", {
                "invoice_id": invoice.id, "subscription_id": invoice.subscription,
                "subject_ref": target.record.subject_ref, "entitlement": view.to_dict(),
            }))

    def invoice_payment_of(self, invoice_id: str) -> tuple[str | None, Order]:
        """The payment intent an invoice_payment.paid named for the invoice, and that event's
        order (None when it has not arrived)."""
        mark = self.watermark(f"{invoice_id}#payment")
        named = self.watermark(f"{invoice_id}#payment_intent")
        if mark is None or named is None:
            return None, self.ev.order
        return named.event_id, (mark.event_created, mark.event_id)

    def invoice_payment(self) -> None:
        """``invoice_payment.paid``: the payment intent that paid an invoice. Linked to the
        invoice's subscription as its current payment (ordered by this event), here when the
        invoice event came first, else by the invoice event."""
        obj = self.ev.obj
        invoice_id = _ref(obj.get("invoice"))
        payment_intent = _ref(_dict(obj.get("payment")).get("payment_intent"))
        if invoice_id is None or payment_intent is None:
            self.note("not an invoice paid by a payment intent")
            return
        self.lock(invoice_id)
        self.lock(payment_intent)
        mark = self.watermark(f"{invoice_id}#payment")
        if mark is None or self.ev.order > (mark.event_created, mark.event_id):
            self.advance(f"{invoice_id}#payment", self.ev.order)
            self.tx.save_watermark(Watermark(self.mode, f"{invoice_id}#payment_intent",
                                             self.ev.created, payment_intent))
        payment_intent, order = self.invoice_payment_of(invoice_id)
        subscription = self.watermark(f"{invoice_id}#subscription")
        target = None if subscription is None else self.target(subscription.event_id,
                                                                lambda: None)
        if target is None or payment_intent is None:
            self.note("no subscription of this app is known for the invoice yet; the payment "
                      "is linked when its invoice event arrives")
            return
        self.current_payment(target, payment_intent, order)

    def current_payment(self, target: _Target, payment_intent: str | None,
                        order: Order) -> None:
        """The newest paid invoice's payment is the one refunds and disputes are judged on
        (ordered by the event that named the payment)."""
        key = f"{target.record.stripe_subscription_id}#payment"
        mark = self.watermark(key)
        if mark is not None and order <= (mark.event_created, mark.event_id):
            return
        self.advance(key, order)
        if target.record.stripe_payment_intent_id != payment_intent:
            self.change(target, None, "current payment",
                        stripe_payment_intent_id=payment_intent)
        self.apply_payment_facts(target)

    def refund(self) -> None:
        obj = self.ev.obj
        if self.ev.type == "charge.refunded":
            amount, refunded = _int(obj.get("amount")), _int(obj.get("amount_refunded"))
            full = obj.get("refunded") is True or (
                amount is not None and refunded is not None and refunded >= amount > 0)
        else:
            charge = _dict(obj.get("charge"))  # only when the charge was expanded
            amount = _int(charge.get("amount"))
            full = obj.get("status") in ("succeeded", "pending") and (
                charge.get("refunded") is True
                or (amount is not None and (_int(obj.get("amount")) or 0) >= amount > 0))
        if full:
            self.payment_fact("refunded")
            return
        status = obj.get("status")
        if self.ev.type != "charge.refunded" and status in ("failed", "canceled"):
            self.note(f"a {status} refund changes nothing")
            return
        pi = _payment_intent_of(obj)
        target = self.payment_target(pi) if pi else None
        self.note("a partial refund (or one whose size the event does not show) changes "
                  "nothing; charge.refunded tells a full one")
        if target is not None:
            target.ledger.append(("refund_recorded", f"{self.ev.type}: refund recorded, "
                                  "entitlement unchanged", None))

    def dispute(self) -> None:
        """A dispute's opening and closing are facts ordered by their own time, so a late
        copy of the opening cannot undo the closing."""
        obj = self.ev.obj
        if self.ev.type == "charge.dispute.created":
            fact = "dispute_open"
        else:
            fact = "dispute_won" if obj.get("status") in _DISPUTE_WON else "dispute_lost"
        self.payment_fact(fact)

    def payment_fact(self, fact: str) -> None:
        pi = _payment_intent_of(self.ev.obj)
        if pi is None:
            self.unmatched("the payment has no payment intent to match")
            return
        # The payment intent's lock first: a purchase being created for it right now (its
        # checkout, or the invoice payment linking it to a subscription) takes it too, so one
        # of the two always sees what the other wrote.
        self.lock(pi)
        target = self.payment_target(pi)
        self.advance(f"{pi}#{fact}", self.ev.order)
        if target is None:
            self.note(f"no entitlement is paid by {pi} yet; the {fact.replace('_', ' ')} "
                      "applies when its purchase arrives")
            return
        self.apply_payment_facts(target)

    def payment_target(self, payment_intent: str) -> _Target | None:
        target = self.target(payment_intent, lambda: None)
        if target is not None:
            return target
        found = self.tx.find_entitlements(stripe_payment_intent_id=payment_intent)
        if not found:
            return None
        record = found[0]
        return self.targets.setdefault(record.id, _Target(record, False, record))


def _purchase_key(record: EntitlementRecord) -> str:
    return (record.stripe_subscription_id or record.stripe_payment_intent_id
            or record.stripe_checkout_session_id or record.id)


def _underlying(record: EntitlementRecord) -> str:
    """Stripe's status, under any refund or dispute that overrides it."""
    return record.prior_status if record.prior_status is not None else record.status


def _past_due_key(record: EntitlementRecord, period: int | None) -> str:
    return f"{_purchase_key(record)}#past_due@{'?' if period is None else period}"


def _claim_is_newer(order: Order, mark: Watermark | None, status: str, current: str) -> bool:
    if mark is None:
        return True
    if order[0] == mark.event_created:
        if status == INCOMPLETE and current != INCOMPLETE:
            return False
        if status != INCOMPLETE and current == INCOMPLETE:
            return True
    return order > (mark.event_created, mark.event_id)


def _valid_subject(value: Any) -> str | None:
    try:
        return validation.subject_ref(value)
    except InvalidRequest:
        return None


def _quantity(session: dict[str, Any], product: Product) -> int:
    """How many of the product were bought: from the line items when the payload carries them
    (expanded), else 1 — sessions created by this library always sell one."""
    for item in _list(session.get("line_items")):
        if product.price in _price_ids(item):
            quantity = _int(item.get("quantity"))
            if quantity is not None and 0 < quantity <= 10**6:
                return quantity
    return 1


__all__ = [
    "HANDLED_EVENTS",
    "StripeEvent",
    "WebhookProcessor",
    "WebhookResult",
    "entitlement_id",
    "parse_event",
]

