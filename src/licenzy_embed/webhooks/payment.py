"""``charge.refunded``, ``refund.created|updated``, ``charge.dispute.created|closed``: facts
about one payment intent (see :mod:`.ordering`), remembered even before its purchase arrives.

A full refund is final; a dispute's closing decides it (won: what it took is given back,
lost: it is kept). A partial refund is recorded in the ledger and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import keys
from .context import Context
from .fields import as_dict, integer, stored_id
from .ordering import apply_payment_facts

_DISPUTE_WON = frozenset({"won", "warning_closed", "prevented"})


def _payment_intent_of(obj: dict[str, Any]) -> str | None:
    """The payment intent a charge, refund or dispute belongs to."""
    return (stored_id(obj.get("payment_intent"), "payment intent")
            or stored_id(as_dict(obj.get("charge")).get("payment_intent"), "payment intent"))


@dataclass(frozen=True)
class Refund:
    """A refunded charge or a refund object: whether it shows the whole payment went back."""

    payment_intent: str | None
    full: bool
    status: Any


def read_charge(obj: dict[str, Any]) -> Refund:
    amount, refunded = integer(obj.get("amount")), integer(obj.get("amount_refunded"))
    full = obj.get("refunded") is True or (
        amount is not None and refunded is not None and refunded >= amount > 0)
    return Refund(_payment_intent_of(obj), full, obj.get("status"))


def read_refund(obj: dict[str, Any]) -> Refund:
    charge = as_dict(obj.get("charge"))  # only when the charge was expanded
    amount = integer(charge.get("amount"))
    full = obj.get("status") in ("succeeded", "pending") and (
        charge.get("refunded") is True
        or (amount is not None and (integer(obj.get("amount")) or 0) >= amount > 0))
    return Refund(_payment_intent_of(obj), full, obj.get("status"))


@dataclass(frozen=True)
class Dispute:
    payment_intent: str | None
    won: bool


def read_dispute(obj: dict[str, Any]) -> Dispute:
    return Dispute(_payment_intent_of(obj), obj.get("status") in _DISPUTE_WON)


def charge_refunded(ctx: Context, refund: Refund) -> None:
    if refund.full:
        fact(ctx, refund.payment_intent, "refunded")
        return
    partial(ctx, refund)


def refund_changed(ctx: Context, refund: Refund) -> None:
    """refund.created, refund.updated: full only when the expanded charge shows it."""
    if refund.full:
        fact(ctx, refund.payment_intent, "refunded")
        return
    if refund.status in ("failed", "canceled"):
        ctx.note(f"a {refund.status} refund changes nothing")
        return
    partial(ctx, refund)


def partial(ctx: Context, refund: Refund) -> None:
    pi = refund.payment_intent
    target = ctx.payment_target(pi) if pi else None
    ctx.note("a partial refund (or one whose size the event does not show) changes "
             "nothing; charge.refunded tells a full one")
    if target is not None:
        target.ledger.append(("refund_recorded", f"{ctx.ev.type}: refund recorded, "
                              "entitlement unchanged", None, None))


def dispute_created(ctx: Context, dispute: Dispute) -> None:
    fact(ctx, dispute.payment_intent, "dispute_open")


def dispute_closed(ctx: Context, dispute: Dispute) -> None:
    fact(ctx, dispute.payment_intent, "dispute_won" if dispute.won else "dispute_lost")


def fact(ctx: Context, payment_intent: str | None, name: keys.Fact) -> None:
    """Remember the fact (ordered by its own time, so a late copy of a dispute's opening
    cannot undo its closing) and recompute the state of the purchase it paid, if known."""
    if payment_intent is None:
        ctx.unmatched("the payment has no payment intent to match")
        return
    # The payment intent's lock first: a purchase being created for it right now (its
    # checkout, or the invoice payment linking it to a subscription) takes it too, so one of
    # the two always sees what the other wrote.
    ctx.lock(payment_intent)
    target = ctx.payment_target(payment_intent)
    key = keys.fact(payment_intent, name)
    if not (ctx.ev.claim and ctx.order_of(key) is not None):
        # A re-read refund already known keeps the time it happened: dated anew at each
        # reconcile, it would move a refunded subscription's end every run.
        ctx.advance(key, ctx.ev.order)
    what = name.replace("_", " ")
    if target is None:
        ctx.note(f"no entitlement is paid by {payment_intent} yet; the {what} applies when "
                 "its purchase arrives")
        return
    apply_payment_facts(ctx, target)
    if not target.changed:
        ctx.note(f"the {what} changes nothing: newer refund or dispute events of "
                 f"{payment_intent} already decided its state")
