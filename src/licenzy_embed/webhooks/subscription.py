"""``customer.subscription.*``: Stripe's status of a subscription, its plan and its period."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..catalog import Product
from ..entitlement import REVOKED, EntitlementRecord
from ..events import subscription_changed
from . import keys
from .context import Context, Target
from .fields import as_list, integer, metadata, price_ids, stored_id
from .ordering import claim_status, see_period


@dataclass(frozen=True)
class Subscription:
    id: str | None
    status: str | None
    customer: str | None
    metadata: dict[str, Any]
    prices: list[str]
    quantity: int
    period_start: int | None
    period_end: int | None


def read(obj: dict[str, Any]) -> Subscription:
    status = obj.get("status")
    items = as_list(obj.get("items"))
    first = items[0] if items else {}
    # Current API versions keep the period on the item; older ones on the subscription.
    start = integer(first.get("current_period_start"))
    end = integer(first.get("current_period_end"))
    if start is None or end is None:
        start = integer(obj.get("current_period_start"))
        end = integer(obj.get("current_period_end"))
    quantity = integer(first.get("quantity")) or integer(obj.get("quantity")) or 1
    prices = [p for item in items for p in price_ids(item)]
    prices += price_ids(obj)  # very old versions: a single plan on the subscription
    return Subscription(
        id=stored_id(obj.get("id"), "subscription"),
        status=status if isinstance(status, str) else None,
        customer=stored_id(obj.get("customer"), "customer"), metadata=metadata(obj),
        prices=prices, quantity=max(quantity, 1), period_start=start, period_end=end)


def changed(ctx: Context, sub: Subscription) -> None:
    """created, updated, paused, resumed: Stripe's status, newest claim wins."""
    apply(ctx, sub, ended=False)


def deleted(ctx: Context, sub: Subscription) -> None:
    """deleted: ``canceled``, which is final."""
    apply(ctx, sub, ended=True)


def apply(ctx: Context, sub: Subscription, *, ended: bool) -> None:
    if sub.id is None or sub.status is None:
        ctx.unmatched("the subscription has no id or status")
        return
    status = "canceled" if ended else sub.status
    product = ctx.product_from(sub.prices, sub.metadata.get("product_code"))
    target = subscription_target(ctx, sub.id, sub.customer, sub.metadata, product,
                                 sub.quantity)
    if target is None:
        return
    plan(ctx, target, product, sub.quantity)
    applied = claim_status(ctx, target, status, period=sub.period_start)
    see_period(ctx, target, sub.period_end)
    if applied:
        ctx.announce(subscription_changed(
            ended=ended, subscription_id=sub.id, subject_ref=target.record.subject_ref,
            status=status, view=ctx.view(target)))


def subscription_target(ctx: Context, subscription_id: str, customer: str | None,
                        meta: dict[str, Any], product: Product | None,
                        quantity: int) -> Target | None:
    """The subscription's entitlement; created (from the metadata or the customer's subject,
    and a subscription product of the catalog) when this is the first event about it."""
    def create() -> EntitlementRecord | None:
        subject = ctx.subject_from(meta.get("subject_ref"), customer=customer)
        if subject is None:
            ctx.unmatched("no subject matched the subscription")
            return None
        if product is None or product.kind != "subscription":
            ctx.unmatched("no subscription product of the catalog matched its price")
            return None
        return ctx.new_record(subscription_id, subject, product, customer=customer,
                              subscription=subscription_id, quantity=quantity)

    return ctx.target(subscription_id, create)


def plan(ctx: Context, target: Target, product: Product | None, quantity: int) -> None:
    """Follow a plan change (another price of the catalog), newest snapshot wins."""
    record = target.record
    if product is None or product.kind != "subscription" or record.status == REVOKED:
        return
    key = keys.plan(record.stripe_subscription_id or record.id)
    mark = ctx.order_of(key)
    if mark is not None and ctx.ev.order <= mark:
        return
    ctx.advance(key, ctx.ev.order)
    if (record.product_code, record.quantity) == (product.code, quantity):
        return
    # Each meter of the new plan keeps what is left of it (a meter new to the subject starts
    # with the plan's count, as a metered plan over an unmetered one always did); a meter the
    # new plan lacks goes. The next paid period resets them all.
    balances = {meter: record.balances.get(meter, count)
                for meter, count in product.meters.items()}
    ctx.change(target, "updated", f"{ctx.ev.type}: plan {product.code}",
               product_code=product.code, grants=dict(product.meters), balances=balances,
               usage_remaining=None, units_granted=None, quantity=quantity)
