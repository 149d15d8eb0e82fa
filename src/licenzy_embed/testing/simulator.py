"""A Stripe simulator for apps' tests: checkout without a network, and real signed events.

It plays both halves of Stripe. As a *gateway* it answers the customer and Checkout Session
requests ``Licenzy`` makes (with Stripe's idempotency rules, and refusing what Stripe would
refuse: an unknown price, a one-time price in a subscription session). As an *event source* it
completes, renews, fails, cancels, refunds and disputes those purchases by producing the event
payloads Stripe sends (current API shape: an invoice event names no payment intent, the
``invoice_payment.paid`` that follows it does), signed with the scheme Stripe uses, and delivering
them through ``Licenzy.handle_webhook`` — or through any transport, such as a framework test
client posting to the mounted webhook route. Nothing is short-circuited: every event goes
through signature verification and the real processing.

Two clocks are in play, on purpose. Event ``created`` fields and billing periods follow the
Licenzy clock (a ``FrozenClock`` in tests, so dates are 2026), while signatures carry the real
time, because the SDK checks a signature's age against ``time.time()``.

Delivery can be held, then flushed in another order or with duplicates, to show an app's state
does not depend on Stripe's delivery order.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import stripe

from ..checkout import CheckoutSession
from ..errors import PaymentProviderError
from ..gateway import GatewaySession

if TYPE_CHECKING:
    from ..licenzy import Licenzy

Event = dict[str, Any]
Transport = Callable[[bytes, str], object]

CHECKOUT_BASE = "http://localhost/stripe-simulator/checkout"
DEFAULT_PERIOD = timedelta(days=30)
DEFAULT_AMOUNT = 1000  # cents; the simulator does not know real prices


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``, as Stripe computes it
    (``t=…,v1=HMAC-SHA256("t.payload")``), made by the SDK's own helper. ``timestamp``
    defaults to now, in real time, which is what verification compares against."""
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("payload must be the raw bytes that will be delivered")
    header: str = stripe.WebhookSignature.generate_signature_header(
        bytes(payload).decode("utf-8"), secret, timestamp)
    return header


class DeliveryFailed(AssertionError):
    """A transport answered an event with a non-2xx status (Stripe would retry it)."""

    def __init__(self, event: Event, response: object, status: int) -> None:
        self.event, self.response, self.status = event, response, status
        super().__init__(f"{event['type']} {event['id']} was answered {status}")


@dataclass(frozen=True)
class Delivery:
    event: Event
    payload: bytes
    signature_header: str
    result: object


@dataclass
class _Session:
    id: str
    params: dict[str, Any]
    subject_ref: str | None
    product_code: str
    price: str
    customer: str | None
    url: str
    created: int
    status: str = "open"  # open | complete | expired
    payment_status: str = "unpaid"
    subscription: str | None = None
    payment_intent: str | None = None
    invoice: str | None = None


@dataclass
class _Payment:
    payment_intent: str
    charge: str
    amount: int
    customer: str | None
    subject_ref: str | None
    product_code: str
    metadata: dict[str, str]
    created: int
    sequence: int  # several payments can share one second of a frozen clock
    invoice: str | None = None
    paid: bool = True
    amount_refunded: int = 0
    dispute: str | None = None
    dispute_status: str | None = None
    dispute_created: int | None = None


@dataclass
class _Subscription:
    id: str
    item: str
    subject_ref: str | None
    product_code: str
    price: str
    customer: str
    metadata: dict[str, str]
    created: int
    period_start: int
    period_end: int
    status: str = "active"
    quantity: int = 1
    latest_invoice: str | None = None
    open_invoice: dict[str, Any] | None = None
    ended_at: int | None = None


@dataclass
class _Hold:
    """Returned by ``hold_deliveries``: holding starts at once; leaving the ``with`` block
    stops it (held events stay queued until ``flush``)."""

    simulator: StripeSimulator

    def __enter__(self) -> list[Event]:
        return self.simulator.held

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.simulator.resume_deliveries()


