"""The rules that make an entitlement's state independent of delivery order.

Each part of the state is decided by one rule that gives the same answer whatever order, and
however many copies, the events arrive in:

* *status*: the newest event claiming a status wins, ordered by ``(created, event id)``
  through a per-purchase high-water mark; ``canceled`` and ``incomplete_expired`` are final.
  In a tie on ``created`` an ``incomplete`` claim loses (Stripe sends
  ``subscription.created: incomplete`` and ``updated: active`` in the same second).
* *grace* of a past-due subscription runs from the earliest ``created`` of the claims that
  its billing period went past due, remembered per period (also from claims too old to set
  the status), and kept aside while a refund or dispute hides it.
* *billing period*: units are reset only when an invoice for a *later* period than the one
  last granted is paid; ``expires_at`` is the latest known period end.
* *payment facts*: refunds and disputes are facts about one payment intent, remembered even
  before the purchase arrives, and the refund/dispute state is recomputed from the facts of
  the entitlement's current payment whenever either side changes. They are ordered by
  ``created``; in a tie, by their place in a payment's life (a dispute opens before it closes,
  a refund is final), and only then by event id, which is random.
"""

from __future__ import annotations

from datetime import datetime

from ..entitlement import DISPUTED, PAST_DUE, PURCHASE_ACTIVE, REFUNDED, REVOKED, EntitlementRecord
from . import keys
from .context import INCOMPLETE, Context, Target, purchase_key
from .event import Order
from .fields import time

FINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})
# A payment's life, for facts created in the same second: opened, then closed, then refunded.
_FACT_RANK: dict[keys.Fact, int] = {"dispute_open": 0, "dispute_won": 1, "dispute_lost": 1,
                                    "refunded": 2}


def underlying(record: EntitlementRecord) -> str:
    """Stripe's status, under any refund or dispute that overrides it."""
    return record.prior_status if record.prior_status is not None else record.status


def claim_is_newer(order: Order, mark: Order | None, status: str, current: str) -> bool:
    if mark is None:
        return True
    if order[0] == mark[0]:
        if status == INCOMPLETE and current != INCOMPLETE:
            return False
        if status != INCOMPLETE and current == INCOMPLETE:
            return True
    return order > mark


# ---------------------------------------------------------------------------- status
def claim_status(ctx: Context, target: Target, status: str, *,
                 period: int | None = None) -> bool:
    """Apply a status claimed by the current event if it is the newest claim. A final status
    applies whenever it arrives and nothing but another final status replaces it. Returns
    whether it applied. ``period``: the start of the billing period a ``past_due`` claim is
    about."""
    record = target.record
    if record.status == REVOKED:
        ctx.note("the entitlement was revoked by an admin; Stripe changes are not applied")
        return False
    since = None
    if status == PAST_DUE and record.kind == "subscription":
        since = past_due_since(ctx, target, period)  # also for a claim too old to apply
    key = keys.status(purchase_key(record))
    current = underlying(record)
    newer = claim_is_newer(ctx.ev.order, ctx.order_of(key), status, current)
    if current in FINAL_STATUSES:
        if status not in FINAL_STATUSES or not newer:
            ctx.note(f"the subscription already ended ({current})")
            return False
    elif not newer and status not in FINAL_STATUSES:
        ctx.note("an event newer than this one already set the status")
        return False
    ctx.advance(key, ctx.ev.order)
    set_underlying(ctx, target, status, grace_from=since, period=period)
    return True


def provisional_status(ctx: Context, target: Target, status: str) -> None:
    """A subscription's status as a checkout session tells it: only until a subscription or
    invoice event has claimed one, and without taking part in their ordering — the session
    does not know about a trial (or anything after it), so a newer session event must not
    override what an older subscription event said."""
    record = target.record
    if record.status == REVOKED or ctx.order_of(keys.status(purchase_key(record))) is not None:
        return
    set_underlying(ctx, target, status, grace_from=None)


