"""Test kit for apps using licenzy-embed: a controllable clock, a Stripe simulator that
produces real signed events, and a pytest plugin (``licenzy_embed.testing.pytest_plugin``)."""

from .checkout_page import LocalCheckout
from .clock import FrozenClock
from .simulator import Delivery, DeliveryFailed, StripeSimulator, sign_payload

__all__ = ["Delivery", "DeliveryFailed", "FrozenClock", "LocalCheckout", "StripeSimulator",
           "sign_payload"]
