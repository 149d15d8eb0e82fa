"""Stripe event payloads for the tests, built from Stripe's own example objects.

``data/stripe_fixtures.json`` holds objects of Stripe's OpenAPI ``fixtures3.json`` (MIT, see
``data/LICENSE.stripe-openapi``). Each builder starts from a deep copy of one, sets the fields
an event of the scenario carries, and shapes it like the current API version or an older one:

* current: the billing period on ``items.data[].current_period_*``, an invoice's subscription
  under ``parent.subscription_details``, line prices under ``pricing.price_details``; the
  payment intent is named only by ``invoice_payment.paid`` (:func:`invoice_payment`), or under
  ``payments`` when the invoice was expanded (``expand_payments=True``);
* older: ``current_period_*`` on the subscription, ``invoice.subscription``,
  ``invoice.payment_intent``, line items with ``price`` and ``plan``, ``charge.invoice``.
"""

from __future__ import annotations

import copy
import itertools
import json
import secrets
from pathlib import Path
from typing import Any

from licenzy_embed import Licenzy
from licenzy_embed.testing import sign_payload
from licenzy_embed.webhooks import WebhookResult

_DATA = Path(__file__).parent / "data" / "stripe_fixtures.json"
RESOURCES: dict[str, dict[str, Any]] = json.loads(_DATA.read_text())["resources"]
SHAPES = ("current", "older")
Obj = dict[str, Any]

_counter = itertools.count(1)


def fixture(name: str) -> Obj:
    return copy.deepcopy(RESOURCES[name])


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def event(event_type: str, obj: Obj, *, created: int, event_id: str | None = None,
          livemode: bool = False) -> Obj:
    envelope = fixture("event")
    envelope.update(
        id=event_id or f"evt_{next(_counter):08d}{secrets.token_hex(6)}",
        type=event_type, created=created, livemode=livemode,
        data={"object": obj}, pending_webhooks=1,
    )
    return envelope


def checkout_session(*, session_id: str, mode: str, payment_status: str = "paid",
                     status: str = "complete", customer: str | None = None,
                     client_reference_id: str | None = None,
                     metadata: dict[str, str] | None = None, subscription: str | None = None,
                     payment_intent: str | None = None,
                     line_items: list[tuple[str, int]] | None = None) -> Obj:
    obj = fixture("checkout.session")
    obj.update(
        id=session_id, mode=mode, payment_status=payment_status, status=status,
        customer=customer, client_reference_id=client_reference_id,
        metadata=metadata or {}, subscription=subscription, payment_intent=payment_intent,
        livemode=False,
    )
    if line_items is not None:  # only present when the session was expanded
        items = []
        for price, quantity in line_items:
            item = fixture("line_item")
            item.update(id=new_id("li"), quantity=quantity)
            item["price"] = {**fixture("price"), "id": price}
            item.pop("pricing", None)
            items.append(item)
        obj["line_items"] = {"object": "list", "data": items, "has_more": False}
    return obj


def subscription(*, sub_id: str, status: str, price: str, shape: str,
                 customer: str | None = None, metadata: dict[str, str] | None = None,
                 period: tuple[int, int] = (0, 0), quantity: int = 1,
                 plan_only: bool = False) -> Obj:
    obj = fixture("subscription")
    obj.update(id=sub_id, status=status, customer=customer or new_id("cus"),
               metadata=metadata or {}, livemode=False)
    item = obj["items"]["data"][0]
    item.update(id=new_id("si"), subscription=sub_id, quantity=quantity)
    item["price"]["id"] = "price_not_in_catalog" if plan_only else price
    item["plan"].update(id=price, livemode=False)
    if shape == "current":
        item.update(current_period_start=period[0], current_period_end=period[1])
    else:
        item.pop("current_period_start", None)
        item.pop("current_period_end", None)
        obj.update(current_period_start=period[0], current_period_end=period[1])
    return obj


