"""The SQL tables of :class:`~licenzy_embed.stores.sqlalchemy.SQLAlchemyStore`.

The migrations in ``licenzy_embed/migrations`` create exactly these tables (a test compares
them); this module is what the store queries with and what ``compare_metadata`` checks against.

Two column types carry the portability decisions:

* :class:`Key` — identifiers compared for equality (subject refs, idempotency keys, Stripe
  ids). They must compare byte for byte on every backend: MariaDB's default collations are
  case- and trailing-space-insensitive, so ``"Alice"`` and ``"alice "`` would share one
  idempotency record there. MySQL stores them as ``VARBINARY`` (4 bytes per character, the
  utf8mb4 worst case, which keeps every composite key under InnoDB's 3072-byte limit);
  PostgreSQL uses the ``"C"`` collation so ordering matches Python's.
* :class:`UTCDateTime` — always handed back as an aware UTC datetime, stored with
  microseconds (``DATETIME(6)`` on MySQL, ``timestamptz`` on PostgreSQL, ISO text on SQLite,
  where lexicographic order is chronological order).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from ..clock import aware

PREFIX = "licenzy_"
VERSION_TABLE = "licenzy_alembic_version"  # not the app's own alembic_version


class Key(TypeDecorator[str]):
    """A string identifier compared byte for byte (see the module docstring)."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARBINARY(self.length * 4))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(String(self.length, collation="C"))
        return dialect.type_descriptor(String(self.length))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str) and dialect.name in ("mysql", "mariadb"):
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8")
        return value  # type: ignore[no-any-return]


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: stored in UTC, returned aware (naive input is taken as UTC)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        utc = aware(value)
        if dialect.name == "postgresql":
            return utc
        return utc.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite without declared type affinity
            value = datetime.fromisoformat(value)
        return aware(value) if value.tzinfo else value.replace(tzinfo=timezone.utc)


# BIGINT everywhere (units go up to 10**12), but SQLite only makes an autoincrementing rowid
# alias out of a column declared exactly INTEGER PRIMARY KEY.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

ID = 128  # our ids are ~36 characters; room for ids an app brings itself
REF = 255  # subject refs, idempotency keys, Stripe ids
MODE = 8
METER = 64  # feature and meter names: [a-z0-9][a-z0-9_.:-]{0,63}

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
})


# Row locks and transactions need InnoDB; free text (reasons, URLs) needs utf8mb4 even on a
# server whose default character set is still latin1.
MYSQL_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _mode() -> Column[str]:
    return Column("mode", Key(MODE), nullable=False)