def past_due_since(ctx: Context, target: Target, period: int | None) -> int:
    """When the subscription went past due for the billing period starting at ``period``: the
    earliest ``created`` of the events saying so, remembered per period (grace runs from
    there, not from the period start: a send_invoice subscription goes past due only after
    its due date). Every claim counts, also one too old to set the status; an earlier start
    learned late moves back the grace of the past-due state it belongs to."""
    record = target.record
    key = keys.past_due(purchase_key(record), period)
    known = ctx.past_due_since(key)
    if known is not None and known <= ctx.ev.created:
        return known
    since = ctx.ev.created
    ctx.remember_past_due(key, since)
    grace_key = keys.grace(purchase_key(record))
    current = ctx.grace_of(grace_key)
    if current is not None and current[1] == key.key and current[0] > since:
        ctx.keep_grace(grace_key, since, key)
        if record.status == PAST_DUE and record.prior_status is None:
            ctx.change(target, "updated", f"{ctx.ev.type}: past due since "
                       f"{time(since).isoformat()}", grace_until=time(since) + ctx.past_due_grace)
    return since


def set_underlying(ctx: Context, target: Target, status: str, *, grace_from: int | None,
                   period: int | None = None) -> None:
    record = target.record
    reason = f"{ctx.ev.type}: status {status}"
    if record.kind == "subscription":
        grace = None
        if status == PAST_DUE:
            start = grace_from if grace_from is not None else ctx.ev.created
            grace = time(start) + ctx.past_due_grace
            # Kept aside (with the period it is about): a refund or dispute may hide this
            # grace for a while, and must give it back when it ends.
            ctx.keep_grace(keys.grace(purchase_key(record)), start,
                           keys.past_due(purchase_key(record), period))
        if record.prior_status is not None:  # a refund or dispute keeps it past due
            if record.prior_status != status:
                ctx.change(target, "updated", reason, prior_status=status)
        elif (record.status, record.grace_until) != (status, grace):
            ctx.change(target, "updated", reason, status=status, grace_until=grace)
        return
    if record.prior_status is not None:
        if record.prior_status != status:
            ctx.change(target, "updated", reason, prior_status=status)
    elif record.status != status:
        ctx.change(target, "updated", reason, status=status)
    if status == PURCHASE_ACTIVE:
        grant_purchase(ctx, target, ctx.ev.at)


def grant_purchase(ctx: Context, target: Target, paid_at: datetime) -> None:
    """A one-off purchase's units and end date, set once, when it is first paid."""
    record = target.record
    if record.period_key is not None:
        return
    product = ctx.product_from((), record.product_code)
    duration = product.duration if product is not None else None
    expires = paid_at + duration if duration is not None else None
    if record.kind == "usage_pack":
        # Each meter of the pack, as granted (the product's count times the quantity); none
        # when it was paid and refunded before we heard of the payment.
        paid = {meter: 0 if record.status == REFUNDED else count
                for meter, count in record.grants.items()}
        ctx.change(target, None, "purchase paid", period_key="purchase", expires_at=expires)
        for meter, units in paid.items():
            what = "units" if meter == "units" else f"units of {meter}"
            ctx.change(target, "granted", f"{ctx.ev.type}: {units} {what} paid for",
                       units_delta=units - target.record.remaining(meter), meter=meter,
                       balances={**target.record.balances, meter: units})
    else:
        ctx.change(target, "granted", f"{ctx.ev.type}: pass paid for",
                   period_key="purchase", expires_at=expires)


# ---------------------------------------------------------------------------- billing period
def see_period(ctx: Context, target: Target, end: int | None) -> None:
    if end is None:
        return
    ends = time(end)
    record = target.record
    if record.expires_at is None or ends > record.expires_at:
        ctx.change(target, "updated", f"{ctx.ev.type}: period ends {ends.isoformat()}",
                   expires_at=ends)


def grant_period(ctx: Context, target: Target, start: int | None) -> None:
    """Reset a metered subscription's units for a newly paid period, once per period."""
    record = target.record
    if start is None:
        return
    if record.period_key is not None and record.period_key.isdigit() and (
        int(record.period_key) >= start
    ):
        return
    if not record.grants:
        ctx.change(target, "updated", f"{ctx.ev.type}: period paid", period_key=str(start))
        return
    # Units held by requests still in flight come back to this entitlement when those holds
    # settle; the new period's balance of each meter leaves room for them instead of handing
    # them out twice (the entitlement row is locked, so no hold settles meanwhile).
    open_holds = ctx.tx.open_holds(record.subject_ref)
    ctx.change(target, None, "period paid", period_key=str(start))
    for meter, granted in record.grants.items():
        held = sum(units for hold in open_holds if hold.meter == meter
                   for entitlement_id, units in hold.allocations
                   if entitlement_id == record.id)
        fresh = max(granted - held, 0)
        what = "units" if meter == "units" else f"units of {meter}"
        ctx.change(target, "units_reset",
                   f"{ctx.ev.type}: {granted} {what} for the paid period"
                   + (f", {held} of them held by requests in flight" if held else ""),
                   units_delta=fresh - target.record.remaining(meter), meter=meter,
                   balances={**target.record.balances, meter: fresh})


