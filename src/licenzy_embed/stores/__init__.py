"""Entitlement stores. ``InMemoryStore`` is here; ``SQLAlchemyStore`` lives in
``licenzy_embed.stores.sqlalchemy`` so that importing the package never needs SQLAlchemy."""

from .base import DuplicateKey, Store, StoreTransaction, UnitsConflict
from .memory import InMemoryStore

__all__ = ["DuplicateKey", "InMemoryStore", "Store", "StoreTransaction", "UnitsConflict"]