entitlements = Table(
    "licenzy_entitlements", metadata,
    Column("id", Key(ID), nullable=False),
    _mode(),
    Column("subject_ref", Key(REF), nullable=False),
    Column("product_code", Key(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("source", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("usage_remaining", BigInteger(), nullable=True),
    Column("units_granted", BigInteger(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("grace_until", UTCDateTime(), nullable=True),
    Column("prior_status", String(32), nullable=True),
    Column("period_key", String(REF), nullable=True),
    Column("quantity", Integer(), nullable=False),
    Column("stripe_customer_id", Key(REF), nullable=True),
    Column("stripe_subscription_id", Key(REF), nullable=True),
    Column("stripe_checkout_session_id", Key(REF), nullable=True),
    Column("stripe_payment_intent_id", Key(REF), nullable=True),
    # Derived from status/kind/dates by entitlement.derive_access: the access check reads
    # only these, so it is one indexed query that needs no Python rules.
    Column("access_open", Boolean(), nullable=False),
    Column("access_until", UTCDateTime(), nullable=True),
    Column("requires_units", Boolean(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_licenzy_entitlements"),
    Index("ix_licenzy_entitlements_subject", "mode", "subject_ref"),
    Index("ix_licenzy_entitlements_subscription", "mode", "stripe_subscription_id"),
    Index("ix_licenzy_entitlements_checkout", "mode", "stripe_checkout_session_id"),
    Index("ix_licenzy_entitlements_payment_intent", "mode", "stripe_payment_intent_id"),
    **MYSQL_OPTIONS,
)

# One balance per (entitlement, meter) (migration 0003). The entitlement row keeps their sum in
# ``usage_remaining`` (and of the grants in ``units_granted``), written in the same
# transaction, so that "a pack is available while any meter has units" stays one indexed read
# of the entitlements table; a feature check that names a meter adds an EXISTS on this
# table's primary key.
entitlement_meters = Table(
    "licenzy_entitlement_meters", metadata,
    Column("entitlement_id", Key(ID), nullable=False),
    _mode(),
    Column("meter", Key(METER), nullable=False),
    Column("usage_remaining", BigInteger(), nullable=False),
    Column("units_granted", BigInteger(), nullable=True),
    PrimaryKeyConstraint("entitlement_id", "meter", name="pk_licenzy_entitlement_meters"),
    **MYSQL_OPTIONS,
)

ledger = Table(
    "licenzy_ledger", metadata,
    # Insertion order is the ledger's order: several entries of one transaction share ``at``.
    Column("seq", SeqType, nullable=False, autoincrement=True),
    Column("id", Key(ID), nullable=False),
    _mode(),
    Column("subject_ref", Key(REF), nullable=False),
    Column("action", String(32), nullable=False),
    Column("source", String(16), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("entitlement_id", Key(ID), nullable=True),
    Column("units_delta", BigInteger(), nullable=True),
    Column("status", String(32), nullable=True),
    Column("reference", Text(), nullable=True),
    Column("meter", String(METER), nullable=True),  # migration 0003
    PrimaryKeyConstraint("seq", name="pk_licenzy_ledger"),
    UniqueConstraint("id", name="uq_licenzy_ledger_id"),
    Index("ix_licenzy_ledger_subject", "mode", "subject_ref", "seq"),
    **MYSQL_OPTIONS,
)

usage_records = Table(
    "licenzy_usage_records", metadata,
    _mode(),
    Column("subject_ref", Key(REF), nullable=False),
    Column("idempotency_key", Key(REF), nullable=False),
    Column("units", BigInteger(), nullable=False),
    Column("allocations", Text(), nullable=False),  # JSON [[entitlement_id, units], ...]
    Column("usage_remaining", BigInteger(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("meter", String(METER), nullable=False, server_default="units"),  # migration 0003
    PrimaryKeyConstraint("mode", "subject_ref", "idempotency_key",
                         name="pk_licenzy_usage_records"),
    **MYSQL_OPTIONS,
)

holds = Table(
    "licenzy_holds", metadata,
    Column("id", Key(ID), nullable=False),
    _mode(),
    Column("subject_ref", Key(REF), nullable=False),
    Column("idempotency_key", Key(REF), nullable=False),
    Column("units", BigInteger(), nullable=False),
    Column("allocations", Text(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("committed_units", BigInteger(), nullable=True),
    Column("settled_at", UTCDateTime(), nullable=True),
    Column("meter", String(METER), nullable=False, server_default="units"),  # migration 0003
    PrimaryKeyConstraint("id", name="pk_licenzy_holds"),
    UniqueConstraint("mode", "subject_ref", "idempotency_key", name="uq_licenzy_holds_key"),
    Index("ix_licenzy_holds_expiry", "mode", "status", "expires_at"),
    # A subject's open holds without reading its settled ones (migration 0002).
    Index("ix_licenzy_holds_subject_status", "mode", "subject_ref", "status", "expires_at"),
    **MYSQL_OPTIONS,
)

processed_events = Table(
    "licenzy_processed_events", metadata,
    _mode(),
    Column("event_id", Key(REF), nullable=False),
    Column("event_type", String(REF), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("object_id", Key(REF), nullable=True),
    Column("event_created", BigInteger(), nullable=False),
    Column("processed_at", UTCDateTime(), nullable=False),
    Column("subject_ref", Key(REF), nullable=True),
    PrimaryKeyConstraint("mode", "event_id", name="pk_licenzy_processed_events"),
    **MYSQL_OPTIONS,
)

watermarks = Table(
    "licenzy_watermarks", metadata,
    _mode(),
    Column("object_id", Key(REF), nullable=False),
    Column("event_created", BigInteger(), nullable=False),
    Column("event_id", Key(REF), nullable=False),
    PrimaryKeyConstraint("mode", "object_id", name="pk_licenzy_watermarks"),
    **MYSQL_OPTIONS,
)

checkout_attempts = Table(
    "licenzy_checkout_attempts", metadata,
    Column("id", Key(ID), nullable=False),
    _mode(),
    Column("subject_ref", Key(REF), nullable=False),
    Column("product_code", Key(64), nullable=False),
    Column("idempotency_key", Key(REF), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("stripe_session_id", Key(REF), nullable=False),
    Column("checkout_url", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", name="pk_licenzy_checkout_attempts"),
    UniqueConstraint("mode", "idempotency_key", name="uq_licenzy_checkout_attempts_key"),
    Index("ix_licenzy_checkout_attempts_session", "mode", "stripe_session_id"),
    **MYSQL_OPTIONS,
)

customers = Table(
    "licenzy_customers", metadata,
    _mode(),
    Column("subject_ref", Key(REF), nullable=False),
    Column("stripe_customer_id", Key(REF), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("mode", "subject_ref", name="pk_licenzy_customers"),
    UniqueConstraint("mode", "stripe_customer_id", name="uq_licenzy_customers_stripe_id"),
    **MYSQL_OPTIONS,
)

# Change events, written in the transaction of their change (migration 0004; see outbox.py).
outbox = Table(
    "licenzy_outbox", metadata,
    Column("seq", SeqType, nullable=False, autoincrement=True),  # commit order, for listing
    Column("id", Key(ID), nullable=False),
    _mode(),
    Column("type", String(64), nullable=False),
    Column("data", Text(), nullable=False),  # JSON
    Column("created_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("delivered_to", Text(), nullable=False),  # JSON list of callback names
    Column("delivered_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("seq", name="pk_licenzy_outbox"),
    UniqueConstraint("id", name="uq_licenzy_outbox_id"),
    # What deliver_pending_events reads: the due pending rows, and nothing else.
    Index("ix_licenzy_outbox_due", "mode", "status", "next_attempt_at"),
    **MYSQL_OPTIONS,
)

TABLES = tuple(metadata.sorted_tables)
