"""Stripe webhooks: verified with the SDK, applied exactly once, in any order.

Where each part lives:

* :mod:`.processor` — verify → parse → mode check → one unit of work (record the event id,
  run the handler, flush);
* :mod:`.signature` — the SDK's signature check and :class:`WebhookSecrets`;
* :mod:`.event` — parsing the envelope, :class:`StripeEvent`, :class:`WebhookResult`;
* :mod:`.handlers` — the one table ``event type → (typed reader, handler)``;
* one module per Stripe object, each with its typed reader and its handlers:
  :mod:`.checkout_session`, :mod:`.subscription`, :mod:`.invoice`, :mod:`.invoice_payment`,
  :mod:`.payment` (charges, refunds, disputes);
* :mod:`.ordering` — the rules that make the state independent of delivery order (status
  claims, grace, billing periods, payment facts);
* :mod:`.context` — one event's entitlements, notes and change events inside its transaction;
* :mod:`.keys` — typed builders for the watermark rows those rules keep;
* :mod:`.fields` — reading payload fields, and the rule for ids the store keeps.

**Payload shapes.** Both current API versions (period on ``items.data[].current_period_*``,
an invoice's subscription under ``parent.subscription_details``, line prices under
``pricing.price_details``) and older ones (``current_period_*`` on the subscription,
``invoice.subscription``, ``invoice.payment_intent``, ``plan`` beside ``price``) are read, and
``invoice.payments`` when an invoice was expanded.
"""

from .context import entitlement_id
from .event import StripeEvent, WebhookResult, parse_event
from .handlers import HANDLED_EVENTS, HANDLERS, Handler
from .processor import WebhookProcessor
from .signature import WebhookSecrets

__all__ = [
    "HANDLED_EVENTS",
    "HANDLERS",
    "Handler",
    "StripeEvent",
    "WebhookProcessor",
    "WebhookResult",
    "WebhookSecrets",
    "entitlement_id",
    "parse_event",
]