# ---------------------------------------------------------------------------- payment facts
def facts(ctx: Context, payment_intent: str) -> list[tuple[int, keys.Fact]]:
    """The payment's facts in the order of its life: by ``created``, then by rank (a
    dispute's opening before its closing, whatever the event ids), then by event id."""
    found: list[tuple[tuple[int, int, str], keys.Fact]] = []
    for name in keys.FACTS:
        order = ctx.order_of(keys.fact(payment_intent, name))
        if order is not None:
            found.append(((order[0], _FACT_RANK[name], order[1]), name))
    return [(sort_key[0], name) for sort_key, name in sorted(found)]


def apply_payment_facts(ctx: Context, target: Target) -> None:
    """Recompute the refund/dispute state from the facts of the entitlement's current
    payment, in their own order: the same answer whatever order the facts and the payment
    arrived in."""
    record = target.record
    if record.status == REVOKED:
        return
    pi = record.stripe_payment_intent_id
    state: str | None = None
    since: int | None = None  # when the current refund/dispute state began
    refunded_at: int | None = None
    for created, name in facts(ctx, pi) if pi else []:
        if state == REFUNDED:
            break  # a refunded payment stays refunded
        if name == "refunded":
            state, refunded_at = REFUNDED, created
        elif name in ("dispute_open", "dispute_lost"):
            state = DISPUTED
        else:
            state = None
        since = None if state is None else (created if since is None else since)
    set_overlay(ctx, target, state, since, refunded_at)


def underlying_grace(ctx: Context, record: EntitlementRecord) -> datetime | None:
    """The grace a past-due subscription had before a refund or dispute hid it (none known:
    none given, failing closed)."""
    kept = ctx.grace_of(keys.grace(purchase_key(record)))
    if kept is None:
        return record.grace_until
    return time(kept[0]) + ctx.past_due_grace


def set_overlay(ctx: Context, target: Target, state: str | None, since: int | None,
                refunded_at: int | None) -> None:
    record = target.record
    on = record.prior_status is not None
    current = underlying(record)
    reason = f"{ctx.ev.type}: payment {state or 'in good standing'}"
    action = "refunded" if state == REFUNDED else "disputed"
    if state is None or since is None:
        if on:
            grace = underlying_grace(ctx, record) if current == PAST_DUE else None
            ctx.change(target, "dispute_closed", reason, status=current, prior_status=None,
                       grace_until=grace)
        return
    if record.kind == "subscription":
        # No grace: access ends when the money went back (or now, should Stripe's clock run
        # ahead of ours).
        grace = min(time(since), ctx.now)
        if not on or (record.status, record.grace_until) != (PAST_DUE, grace):
            ctx.change(target, action, reason, status=PAST_DUE, grace_until=grace,
                       prior_status=current)
        return
    if record.status != state:
        ctx.change(target, action, reason, status=state, prior_status=current)
    if state == REFUNDED and refunded_at is not None:
        record = target.record
        ended = time(refunded_at)
        if record.kind == "usage_pack" and record.usage_remaining:
            # A full refund zeroes every meter of the pack: its units went back with the money.
            for meter, left in record.balances.items():
                if left:
                    ctx.change(target, "refunded", f"{ctx.ev.type}: refunded units removed",
                               units_delta=-left, meter=meter,
                               balances={**target.record.balances, meter: 0})
        elif record.kind == "time_pass" and (record.expires_at is None
                                             or record.expires_at > ended):
            ctx.change(target, "refunded", f"{ctx.ev.type}: pass ended by refund",
                       expires_at=ended)


def current_payment(ctx: Context, target: Target, payment_intent: str | None,
                    order: Order) -> None:
    """The newest paid invoice's payment is the one refunds and disputes are judged on
    (ordered by the event that named the payment)."""
    key = keys.current_payment(purchase_key(target.record))
    mark = ctx.order_of(key)
    if mark is not None and order <= mark:
        return
    ctx.advance(key, order)
    if target.record.stripe_payment_intent_id != payment_intent:
        ctx.change(target, None, "current payment", stripe_payment_intent_id=payment_intent)
    apply_payment_facts(ctx, target)