class StripeSimulator:
    """Stripe, in process, for one test-mode ``Licenzy``. See the module docstring."""

    #: Where ``checkout_url``\ s point; :class:`~licenzy_embed.testing.LocalCheckout` sets it
    #: to the page it serves. The default is served by nothing (tests complete sessions in code).
    checkout_base: str = CHECKOUT_BASE
    _state_path: str | None = None

    def __init__(self, licenzy: Licenzy, *, period: timedelta = DEFAULT_PERIOD,
                 secret: str | None = None) -> None:
        if licenzy.mode != "test":
            raise ValueError("the Stripe simulator only runs in test mode, and this Licenzy "
                             "has a live key")
        if secret is None:
            if not licenzy.webhook_secrets:
                raise ValueError("the Stripe simulator signs events with the Licenzy's webhook "
                                 "secret; configure stripe_webhook_secret, or attach it with "
                                 "StripeSimulator.for_licenzy(lz), which supplies one")
            secret = licenzy.webhook_secrets[0]
        self.lz = licenzy
        self.secret = secret
        self.period = period
        self._lock = threading.RLock()
        self._sequence = itertools.count(1)
        self._customers: dict[str, dict[str, Any]] = {}
        self._idempotent: dict[tuple[str, str], tuple[str, object]] = {}
        self._sessions: dict[str, _Session] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._payments: dict[str, _Payment] = {}
        self._transport: Transport | None = None
        self._holding = 0
        self.held: list[Event] = []
        self.deliveries: list[Delivery] = []
        self.requests: list[tuple[str, dict[str, Any], str]] = []
        # Every event made, as Stripe's Events API keeps them (``list_events``).
        self.events_made: list[Event] = []

    @classmethod
    def for_licenzy(cls, licenzy: Licenzy) -> StripeSimulator:
        """The simulator ``licenzy`` uses as its gateway, attached when it has none (a
        test-mode key's real gateway is replaced, so checkout never leaves the process).

        A key-less ``Licenzy`` built without ``stripe_webhook_secret`` takes a random secret
        from the simulator as it attaches, so its events are signed and verified for real;
        one configured is what the simulator signs with."""
        if licenzy.mode != "test":
            raise ValueError("the Stripe simulator only runs in test mode, and this Licenzy "
                             "has a live key")
        try:
            current: object = licenzy.gateway
        except PaymentProviderError:  # key-less, nothing attached yet
            current = None
        if isinstance(current, StripeSimulator):
            return current
        if licenzy.webhook_secrets:
            simulator = cls(licenzy)
            licenzy.use_gateway(simulator)
        else:
            simulator = cls(licenzy, secret="whsec_simulator_" + secrets.token_hex(16))
            licenzy.use_gateway(simulator, webhook_secret=simulator.secret)
        return simulator

    # ------------------------------------------------------------------ gateway half
    def create_customer(self, params: dict[str, Any], *, idempotency_key: str) -> str:
        with self._lock:
            self.requests.append(("customers.create", params, idempotency_key))
            replay = self._replay("customers", idempotency_key, params)
            if replay is not None:
                return str(replay)
            customer_id = self._id("cus")
            self._customers[customer_id] = {
                "id": customer_id, "object": "customer", "livemode": False,
                "created": self._now(), "metadata": dict(params.get("metadata") or {}),
            }
            self._remember("customers", idempotency_key, params, customer_id)
            self._autosave()
            return customer_id

    def create_checkout_session(self, params: dict[str, Any], *,
                                idempotency_key: str) -> GatewaySession:
        with self._lock:
            self.requests.append(("checkout.sessions.create", params, idempotency_key))
            replay = self._replay("sessions", idempotency_key, params)
            if isinstance(replay, _Session):
                return GatewaySession(replay.id, replay.url)
            mode = params.get("mode")
            items = params.get("line_items") or []
            if mode not in ("payment", "subscription") or len(items) != 1:
                raise PaymentProviderError("the simulator supports one line item in payment "
                                           "or subscription mode")
            price = items[0].get("price")
            product = self.lz.catalog.by_price(price) if isinstance(price, str) else None
            if product is None:
                raise PaymentProviderError(f"No such price: '{price}'")
            if (product.kind == "subscription") != (mode == "subscription"):
                raise PaymentProviderError(
                    f"price {price} cannot be sold in {mode} mode (recurring prices need "
                    "subscription mode, one-time prices payment mode)")
            customer = params.get("customer")
            if customer is not None and customer not in self._customers:
                if not str(customer).startswith("cus_sim"):
                    raise PaymentProviderError(f"No such customer: '{customer}'")
                # A customer an earlier simulator made: the store (a SQLite file) outlives this
                # in-memory simulator when a key-less app restarts or runs several processes.
                self._customers[customer] = {
                    "id": customer, "object": "customer", "livemode": False,
                    "created": self._now(), "metadata": {},
                }
            metadata = dict(params.get("metadata") or {})
            session_id = self._id("cs_test")
            session = _Session(
                id=session_id, params=params,
                subject_ref=metadata.get("subject_ref") or params.get("client_reference_id"),
                product_code=product.code, price=product.price, customer=customer,
                url=f"{self.checkout_base}/{session_id}", created=self._now(),
            )
            self._sessions[session_id] = session
            self._remember("sessions", idempotency_key, params, session)
            self._autosave()
            return GatewaySession(session.id, session.url)

    def _replay(self, kind: str, key: str, params: dict[str, Any]) -> object | None:
        """Stripe's idempotency: the same key and parameters replay the first answer; the
        same key with other parameters is an error."""
        seen = self._idempotent.get((kind, key))
        if seen is None:
            return None
        fingerprint, answer = seen
        if fingerprint != _fingerprint(params):
            raise PaymentProviderError("Keys for idempotent requests can only be used with the "
                                       "same parameters they were first used with.")
        return answer

    def _remember(self, kind: str, key: str, params: dict[str, Any], answer: object) -> None:
        self._idempotent[(kind, key)] = (_fingerprint(params), answer)

    # ------------------------------------------------------------------ delivery
    def deliver_with(self, transport: Transport | None) -> None:
        """Deliver events through ``transport(payload, signature_header)`` — e.g. a function
        posting to an app's webhook route with its test client. ``None`` restores the default,
        ``Licenzy.handle_webhook``. A response object with a ``status_code`` of 300 or more
        raises :class:`DeliveryFailed`."""
        self._transport = transport

    def hold_deliveries(self) -> _Hold:
        """Queue events instead of delivering them, until :meth:`flush`."""
        with self._lock:
            self._holding += 1
        return _Hold(self)

    def resume_deliveries(self) -> None:
        with self._lock:
            self._holding = max(0, self._holding - 1)

    def flush(self, order: str | Sequence[int] = "sent", *, duplicate: bool = False,
              seed: int | None = None) -> list[object]:
        """Deliver the held events: ``order`` is ``"sent"``, ``"reverse"``, ``"shuffle"``, or
        a sequence of indexes into the held list (events left out are dropped, as if Stripe
        lost them); ``duplicate`` delivers each twice (the copies mixed in when shuffling)."""
        with self._lock:
            queue, self.held = self.held, []
        if order == "sent":
            batch = list(queue)
        elif order == "reverse":
            batch = list(reversed(queue))
        elif order == "shuffle":
            batch = list(queue) * (2 if duplicate else 1)
            random.Random(seed).shuffle(batch)
            return [self._deliver_one(event) for event in batch]
        elif isinstance(order, str):
            raise ValueError("order must be 'sent', 'reverse', 'shuffle' or a list of indexes")
        else:
            batch = [queue[i] for i in order]
        if duplicate:
            batch = [event for event in batch for _ in (0, 1)]
        return [self._deliver_one(event) for event in batch]

    def deliver(self, events: Event | Sequence[Event], *, times: int = 1) -> list[object]:
        """Deliver events now (held or not), each ``times`` times in a row."""
        batch = [events] if isinstance(events, dict) else list(events)
        return [self._deliver_one(event) for event in batch for _ in range(times)]

    def signed(self, event: Event, *, secret: str | None = None,
               timestamp: int | None = None) -> tuple[bytes, str]:
        """The body and ``Stripe-Signature`` header Stripe would send for ``event``."""
        payload = json.dumps(event, separators=(",", ":")).encode()
        return payload, sign_payload(payload, secret or self.secret, timestamp)

    def _send(self, events: list[Event]) -> list[Event]:
        self._autosave()  # every lifecycle change ends here, before its events go out
        with self._lock:
            if self._holding:
                self.held.extend(events)
                return events
        for event in events:
            self._deliver_one(event)
        return events

    def _deliver_one(self, event: Event) -> object:
        payload, header = self.signed(event)
        transport = self._transport or self.lz.handle_webhook
        result = transport(payload, header)
        with self._lock:
            self.deliveries.append(Delivery(event, payload, header, result))
        status = getattr(result, "status_code", None)
        if isinstance(status, int) and status >= 300:
            raise DeliveryFailed(event, result, status)
        return result

    # ------------------------------------------------------------------ events
    def event(self, event_type: str, data_object: dict[str, Any], *,
              previous_attributes: dict[str, Any] | None = None,
              created: int | None = None) -> Event:
        """A Stripe event envelope around ``data_object``, created now (Licenzy clock). Ids
        increase within one simulator, so events made in the same second keep their order."""
        data: dict[str, Any] = {"object": data_object}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        with self._lock:
            number = next(self._sequence)
        made: Event = {
            "id": f"evt_sim{number:010d}{secrets.token_hex(5)}",
            "object": "event",
            "api_version": stripe.api_version,
            "created": self._now() if created is None else created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        with self._lock:
            self.events_made.append(made)
        return made

    # ------------------------------------------------------------------ checkout
    def complete_checkout(self, session: CheckoutSession | str, *,
                          async_payment: bool = False) -> list[Event]:
        """The customer pays: ``checkout.session.completed`` (for a subscription also
        ``customer.subscription.created``, ``invoice.paid`` and ``invoice_payment.paid``).
        With ``async_payment`` (a bank debit, payment mode only) the session completes
        unpaid; settle it with :meth:`settle_async_payment`."""
        with self._lock:
            cs = self._session(session)
            if cs.status != "open":
                raise ValueError(f"checkout session {cs.id} is {cs.status}, not open")
            product = self.lz.catalog.get(cs.product_code)
            if async_payment and product.kind == "subscription":
                raise ValueError("the simulator settles asynchronous payments in payment mode "
                                 "only")
            customer = cs.customer or self.create_customer(
                {"metadata": {"subject_ref": cs.subject_ref or ""}},
                idempotency_key=f"sim-{cs.id}")
            cs.customer, cs.status = customer, "complete"
            events: list[Event] = []
            if product.kind == "subscription":
                sub = self._new_subscription(cs, customer)
                invoice, payment = self._invoice(sub, "subscription_create", paid=True)
                cs.subscription, cs.invoice, cs.payment_status = sub.id, invoice["id"], "paid"
                events.append(self.event("checkout.session.completed", self._session_object(cs)))
                events.append(self.event("customer.subscription.created",
                                         self._subscription_object(sub)))
                events.append(self.event("invoice.paid", invoice))
                events.append(self.event("invoice_payment.paid",
                                         self._invoice_payment_object(invoice, payment)))
            else:
                metadata = dict((cs.params.get("payment_intent_data") or {}).get("metadata")
                                or {})
                payment = self._new_payment(cs.subject_ref, cs.product_code, customer, metadata)
                payment.paid = not async_payment
                cs.payment_intent = payment.payment_intent
                cs.payment_status = "unpaid" if async_payment else "paid"
                events.append(self.event("checkout.session.completed", self._session_object(cs)))
        return self._send(events)

    def settle_async_payment(self, session: CheckoutSession | str, *,
                             succeeded: bool = True) -> list[Event]:
        with self._lock:
            cs = self._session(session)
            if cs.status != "complete" or cs.payment_status != "unpaid":
                raise ValueError(f"checkout session {cs.id} has no payment waiting to settle")
            cs.payment_status = "paid" if succeeded else "unpaid"
            if cs.payment_intent is not None:
                self._payments[cs.payment_intent].paid = succeeded
            kind = "succeeded" if succeeded else "failed"
            event = self.event(f"checkout.session.async_payment_{kind}", self._session_object(cs))
        return self._send([event])

    def expire_checkout(self, session: CheckoutSession | str) -> list[Event]:
        with self._lock:
            cs = self._session(session)
            if cs.status != "open":
                raise ValueError(f"checkout session {cs.id} is {cs.status}, not open")
            cs.status = "expired"
            event = self.event("checkout.session.expired", self._session_object(cs))
        return self._send([event])

    # ------------------------------------------------------------------ subscriptions
    def renew(self, subject_ref: str, product_code: str | None = None) -> list[Event]:
        """A new billing period starts now and its invoice is paid."""
        with self._lock:
            sub = self._subscription_of(subject_ref, product_code)
            self._next_period(sub)
            sub.status, sub.open_invoice = "active", None
            invoice, payment = self._invoice(sub, "subscription_cycle", paid=True)
            events = [
                self.event("customer.subscription.updated", self._subscription_object(sub)),
                self.event("invoice.paid", invoice),
                self.event("invoice_payment.paid", self._invoice_payment_object(invoice,
                                                                                payment)),
            ]
        return self._send(events)

    def fail_payment(self, subject_ref: str, product_code: str | None = None) -> list[Event]:
        """The payment for a new billing period starting now fails: the subscription turns
        ``past_due``. When it already is, this is another failed retry of the same invoice."""
        with self._lock:
            sub = self._subscription_of(subject_ref, product_code)
            if sub.open_invoice is None:
                self._next_period(sub)
                invoice, _ = self._invoice(sub, "subscription_cycle", paid=False)
                sub.open_invoice = invoice
            invoice = sub.open_invoice
            invoice["attempt_count"] = int(invoice.get("attempt_count") or 0) + 1
            events = [self.event("invoice.payment_failed", dict(invoice))]
            if sub.status != "past_due":
                previous = {"status": sub.status}
                sub.status = "past_due"
                events.append(self.event("customer.subscription.updated",
                                         self._subscription_object(sub),
                                         previous_attributes=previous))
        return self._send(events)

    def retry_payment(self, subject_ref: str, product_code: str | None = None, *,
                      succeeded: bool = True) -> list[Event]:
        """Stripe retries the unpaid invoice: paid (back to ``active``) or failed again."""
        if not succeeded:
            return self.fail_payment(subject_ref, product_code)
        with self._lock:
            sub = self._subscription_of(subject_ref, product_code)
            if sub.open_invoice is None:
                raise ValueError(f"subscription {sub.id} has no unpaid invoice")
            invoice = self._pay_invoice(sub, sub.open_invoice)
            sub.open_invoice, previous, sub.status = None, {"status": sub.status}, "active"
            payment = self._invoice_payment(invoice["id"])
            events = [
                self.event("invoice.paid", invoice),
                self.event("invoice_payment.paid", self._invoice_payment_object(invoice,
                                                                                payment)),
                self.event("customer.subscription.updated", self._subscription_object(sub),
                           previous_attributes=previous),
            ]
        return self._send(events)

    def change_quantity(self, subject_ref: str, quantity: int,
                        product_code: str | None = None) -> list[Event]:
        """The customer changes the subscription's quantity mid-period: the subscription is
        updated and a proration invoice for the rest of the period is paid at once
        (``customer.subscription.updated``, ``invoice.paid``, ``invoice_payment.paid``)."""
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        with self._lock:
            sub = self._subscription_of(subject_ref, product_code)
            previous, sub.quantity = {"quantity": sub.quantity}, quantity
            invoice, payment = self._invoice(sub, "subscription_update", paid=True,
                                             proration=True)
            events = [
                self.event("customer.subscription.updated", self._subscription_object(sub),
                           previous_attributes=previous),
                self.event("invoice.paid", invoice),
                self.event("invoice_payment.paid", self._invoice_payment_object(invoice,
                                                                                payment)),
            ]
        return self._send(events)

    def cancel(self, subject_ref: str, product_code: str | None = None) -> list[Event]:
        """The subscription is canceled now: ``customer.subscription.deleted``."""
        with self._lock:
            sub = self._subscription_of(subject_ref, product_code)
            sub.status, sub.ended_at = "canceled", self._now()
            event = self.event("customer.subscription.deleted", self._subscription_object(sub))
        return self._send([event])

    def pause(self, subject_ref: str, product_code: str | None = None) -> list[Event]:
        with self._lock:
            sub = self._subscription_of(subject_ref, product_code)
            previous, sub.status = {"status": sub.status}, "paused"
            event = self.event("customer.subscription.paused", self._subscription_object(sub),
                               previous_attributes=previous)
        return self._send([event])

    def resume(self, subject_ref: str, product_code: str | None = None) -> list[Event]:
        with self._lock:
            sub = self._subscription_of(subject_ref, product_code)
            previous, sub.status = {"status": sub.status}, "active"
            event = self.event("customer.subscription.resumed", self._subscription_object(sub),
                               previous_attributes=previous)
        return self._send([event])

    # ------------------------------------------------------------------ refunds and disputes
    def refund(self, subject_ref: str, product_code: str | None = None, *,
               amount: int | None = None) -> list[Event]:
        """Refund the subject's latest payment (of ``product_code``): all of it by default,
        ``amount`` cents for a partial refund. ``refund.created`` and ``charge.refunded``."""
        with self._lock:
            payment = self._payment_of(subject_ref, product_code)
            left = payment.amount - payment.amount_refunded
            amount = left if amount is None else amount
            if not 0 < amount <= left:
                raise ValueError(f"can refund 1 to {left} cents of {payment.charge}")
            payment.amount_refunded += amount
            refund = {
                "id": self._id("re"), "object": "refund", "amount": amount,
                "charge": payment.charge, "payment_intent": payment.payment_intent,
                "currency": "usd", "created": self._now(), "metadata": {},
                "reason": "requested_by_customer", "status": "succeeded",
            }
            events = [
                self.event("refund.created", refund),
                self.event("charge.refunded", self._charge_object(payment)),
            ]
        return self._send(events)

    def dispute(self, subject_ref: str, product_code: str | None = None) -> list[Event]:
        """The customer's bank disputes the latest payment: ``charge.dispute.created``."""
        with self._lock:
            payment = self._payment_of(subject_ref, product_code)
            if payment.dispute is not None:
                raise ValueError(f"{payment.charge} is already disputed")
            payment.dispute, payment.dispute_status = self._id("du"), "needs_response"
            payment.dispute_created = self._now()
            event = self.event("charge.dispute.created", self._dispute_object(payment))
        return self._send([event])

    def close_dispute(self, subject_ref: str, product_code: str | None = None, *,
                      won: bool = True) -> list[Event]:
        with self._lock:
            payment = self._payment_of(subject_ref, product_code, disputed=True)
            payment.dispute_status = "won" if won else "lost"
            event = self.event("charge.dispute.closed", self._dispute_object(payment))
        return self._send([event])

    # ------------------------------------------------------------------ what Stripe keeps
    # The reads of ``licenzy_embed.gateway.StripeHistory``, so that ``lz.reconcile()`` runs
    # against the simulator: events it made (delivered, held or lost alike), and the current
    # state of its subscriptions and payments.
    def list_events(self, *, types: Iterable[str], created_gte: int) -> list[Event]:
        wanted = set(types)
        with self._lock:
            found = [e for e in self.events_made
                     if e["type"] in wanted and e["created"] >= created_gte]
        copies: list[Event] = json.loads(json.dumps(found[::-1]))
        return copies  # newest first, as Stripe lists them; copies, as over the network

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        with self._lock:
            sub = self._subscriptions.get(subscription_id)
            return None if sub is None else self._subscription_object(sub)

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any] | None:
        with self._lock:
            payment = self._payments.get(payment_intent_id)
            if payment is None:
                return None
            return {
                "id": payment.payment_intent, "object": "payment_intent", "livemode": False,
                "amount": payment.amount, "currency": "usd", "customer": payment.customer,
                "metadata": dict(payment.metadata), "created": payment.created,
                "status": "succeeded" if payment.paid else "processing",
                "invoice": payment.invoice, "latest_charge": self._charge_object(payment),
            }

    # ------------------------------------------------------------------ inspection
    def subscription(self, subject_ref: str, product_code: str | None = None) -> dict[str, Any]:
        """The subject's subscription as Stripe would return it."""
        with self._lock:
            return self._subscription_object(self._subscription_of(subject_ref, product_code))

    def checkout_session(self, session: CheckoutSession | str) -> dict[str, Any]:
        with self._lock:
            return self._session_object(self._session(session))

    # ------------------------------------------------------------------ persistence
    def persist_to(self, path: str | os.PathLike[str]) -> None:
        """Keep this simulator's state (customers, sessions, subscriptions, payments) in the
        JSON file ``path``: loaded now when it exists, rewritten after every change. A demo
        app restarted on the same file still renews the subscriptions it sold."""
        path = os.fspath(path)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.restore_state(json.load(f))
        self._state_path = path
        self._autosave()

    def dump_state(self) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON-ready data."""
        with self._lock:
            number = next(self._sequence)
            self._sequence = itertools.count(number)
            return {
                "sequence": number,
                "customers": self._customers,
                "sessions": [asdict(s) for s in self._sessions.values()],
                "subscriptions": [asdict(s) for s in self._subscriptions.values()],
                "payments": [asdict(p) for p in self._payments.values()],
                "idempotent": [
                    [kind, key, fingerprint,
                     {"session": answer.id} if isinstance(answer, _Session) else answer]
                    for (kind, key), (fingerprint, answer) in self._idempotent.items()],
            }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Load what :meth:`dump_state` returned (replacing this simulator's state)."""
        with self._lock:
            self._sequence = itertools.count(int(state.get("sequence", 1)))
            self._customers = dict(state.get("customers") or {})
            self._sessions = {s["id"]: _Session(**s) for s in state.get("sessions") or []}
            self._subscriptions = {s["id"]: _Subscription(**s)
                                   for s in state.get("subscriptions") or []}
            self._payments = {p["payment_intent"]: _Payment(**p)
                              for p in state.get("payments") or []}
            self._idempotent = {}
            for kind, key, fingerprint, answer in state.get("idempotent") or []:
                if isinstance(answer, dict):
                    answer = self._sessions[answer["session"]]
                self._idempotent[(kind, key)] = (fingerprint, answer)

    def _autosave(self) -> None:
        if self._state_path is None:
            return
        with self._lock:
            data = json.dumps(self.dump_state(), indent=1, sort_keys=True)
            tmp = f"{self._state_path}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(data)
            os.replace(tmp, self._state_path)  # a crash mid-write never leaves half a file

    # ------------------------------------------------------------------ internals
    def _now(self) -> int:
        return int(self.lz.now().timestamp())

    def _id(self, prefix: str) -> str:
        return f"{prefix}_sim{secrets.token_hex(8)}"

    def _session(self, session: CheckoutSession | str) -> _Session:
        session_id = session.session_id if isinstance(session, CheckoutSession) else session
        try:
            return self._sessions[session_id]
        except KeyError:
            raise ValueError(f"the simulator created no checkout session {session_id!r}") from None

    def _subscription_of(self, subject_ref: str, product_code: str | None) -> _Subscription:
        found = [s for s in self._subscriptions.values()
                 if s.subject_ref == subject_ref and s.status != "canceled"
                 and product_code in (None, s.product_code)]
        if not found:
            raise ValueError(f"{subject_ref!r} has no live subscription"
                             + (f" to {product_code}" if product_code else ""))
        if len(found) > 1:
            raise ValueError(f"{subject_ref!r} has several subscriptions; name the product")
        return found[0]

    def _payment_of(self, subject_ref: str, product_code: str | None, *,
                    disputed: bool = False) -> _Payment:
        found = [p for p in self._payments.values()
                 if p.paid and p.subject_ref == subject_ref
                 and product_code in (None, p.product_code)
                 and (not disputed or p.dispute is not None)]
        if not found:
            raise ValueError(f"{subject_ref!r} has no{' disputed' if disputed else ''} payment"
                             + (f" for {product_code}" if product_code else ""))
        return max(found, key=lambda p: p.sequence)

    def _new_payment(self, subject_ref: str | None, product_code: str, customer: str | None,
                     metadata: dict[str, str], invoice: str | None = None) -> _Payment:
        payment = _Payment(
            payment_intent=self._id("pi"), charge=self._id("ch"), amount=DEFAULT_AMOUNT,
            customer=customer, subject_ref=subject_ref, product_code=product_code,
            metadata=metadata, created=self._now(), sequence=len(self._payments),
            invoice=invoice,
        )
        self._payments[payment.payment_intent] = payment
        return payment

    def _new_subscription(self, cs: _Session, customer: str) -> _Subscription:
        metadata = dict((cs.params.get("subscription_data") or {}).get("metadata") or {})
        now = self._now()
        sub = _Subscription(
            id=self._id("sub"), item=self._id("si"), subject_ref=cs.subject_ref,
            product_code=cs.product_code, price=cs.price, customer=customer, metadata=metadata,
            created=now, period_start=now, period_end=now + int(self.period.total_seconds()),
        )
        self._subscriptions[sub.id] = sub
        return sub

    def _next_period(self, sub: _Subscription) -> None:
        sub.period_start = self._now()
        sub.period_end = sub.period_start + int(self.period.total_seconds())

    def _invoice(self, sub: _Subscription, reason: str, *, paid: bool,
                 proration: bool = False) -> tuple[dict[str, Any], _Payment]:
        """An invoice of the subscription's current period; ``proration``: for the rest of
        it, after a change (``subscription_update``)."""
        payment = self._new_payment(sub.subject_ref, sub.product_code, sub.customer, {})
        invoice_id = self._id("in")
        payment.invoice, payment.paid = invoice_id, False
        now = self._now()
        invoice: dict[str, Any] = {
            "id": invoice_id, "object": "invoice", "customer": sub.customer,
            "livemode": False, "created": now, "currency": "usd",
            "billing_reason": reason, "collection_method": "charge_automatically",
            "amount_due": payment.amount, "amount_paid": 0, "amount_remaining": payment.amount,
            "attempt_count": 0, "attempted": True, "status": "open",
            "period_start": now, "period_end": now,
            "status_transitions": {"finalized_at": now, "paid_at": None},
            "parent": {
                "type": "subscription_details", "quote_details": None,
                "subscription_details": {"subscription": sub.id, "metadata": sub.metadata},
            },
            "lines": {"object": "list", "has_more": False, "data": [{
                "id": self._id("il"), "object": "line_item", "amount": payment.amount,
                "currency": "usd", "quantity": sub.quantity, "invoice": invoice_id,
                "period": {"start": now if proration else sub.period_start,
                           "end": sub.period_end},
                "pricing": {"type": "price_details", "unit_amount_decimal": str(payment.amount),
                            "price_details": {"price": sub.price, "product": "prod_sim"}},
                "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                           "subscription_item_details": {
                               "subscription": sub.id, "subscription_item": sub.item,
                               "proration": proration}},
            }]},
            # No "payments": Stripe includes it only when the invoice is expanded; the payment
            # intent is named by the invoice_payment.paid event that follows invoice.paid.
        }
        if paid:
            invoice = self._pay_invoice(sub, invoice)
        return invoice, payment

    def _pay_invoice(self, sub: _Subscription, invoice: dict[str, Any]) -> dict[str, Any]:
        paid = json.loads(json.dumps(invoice))
        paid.update(status="paid", amount_paid=paid["amount_due"], amount_remaining=0)
        paid["status_transitions"]["paid_at"] = self._now()
        self._invoice_payment(paid["id"]).paid = True
        sub.latest_invoice = paid["id"]
        return dict(paid)

    def _invoice_payment(self, invoice_id: str) -> _Payment:
        return next(p for p in self._payments.values() if p.invoice == invoice_id)

    def _invoice_payment_object(self, invoice: dict[str, Any],
                                payment: _Payment) -> dict[str, Any]:
        """The ``invoice_payment`` of a paid invoice, as ``invoice_payment.paid`` carries it."""
        now = self._now()
        return {
            "id": f"inpay_{payment.payment_intent.removeprefix('pi_')}",
            "object": "invoice_payment", "livemode": False, "created": now,
            "currency": "usd", "invoice": invoice["id"], "is_default": True,
            "amount_paid": payment.amount, "amount_requested": payment.amount,
            "status": "paid", "status_transitions": {"canceled_at": None, "paid_at": now},
            "payment": {"type": "payment_intent", "payment_intent": payment.payment_intent},
        }

    def _session_object(self, cs: _Session) -> dict[str, Any]:
        params = cs.params
        return {
            "id": cs.id, "object": "checkout.session", "livemode": False,
            "mode": params.get("mode"), "status": cs.status, "payment_status": cs.payment_status,
            "customer": cs.customer, "client_reference_id": params.get("client_reference_id"),
            "metadata": dict(params.get("metadata") or {}), "subscription": cs.subscription,
            "payment_intent": cs.payment_intent, "invoice": cs.invoice,
            "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url"),
            "url": cs.url if cs.status == "open" else None, "created": cs.created,
            "expires_at": cs.created + 24 * 3600, "currency": "usd",
            "amount_total": DEFAULT_AMOUNT, "amount_subtotal": DEFAULT_AMOUNT,
        }

    def _subscription_object(self, sub: _Subscription) -> dict[str, Any]:
        return {
            "id": sub.id, "object": "subscription", "livemode": False, "customer": sub.customer,
            "status": sub.status, "metadata": dict(sub.metadata), "created": sub.created,
            "start_date": sub.created, "billing_cycle_anchor": sub.created,
            "cancel_at_period_end": False, "canceled_at": sub.ended_at,
            "ended_at": sub.ended_at, "latest_invoice": sub.latest_invoice,
            "collection_method": "charge_automatically", "currency": "usd",
            "items": {"object": "list", "has_more": False, "data": [{
                "id": sub.item, "object": "subscription_item", "subscription": sub.id,
                "quantity": sub.quantity, "created": sub.created, "metadata": {},
                "current_period_start": sub.period_start,
                "current_period_end": sub.period_end,
                "price": {"id": sub.price, "object": "price", "type": "recurring",
                          "active": True, "currency": "usd", "unit_amount": DEFAULT_AMOUNT,
                          "recurring": {"interval": "day",
                                        "interval_count": max(1, self.period.days)}},
            }]},
        }

    def _charge_object(self, payment: _Payment) -> dict[str, Any]:
        return {
            "id": payment.charge, "object": "charge", "livemode": False,
            "amount": payment.amount, "amount_captured": payment.amount,
            "amount_refunded": payment.amount_refunded,
            "refunded": payment.amount_refunded >= payment.amount,
            "captured": True, "paid": True, "status": "succeeded", "currency": "usd",
            "payment_intent": payment.payment_intent, "customer": payment.customer,
            "metadata": dict(payment.metadata), "created": payment.created,
            "disputed": payment.dispute is not None,
        }

    def _dispute_object(self, payment: _Payment) -> dict[str, Any]:
        return {
            "id": payment.dispute, "object": "dispute", "livemode": False,
            "amount": payment.amount, "currency": "usd", "charge": payment.charge,
            "payment_intent": payment.payment_intent, "status": payment.dispute_status,
            "reason": "fraudulent", "created": payment.dispute_created, "metadata": {},
            "is_charge_refundable": False,
        }


def _fingerprint(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


__all__ = ["CHECKOUT_BASE", "Delivery", "DeliveryFailed", "StripeSimulator", "sign_payload"]
