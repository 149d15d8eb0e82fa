"""``Licenzy``: the one object an app builds. It validates its configuration up front, then
turns each public call into validated input, one store transaction, and change events
dispatched after that transaction committed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from . import validation
from ._ids import new_id
from .access import AccessDecision, CustomerAccess
from .catalog import Catalog, Product
from .clock import Clock, aware, system_clock
from .entitlement import REVOKED, Entitlement, EntitlementRecord, derive_access
from .errors import EntitlementNotFound, InvalidRequest, ReservationExpired, StoreUnavailable
from .events import Callback, ChangeEvent, EventBus
from .ledger import LedgerEntry
from .mode import Mode, mode_from_key
from .records import HoldRecord
from .stores.base import Store, StoreTransaction, UnitsConflict
from .usage import Reservation, UsageEngine, UsageResult

if TYPE_CHECKING:
    import stripe

    from .checkout import CheckoutSession
    from .gateway import StripeGateway
    from .webhooks import WebhookResult

logger = logging.getLogger("licenzy_embed")
T = TypeVar("T")

DEFAULT_HOLD_TTL = timedelta(minutes=5)
_DEADLOCK_ATTEMPTS = 3


class Licenzy:
    """Payment → entitlement → access, inside the app process.

    The Stripe mode (test or live) comes from ``stripe_api_key`` alone; without a key the
    Stripe simulator of :mod:`licenzy_embed.testing` stands in (test mode only)."""

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
        self._nesting = threading.local()
        self._usage = UsageEngine(self.mode)
        self._init_stripe(stripe_api_key, stripe_webhook_secret, stripe_client)

    # ------------------------------------------------------------------ plumbing
    def now(self) -> datetime:
        return aware(self.clock())

    def _run(self, work: Callable[[StoreTransaction], tuple[T, list[ChangeEvent]]]) -> T:
        """Run ``work`` in one store transaction; dispatch its events once it committed.

        A transaction the database aborted to break a deadlock wrote nothing, so it is run
        again (a few times) rather than turned into a 503 for a request that did nothing
        wrong. Only the outermost transaction retries: a nested block joined its outer unit
        of work, which is the one that must start over."""
        outermost = not getattr(self._nesting, "depth", 0)
        attempts = _DEADLOCK_ATTEMPTS if outermost else 1
        for attempt in range(1, attempts + 1):
            self._nesting.depth = getattr(self._nesting, "depth", 0) + 1
            try:
                with self.store.transaction(self.mode) as tx:
                    result, events = work(tx)
                break
            except StoreUnavailable as exc:
                if not exc.retryable or attempt == attempts:
                    raise
                logger.info("licenzy-embed: retrying a transaction after a deadlock (%s)", exc)
            finally:
                self._nesting.depth -= 1
        self._events.emit(events)
        return result

    def on(self, event_type: str, callback: Callback) -> None:
        """Call ``callback(ChangeEvent)`` after each committed change of this type."""
        self._events.on(event_type, callback)

    def _emit(self, events: list[ChangeEvent]) -> None:
        self._events.emit(events)

    # ------------------------------------------------------------------ access
    def check_access(self, subject_ref: str) -> AccessDecision:
        """The hot path: one store lookup when access is allowed."""
        subject_ref = validation.subject_ref(subject_ref)
        now = self.now()
        allowed = self.store.has_access(self.mode, subject_ref, now)
        if not allowed and self._release_expired_holds(subject_ref, now):
            # A pack fully held by an abandoned request looks empty until its hold expires.
            allowed = self.store.has_access(self.mode, subject_ref, now)
        return AccessDecision(subject_ref, allowed)

    def entitlements(self, subject_ref: str) -> list[Entitlement]:
        subject_ref = validation.subject_ref(subject_ref)
        now = self.now()
        self._release_expired_holds(subject_ref, now)
        return [Entitlement.at(r, now) for r in self.store.list_entitlements(self.mode,
                                                                              subject_ref)]

    def customer_access(self, subject_ref: str) -> CustomerAccess:
        subject_ref = validation.subject_ref(subject_ref)
        return CustomerAccess.from_entitlements(subject_ref, self.entitlements(subject_ref))

    def ledger(self, subject_ref: str) -> list[LedgerEntry]:
        subject_ref = validation.subject_ref(subject_ref)
        return self.store.list_ledger(self.mode, subject_ref)

    # ------------------------------------------------------------------ usage
    def consume_usage(self, subject_ref: str, units: int, *,
                      idempotency_key: str) -> UsageResult:
        """Spend ``units`` atomically across available metered entitlements, or raise
        ``InsufficientUsage`` and spend nothing. A retry with the same key replays."""
        subject_ref = validation.subject_ref(subject_ref)
        units = validation.units(units)
        key = validation.idempotency_key(idempotency_key)
        now = self.now()
        return self._run(lambda tx: self._usage.consume(tx, subject_ref, units, key, now))

    def reserve_usage(self, subject_ref: str, units: int, *, idempotency_key: str,
                      ttl: timedelta | None = None) -> Reservation:
        """Hold ``units`` so concurrent requests cannot spend them; commit or release later.
        The same key and units return the same hold (a retried request is charged once)."""
        subject_ref = validation.subject_ref(subject_ref)
        units = validation.units(units)
        key = validation.idempotency_key(idempotency_key)
        ttl = self.hold_ttl if ttl is None else ttl
        if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
            raise InvalidRequest("ttl must be a positive timedelta")
        now = self.now()
        hold = self._run(lambda tx: (self._usage.reserve(tx, subject_ref, units, key, now, ttl),
                                     []))
        return self._reservation(hold)

    def get_reservation(self, reservation_id: str) -> Reservation | None:
        with self.store.transaction(self.mode) as tx:
            hold = tx.get_hold(reservation_id)
        return None if hold is None else self._reservation(hold)

    def _reservation(self, hold: HoldRecord) -> Reservation:
        return Reservation(hold.id, hold.subject_ref, hold.units, hold.expires_at, hold.status,
                           hold.idempotency_key, hold.committed_units,
                           self._commit_reservation, self._release_reservation)

    def _commit_reservation(self, reservation: Reservation, units: int | None) -> UsageResult:
        if units is not None:
            units = validation.units(units)
        now = self.now()
        hold, result = self._run(lambda tx: _pair(self._usage.commit(
            tx, reservation.id, reservation.subject_ref, units, now)))
        reservation.status, reservation.committed_units = hold.status, hold.committed_units
        if result is None:
            raise ReservationExpired(f"reservation {reservation.id} is {hold.status}")
        return result

    def _release_reservation(self, reservation: Reservation) -> None:
        now = self.now()
        hold = self._run(lambda tx: (self._usage.release(
            tx, reservation.id, reservation.subject_ref, now), []))
        if hold is not None:
            reservation.status = hold.status

    def _release_expired_holds(self, subject_ref: str, now: datetime) -> int:
        if not self.store.has_expired_holds(self.mode, subject_ref, now):
            return 0  # the usual case: one plain read, no write transaction, no row locks

        def work(tx: StoreTransaction) -> tuple[int, list[ChangeEvent]]:
            tx.lock_subject(subject_ref)  # two sweeps of one hold must not both give it back
            return self._usage.expire_holds(tx, subject_ref, now), []

        return self._run(work)

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
              units: int | None = None, expires_at: datetime | None = None) -> Entitlement:
        """A manual grant (support, comps): source ``admin``, no payment involved."""
        subject_ref = validation.subject_ref(subject_ref)
        product = self.catalog.get(product_code)
        reason = validation.reason(reason)
        if units is not None:
            units = validation.units(units)
            if product.kind == "time_pass":
                raise InvalidRequest("a time_pass has no units")
        else:
            units = product.units
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
            created_at=now, updated_at=now, usage_remaining=units, units_granted=units,
            expires_at=expires_at,
        ))

        def work(tx: StoreTransaction) -> tuple[Entitlement, list[ChangeEvent]]:
            tx.insert_entitlement(record)
            tx.add_ledger(LedgerEntry.new(
                mode=self.mode, subject_ref=subject_ref, action="granted", source="admin",
                reason=reason, at=now, entitlement_id=record.id, units_delta=units,
                status=record.status,
            ))
            view = Entitlement.at(record, now)
            return view, [entitlement_event(view)]

        return self._run(work)

    def revoke(self, entitlement_id: str, *, reason: str) -> Entitlement:
        reason = validation.reason(reason)
        now = self.now()

        def work(tx: StoreTransaction) -> tuple[Entitlement, list[ChangeEvent]]:
            record = self._locked_entitlement(tx, entitlement_id, now)
            if record.status == REVOKED:
                # Revoking twice changes nothing, so there is nothing to announce either.
                return Entitlement.at(record, now), []
            record = record.evolve(now, status=REVOKED, prior_status=record.status)
            tx.save_entitlement(record)
            tx.add_ledger(LedgerEntry.new(
                mode=self.mode, subject_ref=record.subject_ref, action="revoked",
                source="admin", reason=reason, at=now, entitlement_id=record.id,
                status=REVOKED,
            ))
            view = Entitlement.at(record, now)
            return view, [entitlement_event(view)]

        return self._run(work)

    def adjust_usage(self, entitlement_id: str, delta: int, *, reason: str) -> Entitlement:
        """Add (or, with a negative delta, remove) units of a metered entitlement."""
        delta = validation.delta(delta)
        reason = validation.reason(reason)
        now = self.now()

        def work(tx: StoreTransaction) -> tuple[Entitlement, list[ChangeEvent]]:
            record = self._locked_entitlement(tx, entitlement_id, now)
            if record.usage_remaining is None:
                raise InvalidRequest(f"entitlement {entitlement_id} is not metered")
            try:
                tx.adjust_units(record.id, delta, now)
            except UnitsConflict:
                raise InvalidRequest(
                    f"cannot remove {-delta} units: {record.usage_remaining} remain"
                ) from None
            record = tx.get_entitlement(record.id) or record
            tx.add_ledger(LedgerEntry.new(
                mode=self.mode, subject_ref=record.subject_ref, action="adjusted",
                source="admin", reason=reason, at=now, entitlement_id=record.id,
                units_delta=delta, status=record.status,
            ))
            view = Entitlement.at(record, now)
            return view, [entitlement_event(view)]

        return self._run(work)

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
        """Validate the Stripe settings up front. Without an API key the Stripe simulator is
        the gateway (test mode only) and, unless one is given, gets a random webhook secret
        so that even simulated events are signed and verified for real."""
        import secrets as _secrets

        from .checkout import CheckoutService, redirect_url
        from .webhooks import WebhookProcessor

        if stripe_client is not None and api_key is None:
            raise ValueError("stripe_client needs stripe_api_key too: the mode (test or live) "
                             "comes from the key alone")
        if webhook_secret is None:
            given: tuple[object, ...] = ()
        elif isinstance(webhook_secret, str):
            given = (webhook_secret,)
        else:
            given = tuple(webhook_secret)
        if any(not isinstance(s, str) or not s.strip() for s in given):
            raise ValueError("stripe_webhook_secret must be a non-empty string or a list of them")
        if not given and api_key is None:
            given = ("whsec_simulator_" + _secrets.token_hex(16),)
        for name in ("success_url", "cancel_url"):
            try:
                redirect_url(getattr(self, name), name)
            except InvalidRequest as exc:
                raise ValueError(str(exc)) from None
        self._stripe_api_key = api_key
        self._stripe_client = stripe_client
        self._webhook_secrets: tuple[str, ...] = tuple(str(s) for s in given)
        self._gateway: StripeGateway | None = None
        self._gateway_lock = threading.Lock()
        self._checkout = CheckoutService(self)
        self._webhooks = WebhookProcessor(self)

    @property
    def gateway(self) -> StripeGateway:
        """Who checkout talks to: Stripe through the SDK, or the simulator without a key."""
        with self._gateway_lock:
            if self._gateway is None:
                if self._stripe_api_key is None:
                    from .testing.simulator import StripeSimulator

                    self._gateway = StripeSimulator(self)
                else:
                    import stripe as _stripe

                    from .gateway import StripeClientGateway

                    client = self._stripe_client or _stripe.StripeClient(self._stripe_api_key)
                    self._gateway = StripeClientGateway(client)
            return self._gateway

    def use_gateway(self, gateway: StripeGateway) -> None:
        """Send checkout to ``gateway`` (the testing kit's simulator attaches itself so)."""
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

    def handle_webhook(self, payload: bytes, signature_header: str) -> WebhookResult:
        """Verify and apply one Stripe delivery, exactly once. Raises ``InvalidSignature``,
        ``InvalidPayload`` or ``ModeMismatch`` (answer 400) having recorded nothing; any other
        exception means nothing was recorded either, and the route should answer 5xx so that
        Stripe retries."""
        return self._webhooks.handle(payload, signature_header)


def entitlement_event(view: Entitlement) -> ChangeEvent:
    return ChangeEvent("entitlement.updated", {"entitlement": view.to_dict()})


def _pair(triple: tuple[HoldRecord, UsageResult | None, list[ChangeEvent]]
          ) -> tuple[tuple[HoldRecord, UsageResult | None], list[ChangeEvent]]:
    hold, result, events = triple
    return (hold, result), events
