"""licenzy-embed: Stripe payment → entitlement → access, inside your app.

The core in this package never imports a web framework; adapters live in
``licenzy_embed.integrations.{flask,django,asgi}``.
"""

from .access import AccessDecision, CustomerAccess
from .catalog import Catalog, Product
from .entitlement import Entitlement
from .errors import (
    AccessDenied,
    EntitlementNotFound,
    EventNotFound,
    IdempotencyConflict,
    InsufficientUsage,
    InvalidPayload,
    InvalidRequest,
    InvalidSignature,
    LicenzyError,
    ModeMismatch,
    PaymentProviderError,
    ReservationExpired,
    StoreUnavailable,
    Unauthenticated,
    UnknownProduct,
)
from .events import ChangeEvent
from .ledger import LedgerEntry
from .licenzy import Licenzy
from .stores import InMemoryStore, Store
from .usage import Reservation, UsageResult

__version__ = "0.1.0"

__all__ = [
    "AccessDecision",
    "AccessDenied",
    "Catalog",
    "ChangeEvent",
    "CustomerAccess",
    "Entitlement",
    "EntitlementNotFound",
    "EventNotFound",
    "IdempotencyConflict",
    "InMemoryStore",
    "InsufficientUsage",
    "InvalidPayload",
    "InvalidRequest",
    "InvalidSignature",
    "LedgerEntry",
    "Licenzy",
    "LicenzyError",
    "ModeMismatch",
    "PaymentProviderError",
    "Product",
    "Reservation",
    "ReservationExpired",
    "Store",
    "StoreUnavailable",
    "Unauthenticated",
    "UnknownProduct",
    "UsageResult",
]
