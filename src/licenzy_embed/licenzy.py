"""``Licenzy``: the one object an app builds. It validates its configuration up front, then
turns each public call into validated input, one store transaction, and change events
dispatched after that transaction committed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import retention, validation
from ._ids import new_id
from .access import AccessDecision, CustomerAccess
from .catalog import Catalog, Product
from .checkout import CheckoutService, CheckoutSession, redirect_url
from .clock import Clock, aware, system_clock
from .entitlement import REVOKED, Entitlement, EntitlementRecord, derive_access
from .errors import (
    AccessDenied,
    EntitlementNotFound,
    EventNotFound,
    InvalidRequest,
    PaymentProviderError,
    ReservationExpired,
)
from .events import Callback, ChangeEvent, EventBus, entitlement_updated
from .gateway import StripeGateway
from .ledger import LedgerEntry
from .mode import Mode, mode_from_key
from .outbox import Delivery, Outbox, OutboxRecord
from .records import HoldRecord
from .stores.base import Store, StoreTransaction, UnitsConflict
from .unit_of_work import UnitOfWork
from .usage import Reservation, UsageEngine, UsageResult
from .webhooks import WebhookProcessor, WebhookResult, WebhookSecrets
from .webhooks.signature import SECRET_PREFIX

if TYPE_CHECKING:
    import stripe

    from .reconcile import ReconcileReport

logger = logging.getLogger("licenzy_embed")

DEFAULT_HOLD_TTL = timedelta(minutes=5)
KeylessHook = Callable[["Licenzy"], object]
_keyless_hook: list[KeylessHook] = []  # at most one: set by the testing kit's pytest plugin


def when_built_without_key(hook: KeylessHook | None) -> KeylessHook | None:
    """Run ``hook(lz)`` at the end of building every key-less ``Licenzy`` from now on (None:
    no longer); returns the hook it replaces. The testing kit's pytest plugin attaches the
    Stripe simulator this way for the length of a test session; the core itself never
    imports the testing kit."""
    previous = _keyless_hook[0] if _keyless_hook else None
    _keyless_hook.clear()
    if hook is not None:
        _keyless_hook.append(hook)
    return previous


class Licenzy:
    """Payment → entitlement → access, inside the app process.

    The Stripe mode (test or live) comes from ``stripe_api_key`` alone. Without a key it is
    in test mode with no way to reach Stripe until a gateway is attached: the simulator of
    :mod:`licenzy_embed.testing` attaches itself with ``StripeSimulator.for_licenzy(lz)``
    (and, under pytest, the plugin does so for every key-less instance)."""

    def __init__(
        self,
        *,
        store: Store,
        products: Iterable[Product],
        stripe_api_key: str | None = None,
        stripe_webhook_secret: str | Sequence[str] | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        stripe_client: stripe.StripeClient | None = None,
        clock: Clock | None = None,
        past_due_grace: timedelta = timedelta(days=3),
        webhook_tolerance: int = 300,
        hold_ttl: timedelta = DEFAULT_HOLD_TTL,
    ) -> None:
        if not isinstance(store, Store):
            raise ValueError("store must implement licenzy_embed.stores.Store")
        if not isinstance(past_due_grace, timedelta) or past_due_grace < timedelta(0):
            raise ValueError("past_due_grace must be a non-negative timedelta")
        if not isinstance(hold_ttl, timedelta) or hold_ttl <= timedelta(0):
            raise ValueError("hold_ttl must be a positive timedelta")
        if isinstance(webhook_tolerance, bool) or not isinstance(webhook_tolerance, int) or (
            webhook_tolerance <= 0
        ):
            raise ValueError("webhook_tolerance must be a positive number of seconds")
        self.store = store
        self.catalog = Catalog(products)
        self.mode: Mode = mode_from_key(stripe_api_key)
        self.clock: Clock = clock or system_clock
        self.past_due_grace = past_due_grace
        self.hold_ttl = hold_ttl
        self.webhook_tolerance = webhook_tolerance
        self.success_url = success_url
        self.cancel_url = cancel_url
        self._events = EventBus()
        self.outbox = Outbox(store, self.mode, self._events, self.now)
        # The one unit of work every change runs in (and its one retry policy).
        self.unit_of_work = UnitOfWork(store, self.mode, self.outbox, self.now)
        self._usage = UsageEngine(self.mode, lambda meter: self._upgrade(meter=meter))
        self._init_stripe(stripe_api_key, stripe_webhook_secret, stripe_client)
        if stripe_api_key is None and _keyless_hook:
            _keyless_hook[0](self)

    # ------------------------------------------------------------------ plumbing
    def now(self) -> datetime:
        return aware(self.clock())

    def on(self, event_type: str, callback: Callback) -> None:
        """Call ``callback(ChangeEvent)`` after each committed change of this type (``*``:
        every type). At least once: see :mod:`licenzy_embed.outbox`; ``event.id`` is stable
        across redeliveries. Events other processes left pending are delivered by
        :meth:`deliver_pending_events`, and once by the first change this instance commits."""
        self._events.on(event_type, callback)

    # ------------------------------------------------------------------ change events
    def deliver_pending_events(self, *, limit: int | None = None) -> Delivery:
        """Deliver the change events that are due: left by a process that died between a
        commit and its callbacks, or whose callback raised and whose backoff has passed. For
        a periodic job (cron, Celery beat) and for start-up, after registering callbacks;
        when nothing is due it costs one indexed read. With no callbacks registered it does
        nothing: events are delivered to someone, never marked delivered to no one."""
        return self.outbox.deliver_pending(limit)

    def change_event(self, event_id: str) -> OutboxRecord | None:
        """One change event as the outbox keeps it (status, attempts, last error)."""
        if not isinstance(event_id, str) or not event_id:
            raise InvalidRequest("event_id must be a non-empty string")
        return self.store.get_event(self.mode, event_id)

    def change_events(self, *, pending: bool = False, limit: int = 100) -> list[OutboxRecord]:
        """The newest change events, newest first (only those not yet delivered with
        ``pending``)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidRequest("limit must be an int from 1 to 10000")
        return self.store.list_events(self.mode, pending=pending, limit=limit)

    def replay_event(self, event_id: str) -> Delivery:
        """Deliver one change event again to every registered callback, delivered or not
        (a receiver that lost it); raises ``EventNotFound`` for an unknown id."""
        record = self.change_event(event_id)
        if record is None:
            raise EventNotFound(f"no change event {event_id}")
        return self.outbox.replay(record)

    # ------------------------------------------------------------------ access
    def check_access(self, subject_ref: str, feature: str | None = None) -> AccessDecision:
        """The hot path: one store lookup when access is allowed. With ``feature``: is it
        granted by an available entitlement whose product lists it, or whose product has a
        meter of that name with units left? A name no product grants is ``InvalidRequest``."""
        subject_ref = validation.subject_ref(subject_ref)
        now = self.now()
        if feature is None:
            allowed = self.store.has_access(self.mode, subject_ref, now)
        else:
            codes, meter = self.catalog.grants(feature)  # a name no product grants: 400
            allowed = self.store.has_feature(self.mode, subject_ref, now, codes, meter)
        if not allowed and self._release_expired_holds(subject_ref, now):
            # A pack fully held by an abandoned request looks empty until its hold expires.
            allowed = self._has(subject_ref, now, feature)
        return AccessDecision(subject_ref, allowed)

    def _has(self, subject_ref: str, now: datetime, feature: str | None) -> bool:
        if feature is None:
            return self.store.has_access(self.mode, subject_ref, now)
        # The product -> features mapping lives in the catalog, so the store gets the codes
        # that list the feature: one indexed statement in SQL, as for plain access.
        codes, meter = self.catalog.grants(feature)
        return self.store.has_feature(self.mode, subject_ref, now, codes, meter)

    def denial(self, subject_ref: str, feature: str | None = None) -> AccessDenied:
        """The ``AccessDenied`` for a refused ``check_access``, naming what would grant it
        (an adapter raises it; the core decides what it says)."""
        return AccessDenied(subject_ref, feature=feature, upgrade=self._upgrade(feature=feature)
                            if feature is not None else self._upgrade())

    def _upgrade(self, *, feature: str | None = None,
                 meter: str | None = None) -> tuple[tuple[str, str], ...]:
        return tuple((p.code, p.kind)
                     for p in self.catalog.granting(feature=feature, meter=meter))

    def entitlements(self, subject_ref: str) -> list[Entitlement]:
        subject_ref = validation.subject_ref(subject_ref)
        now = self.now()
        self._release_expired_holds(subject_ref, now)
        return [Entitlement.at(r, now, self._features_of(r.product_code))
                for r in self.store.list_entitlements(self.mode, subject_ref)]

    def _features_of(self, product_code: str) -> tuple[str, ...]:
        product = self.catalog.by_code(product_code)
        return () if product is None else product.features

    def customer_access(self, subject_ref: str) -> CustomerAccess:
        subject_ref = validation.subject_ref(subject_ref)
        return CustomerAccess.from_entitlements(subject_ref, self.entitlements(subject_ref))

    def ledger(self, subject_ref: str) -> list[LedgerEntry]:
        subject_ref = validation.subject_ref(subject_ref)
        return self.store.list_ledger(self.mode, subject_ref)

    # ------------------------------------------------------------------ usage
    def consume_usage(self, subject_ref: str, units: int, *, idempotency_key: str,
                      meter: str = "units") -> UsageResult:
        """Spend ``units`` of ``meter`` atomically across the available entitlements that
        carry it, or raise ``InsufficientUsage`` and spend nothing (``NothingToSpend``, a
        402, when none of the subject's entitlements carries the meter). A retry with the
        same key replays; the same key for other units or another meter is a conflict."""
        subject_ref = validation.subject_ref(subject_ref)
        units = validation.units(units)
        key = validation.idempotency_key(idempotency_key)
        meter = self._meter(meter)
        now = self.now()
        return self.unit_of_work.run(
            lambda tx: self._usage.consume(tx, subject_ref, units, key, now, meter))

    def _meter(self, meter: object) -> str:
        # "units" stays valid with no product metering it, as before meters: such a call is
        # refused as nothing to spend from, not as a typo.
        if meter == "units":
            return "units"
        return self.catalog.meter(meter)

    def reserve_usage(self, subject_ref: str, units: int, *, idempotency_key: str,
                      ttl: timedelta | None = None, meter: str = "units") -> Reservation:
        """Hold ``units`` of ``meter`` so concurrent requests cannot spend them; commit or
        release later. The same key and units return the same hold (a retried request is
        charged once)."""
        subject_ref = validation.subject_ref(subject_ref)
        units = validation.units(units)
        key = validation.idempotency_key(idempotency_key)
        meter = self._meter(meter)
        ttl = self.hold_ttl if ttl is None else ttl
        if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
            raise InvalidRequest("ttl must be a positive timedelta")
        now = self.now()
        hold = self.unit_of_work.run(
            lambda tx: (self._usage.reserve(tx, subject_ref, units, key, now, ttl, meter), []))
        return self._reservation(hold)

    def get_reservation(self, reservation_id: str) -> Reservation | None:
        with self.store.transaction(self.mode) as tx:
            hold = tx.get_hold(reservation_id)
        return None if hold is None else self._reservation(hold)

    def _reservation(self, hold: HoldRecord) -> Reservation:
        return Reservation(hold.id, hold.subject_ref, hold.units, hold.expires_at, hold.status,
                           hold.idempotency_key, hold.committed_units, hold.meter,
                           self._commit_reservation, self._release_reservation)

    def _commit_reservation(self, reservation: Reservation, units: int | None) -> UsageResult:
        if units is not None:
            units = validation.units(units)
        now = self.now()
        hold, result = self.unit_of_work.run(lambda tx: _pair(self._usage.commit(
            tx, reservation.id, reservation.subject_ref, units, now)))
        reservation.status, reservation.committed_units = hold.status, hold.committed_units
        if result is None:
            raise ReservationExpired(f"reservation {reservation.id} is {hold.status}")
        return result

    def _release_reservation(self, reservation: Reservation) -> None:
        now = self.now()
        hold = self.unit_of_work.run(lambda tx: (self._usage.release(
            tx, reservation.id, reservation.subject_ref, now), []))
        if hold is not None:
            reservation.status = hold.status

    def _release_expired_holds(self, subject_ref: str, now: datetime) -> int:
        if not self.store.has_expired_holds(self.mode, subject_ref, now):
            return 0  # the usual case: one plain read, no write transaction, no row locks

        def work(tx: StoreTransaction) -> tuple[int, list[ChangeEvent]]:
            tx.lock_subject(subject_ref)  # two sweeps of one hold must not both give it back
            return self._usage.expire_holds(tx, subject_ref, now), []

        return self.unit_of_work.run(work)

    def release_expired_holds(self) -> int:
        """Release every expired hold of this mode; for a periodic job. Holds are also
        released lazily whenever their subject spends or is looked at."""
        now = self.now()
        with self.store.transaction(self.mode) as tx:
            subjects = sorted({hold.subject_ref for hold in tx.expired_holds(None, now)})
        # One transaction per subject, under its row locks, like every other hold settlement:
        # a sweep racing a spend (or another sweep) must not give the same units back twice.
        return sum(self._release_expired_holds(subject, now) for subject in subjects)

    # ------------------------------------------------------------------ admin
    def grant(self, subject_ref: str, product_code: str, *, reason: str,
              units: int | None = None, expires_at: datetime | None = None,
              meters: Mapping[str, int] | None = None) -> Entitlement:
        """A manual grant (support, comps): source ``admin``, no payment involved. It carries
        the product's meters; ``units`` overrides the ``units`` meter and ``meters`` any
        meter the catalog knows (each count as in the product)."""
        subject_ref = validation.subject_ref(subject_ref)
        product = self.catalog.get(product_code)
        reason = validation.reason(reason)
        grants = dict(product.meters)
        if units is not None:
            grants["units"] = validation.units(units)
        if meters is not None:
            if not isinstance(meters, Mapping):
                raise InvalidRequest("meters must be a dict of meter name -> units")
            for name, count in meters.items():
                grants[self.catalog.meter(name)] = validation.units(count, name=str(name))
        if grants and product.kind == "time_pass":
            raise InvalidRequest("a time_pass has no units")
        now = self.now()
        if expires_at is not None:
            if not isinstance(expires_at, datetime):
                raise InvalidRequest("expires_at must be a datetime")
            expires_at = aware(expires_at)
        elif product.duration is not None:
            expires_at = now + product.duration
        record = derive_access(EntitlementRecord(
            id=new_id("ent"), mode=self.mode, subject_ref=subject_ref,
            product_code=product.code, kind=product.kind, status="active", source="admin",
            created_at=now, updated_at=now, balances=dict(grants), grants=grants,
            expires_at=expires_at,
        ))

        def work(tx: StoreTransaction) -> tuple[Entitlement, list[ChangeEvent]]:
            tx.insert_entitlement(record)
            # One entry per meter granted (one without units when there is none).
            given: list[tuple[str | None, int | None]] = list(grants.items()) or [(None, None)]
            for meter, count in given:
                tx.add_ledger(LedgerEntry.new(
                    mode=self.mode, subject_ref=subject_ref, action="granted", source="admin",
                    reason=reason, at=now, entitlement_id=record.id, units_delta=count,
                    status=record.status, meter=meter,
                ))
            view = Entitlement.at(record, now, product.features)
            return view, [entitlement_updated(view, source="admin")]

        return self.unit_of_work.run(work)

    def revoke(self, entitlement_id: str, *, reason: str) -> Entitlement:
        reason = validation.reason(reason)
        now = self.now()

        def work(tx: StoreTransaction) -> tuple[Entitlement, list[ChangeEvent]]:
            record = self._locked_entitlement(tx, entitlement_id, now)
            if record.status == REVOKED:
                # Revoking twice changes nothing, so there is nothing to announce either.
                return self._view(record, now), []
            record = record.evolve(now, status=REVOKED, prior_status=record.status)
            tx.save_entitlement(record)
            tx.add_ledger(LedgerEntry.new(
                mode=self.mode, subject_ref=record.subject_ref, action="revoked",
                source="admin", reason=reason, at=now, entitlement_id=record.id,
                status=REVOKED,
            ))
            view = self._view(record, now)
            return view, [entitlement_updated(view, source="admin")]

        return self.unit_of_work.run(work)

    def adjust_usage(self, entitlement_id: str, delta: int, *, reason: str,
                     meter: str = "units") -> Entitlement:
        """Add (or, with a negative delta, remove) units of one meter of an entitlement."""
        delta = validation.delta(delta)
        reason = validation.reason(reason)
        meter = self._meter(meter)
        now = self.now()

        def work(tx: StoreTransaction) -> tuple[Entitlement, list[ChangeEvent]]:
            record = self._locked_entitlement(tx, entitlement_id, now)
            if meter not in record.balances:
                raise InvalidRequest(f"entitlement {entitlement_id} is not metered"
                                     if not record.balances else
                                     f"entitlement {entitlement_id} has no meter {meter!r}")
            try:
                tx.adjust_units(record.id, delta, now, meter)
            except UnitsConflict:
                raise InvalidRequest(
                    f"cannot remove {-delta} units: {record.remaining(meter)} remain"
                ) from None
            record = tx.get_entitlement(record.id) or record
            tx.add_ledger(LedgerEntry.new(
                mode=self.mode, subject_ref=record.subject_ref, action="adjusted",
                source="admin", reason=reason, at=now, entitlement_id=record.id,
                units_delta=delta, status=record.status, meter=meter,
            ))
            view = self._view(record, now)
            return view, [entitlement_updated(view, source="admin")]

        return self.unit_of_work.run(work)

    def _view(self, record: EntitlementRecord, now: datetime) -> Entitlement:
        return Entitlement.at(record, now, self._features_of(record.product_code))

    def _locked_entitlement(self, tx: StoreTransaction, entitlement_id: Any,
                            now: datetime) -> EntitlementRecord:
        if not isinstance(entitlement_id, str) or not entitlement_id:
            raise InvalidRequest("entitlement_id must be a non-empty string")
        probe = self.store.get_entitlement(self.mode, entitlement_id)
        if probe is None:
            raise EntitlementNotFound(f"no entitlement {entitlement_id}")
        tx.lock_subject(probe.subject_ref)  # same lock order as usage: subject rows first
        # Stale holds give their units back first, as for a spend: otherwise an abandoned
        # hold would make "remove 50 units" fail on units nobody holds any more.
        self._usage.expire_holds(tx, probe.subject_ref, now)
        record = tx.get_entitlement(entitlement_id)
        if record is None:
            raise EntitlementNotFound(f"no entitlement {entitlement_id}")
        return record

    # ------------------------------------------------------------------ Stripe
    def _init_stripe(self, api_key: str | None, webhook_secret: str | Sequence[str] | None,
                     stripe_client: stripe.StripeClient | None) -> None:
        """Validate the Stripe settings up front: a mistake in them is a ``ValueError`` at
        start-up, not a surprise when the first customer pays."""
        if stripe_client is not None and api_key is None:
            raise ValueError("stripe_client needs stripe_api_key too: the mode (test or live) "
                             "comes from the key alone")
        if isinstance(webhook_secret, str):
            given: tuple[object, ...] = (webhook_secret,)
        elif webhook_secret is None:
            given = ()
        else:
            given = tuple(webhook_secret)
        if any(not isinstance(s, str) or not s.strip() for s in given):
            raise ValueError("stripe_webhook_secret must be a non-empty string or a list of them")
        for secret in given:
            _check_secret(str(secret))
        for name in ("success_url", "cancel_url"):
            try:
                redirect_url(getattr(self, name), name)
            except InvalidRequest as exc:
                raise ValueError(str(exc)) from None
        self._stripe_api_key = api_key
        self._stripe_client = stripe_client
        self._gateway: StripeGateway | None = None
        self._gateway_lock = threading.Lock()
        self._checkout = CheckoutService(
            unit_of_work=self.unit_of_work, store=self.store, mode=self.mode,
            catalog=self.catalog, now=self.now, gateway=lambda: self.gateway,
            success_url=self.success_url, cancel_url=self.cancel_url)
        self._webhook_secrets = WebhookSecrets(str(s) for s in given)
        # Public so that tests can patch its handler table (``lz.webhooks.handlers``).
        self.webhooks = WebhookProcessor(
            unit_of_work=self.unit_of_work, mode=self.mode, catalog=self.catalog,
            now=self.now, secrets=self._webhook_secrets, tolerance=self.webhook_tolerance,
            past_due_grace=self.past_due_grace)

    @property
    def webhook_secrets(self) -> WebhookSecrets:
        """The secrets deliveries are verified against (its ``repr`` hides them)."""
        return self._webhook_secrets

    @property
    def gateway(self) -> StripeGateway:
        """Who checkout talks to: Stripe through the SDK when there is a key, else the
        gateway attached with :meth:`use_gateway` (the testing kit's simulator)."""
        with self._gateway_lock:
            if self._gateway is None:
                if self._stripe_api_key is None:
                    raise PaymentProviderError(
                        "this Licenzy has no stripe_api_key and no Stripe gateway: pass "
                        "stripe_api_key, or attach the Stripe simulator for tests and demos "
                        "with licenzy_embed.testing.StripeSimulator.for_licenzy(lz)")
                import stripe as _stripe

                from .gateway import StripeClientGateway

                client = self._stripe_client or _stripe.StripeClient(self._stripe_api_key)
                self._gateway = StripeClientGateway(client)
            return self._gateway

    def use_gateway(self, gateway: StripeGateway, *, webhook_secret: str | None = None) -> None:
        """Send checkout to ``gateway`` (the testing kit's simulator attaches itself so).
        ``webhook_secret``: the secret that gateway signs its events with, for a key-less
        ``Licenzy`` built without one (the simulator's own); one configured is kept."""
        if webhook_secret is not None:
            if self._stripe_api_key is not None or self._webhook_secrets:
                raise ValueError("only a key-less Licenzy without a stripe_webhook_secret "
                                 "takes its gateway's secret")
            _check_secret(webhook_secret)
            self._webhook_secrets = self.webhooks.secrets = WebhookSecrets((webhook_secret,))
        with self._gateway_lock:
            self._gateway = gateway

    def create_checkout_session(self, subject_ref: str, product_code: str, *,
                                idempotency_key: str, success_url: str | None = None,
                                cancel_url: str | None = None) -> CheckoutSession:
        """A Stripe Checkout Session for ``subject_ref`` to buy ``product_code``. It grants
        nothing by itself: access comes with the paid session's webhook. The same key and
        arguments answer the same session without calling Stripe again."""
        return self._checkout.create(subject_ref, product_code,
                                     idempotency_key=idempotency_key,
                                     success_url=success_url, cancel_url=cancel_url)

    def reconcile(self, since: datetime | timedelta | None = None, *, dry_run: bool = False,
                  progress: Callable[[int, int], object] | None = None) -> ReconcileReport:
        """Heal entitlements that missed webhooks left wrong: apply the handled events
        Stripe still has since ``since`` (default and at most 30 days back) through the
        exactly-once path, then re-read every known subscription and payment and apply its
        current state. ``dry_run``: report the same differences and write nothing.
        ``progress(done, total)`` is called as items are applied. See
        :mod:`licenzy_embed.reconcile`."""
        from .reconcile import Reconciler

        return Reconciler(self).run(since=since, dry_run=dry_run, progress=progress)

    def prune_history(self, *, dry_run: bool = False, now: datetime | None = None,
                      idempotency_window: timedelta = retention.IDEMPOTENCY_WINDOW,
                      event_window: timedelta = retention.EVENT_WINDOW
                      ) -> retention.PruneReport:
        """Delete, in this Licenzy's mode, the history no retry or replay can need any more:
        holds settled and usage records made before ``idempotency_window`` (at least 1 hour),
        processed webhook event ids and delivered change events older than ``event_window``
        (at least 31 days: ``reconcile`` replays 30). Never an open hold, the ledger,
        watermarks, entitlements, checkout attempts or customers. ``dry_run``: count, delete
        nothing. In batches, each its own short transaction. See
        :mod:`licenzy_embed.retention`."""
        return retention.prune(self.store, self.mode, self.now() if now is None else now,
                               idempotency_window=idempotency_window,
                               event_window=event_window, dry_run=dry_run)

    def handle_webhook(self, payload: bytes, signature_header: str) -> WebhookResult:
        """Verify and apply one Stripe delivery, exactly once. Raises ``InvalidSignature``,
        ``InvalidPayload`` or ``ModeMismatch`` (answer 400) having recorded nothing; any other
        exception means nothing was recorded either, and the route should answer 5xx so that
        Stripe retries."""
        return self.webhooks.handle(payload, signature_header)


def _check_secret(secret: str) -> None:
    if secret != secret.strip():
        raise ValueError("stripe_webhook_secret has surrounding whitespace (a trailing newline "
                         "from a file or an environment variable?)")
    if not secret.startswith(SECRET_PREFIX) or len(secret) == len(SECRET_PREFIX):
        raise ValueError("stripe_webhook_secret must be an endpoint signing secret, starting "
                         f"with {SECRET_PREFIX!r} (the dashboard or `stripe listen` shows it)")


def _pair(triple: tuple[HoldRecord, UsageResult | None, list[ChangeEvent]]
          ) -> tuple[tuple[HoldRecord, UsageResult | None], list[ChangeEvent]]:
    hold, result, events = triple
    return (hold, result), events