def invoice(*, sub_id: str | None, price: str, shape: str, period: tuple[int, int],
            paid: bool = True, billing_reason: str = "subscription_cycle",
            customer: str | None = None, sub_metadata: dict[str, str] | None = None,
            payment_intent: str | None = None, amount: int = 2000,
            invoice_id: str | None = None, expand_payments: bool = False,
            proration: bool = False) -> Obj:
    obj = fixture("invoice")
    invoice_id = invoice_id or new_id("in")
    obj.update(
        id=invoice_id, customer=customer or new_id("cus"), billing_reason=billing_reason,
        status="paid" if paid else "open", amount_due=amount,
        amount_paid=amount if paid else 0, amount_remaining=0 if paid else amount,
        livemode=False, created=period[0], attempted=True, attempt_count=1,
    )
    line = obj["lines"]["data"][0]
    line.update(id=new_id("il"), invoice=invoice_id, amount=amount,
                period={"start": period[0], "end": period[1]})
    if shape == "current":
        obj.pop("subscription", None)
        obj["parent"] = {
            "type": "subscription_details", "quote_details": None,
            "subscription_details": {"subscription": sub_id, "metadata": sub_metadata or {}},
        } if sub_id else None
        line["pricing"] = {"type": "price_details", "unit_amount_decimal": str(amount),
                           "price_details": {"price": price, "product": "prod_QXg1hqf4jFNsqG"}}
        line["parent"] = {
            "type": "subscription_item_details", "invoice_item_details": None,
            "subscription_item_details": {"subscription": sub_id, "subscription_item": "si_x",
                                          "proration": proration, "invoice_item": None,
                                          "proration_details": None},
        } if sub_id else line["parent"]
        if payment_intent and expand_payments:
            obj["payments"] = {"object": "list", "has_more": False, "data": [{
                "object": "invoice_payment", "invoice": invoice_id, "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": payment_intent},
            }]}
    else:
        obj.pop("parent", None)
        obj.update(subscription=sub_id, payment_intent=payment_intent,
                   charge=new_id("ch") if payment_intent else None,
                   subscription_details={"metadata": sub_metadata or {}})
        for key in ("parent", "pricing"):
            line.pop(key, None)
        line.update(type="subscription" if sub_id else "invoiceitem", subscription=sub_id,
                    proration=proration,
                    price={**fixture("price"), "id": price},
                    plan={**fixture("plan"), "id": price})
    return obj


def invoice_payment(*, invoice_id: str, payment_intent: str, amount: int = 2000,
                    created: int = 0) -> Obj:
    """The object of ``invoice_payment.paid``: the payment intent that paid an invoice."""
    obj = fixture("invoice_payment")
    obj.update(id=new_id("inpay"), invoice=invoice_id, amount_paid=amount,
               amount_requested=amount, currency="usd", livemode=False, status="paid",
               created=created, payment={"type": "payment_intent",
                                         "payment_intent": payment_intent})
    obj["status_transitions"]["paid_at"] = created
    return obj


def charge(*, payment_intent: str, shape: str, amount: int = 2000, refunded_amount: int = 0,
           customer: str | None = None, invoice_id: str | None = None) -> Obj:
    obj = fixture("charge")
    obj.update(id=new_id("ch"), payment_intent=payment_intent, amount=amount,
               amount_captured=amount, amount_refunded=refunded_amount,
               refunded=refunded_amount >= amount, customer=customer, livemode=False)
    if shape == "older":
        obj["invoice"] = invoice_id
    return obj


def refund(*, payment_intent: str, amount: int, status: str = "succeeded",
           expanded_charge: Obj | None = None) -> Obj:
    obj = fixture("refund")
    obj.update(id=new_id("re"), payment_intent=payment_intent, amount=amount, status=status,
               charge=expanded_charge if expanded_charge is not None else new_id("ch"))
    return obj


def dispute(*, payment_intent: str, status: str, dispute_id: str | None = None) -> Obj:
    obj = fixture("dispute")
    obj.update(id=dispute_id or new_id("du"), payment_intent=payment_intent, status=status,
               livemode=False)
    return obj


def send(lz: Licenzy, envelope: Obj, *, secret: str | None = None) -> WebhookResult:
    """Sign ``envelope`` as Stripe would and hand it to ``handle_webhook``."""
    payload = json.dumps(envelope).encode()
    return lz.handle_webhook(payload, sign_payload(payload, secret or lz.webhook_secrets[0]))
