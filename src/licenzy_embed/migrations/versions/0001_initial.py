"""The licenzy tables: entitlements, ledger, usage records, holds, processed events,
watermarks, checkout attempts and customers.

Revision ID: 0001
Revises:
Create Date: 2026-03-01

Column types are spelled out per backend here rather than imported from the store's schema
module, so that this revision creates the same tables whatever later versions change there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

REF = 255
ID = 128
MODE = 8
MYSQL_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def key(length: int) -> sa.types.TypeEngine[str]:
    """Byte-for-byte identifiers: VARBINARY on MySQL, collation "C" on PostgreSQL."""
    return sa.String(length).with_variant(
        mysql.VARBINARY(length * 4), "mysql", "mariadb"
    ).with_variant(sa.String(length, collation="C"), "postgresql")


def instant() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(
        mysql.DATETIME(fsp=6), "mysql", "mariadb"
    ).with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


def mode() -> sa.Column[str]:
    return sa.Column("mode", key(MODE), nullable=False)


def upgrade() -> None:
    op.create_table(
        "licenzy_entitlements",
        sa.Column("id", key(ID), nullable=False),
        mode(),
        sa.Column("subject_ref", key(REF), nullable=False),
        sa.Column("product_code", key(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.Column("updated_at", instant(), nullable=False),
        sa.Column("usage_remaining", sa.BigInteger(), nullable=True),
        sa.Column("units_granted", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", instant(), nullable=True),
        sa.Column("grace_until", instant(), nullable=True),
        sa.Column("prior_status", sa.String(32), nullable=True),
        sa.Column("period_key", sa.String(REF), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("stripe_customer_id", key(REF), nullable=True),
        sa.Column("stripe_subscription_id", key(REF), nullable=True),
        sa.Column("stripe_checkout_session_id", key(REF), nullable=True),
        sa.Column("stripe_payment_intent_id", key(REF), nullable=True),
        sa.Column("access_open", sa.Boolean(), nullable=False),
        sa.Column("access_until", instant(), nullable=True),
        sa.Column("requires_units", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_licenzy_entitlements"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_licenzy_entitlements_subject", "licenzy_entitlements",
                    ["mode", "subject_ref"])
    op.create_index("ix_licenzy_entitlements_subscription", "licenzy_entitlements",
                    ["mode", "stripe_subscription_id"])
    op.create_index("ix_licenzy_entitlements_checkout", "licenzy_entitlements",
                    ["mode", "stripe_checkout_session_id"])
    op.create_index("ix_licenzy_entitlements_payment_intent", "licenzy_entitlements",
                    ["mode", "stripe_payment_intent_id"])

    op.create_table(
        "licenzy_ledger",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False, autoincrement=True),
        sa.Column("id", key(ID), nullable=False),
        mode(),
        sa.Column("subject_ref", key(REF), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", instant(), nullable=False),
        sa.Column("entitlement_id", key(ID), nullable=True),
        sa.Column("units_delta", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_licenzy_ledger"),
        sa.UniqueConstraint("id", name="uq_licenzy_ledger_id"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_licenzy_ledger_subject", "licenzy_ledger",
                    ["mode", "subject_ref", "seq"])

    op.create_table(
        "licenzy_usage_records",
        mode(),
        sa.Column("subject_ref", key(REF), nullable=False),
        sa.Column("idempotency_key", key(REF), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("allocations", sa.Text(), nullable=False),
        sa.Column("usage_remaining", sa.BigInteger(), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.PrimaryKeyConstraint("mode", "subject_ref", "idempotency_key",
                                name="pk_licenzy_usage_records"),
        **MYSQL_OPTIONS,
    )

    op.create_table(
        "licenzy_holds",
        sa.Column("id", key(ID), nullable=False),
        mode(),
        sa.Column("subject_ref", key(REF), nullable=False),
        sa.Column("idempotency_key", key(REF), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("allocations", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.Column("expires_at", instant(), nullable=False),
        sa.Column("committed_units", sa.BigInteger(), nullable=True),
        sa.Column("settled_at", instant(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_licenzy_holds"),
        sa.UniqueConstraint("mode", "subject_ref", "idempotency_key",
                            name="uq_licenzy_holds_key"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_licenzy_holds_expiry", "licenzy_holds",
                    ["mode", "status", "expires_at"])

    op.create_table(
        "licenzy_processed_events",
        mode(),
        sa.Column("event_id", key(REF), nullable=False),
        sa.Column("event_type", sa.String(REF), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("object_id", key(REF), nullable=True),
        sa.Column("event_created", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", instant(), nullable=False),
        sa.Column("subject_ref", key(REF), nullable=True),
        sa.PrimaryKeyConstraint("mode", "event_id", name="pk_licenzy_processed_events"),
        **MYSQL_OPTIONS,
    )

    op.create_table(
        "licenzy_watermarks",
        mode(),
        sa.Column("object_id", key(REF), nullable=False),
        sa.Column("event_created", sa.BigInteger(), nullable=False),
        sa.Column("event_id", key(REF), nullable=False),
        sa.PrimaryKeyConstraint("mode", "object_id", name="pk_licenzy_watermarks"),
        **MYSQL_OPTIONS,
    )

    op.create_table(
        "licenzy_checkout_attempts",
        sa.Column("id", key(ID), nullable=False),
        mode(),
        sa.Column("subject_ref", key(REF), nullable=False),
        sa.Column("product_code", key(64), nullable=False),
        sa.Column("idempotency_key", key(REF), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stripe_session_id", key(REF), nullable=False),
        sa.Column("checkout_url", sa.Text(), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.Column("updated_at", instant(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_licenzy_checkout_attempts"),
        sa.UniqueConstraint("mode", "idempotency_key",
                            name="uq_licenzy_checkout_attempts_key"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_licenzy_checkout_attempts_session", "licenzy_checkout_attempts",
                    ["mode", "stripe_session_id"])

    op.create_table(
        "licenzy_customers",
        mode(),
        sa.Column("subject_ref", key(REF), nullable=False),
        sa.Column("stripe_customer_id", key(REF), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.PrimaryKeyConstraint("mode", "subject_ref", name="pk_licenzy_customers"),
        sa.UniqueConstraint("mode", "stripe_customer_id",
                            name="uq_licenzy_customers_stripe_id"),
        **MYSQL_OPTIONS,
    )


def downgrade() -> None:
    for table in ("licenzy_customers", "licenzy_checkout_attempts", "licenzy_watermarks",
                  "licenzy_processed_events", "licenzy_holds", "licenzy_usage_records",
                  "licenzy_ledger", "licenzy_entitlements"):
        op.drop_table(table)
