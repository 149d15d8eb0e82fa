"""The outbox: change events written in the transaction of their change, delivered after
commit and retried until every callback took them.

Revision ID: 0004
Revises: 0003 (meters)
Create Date: 2026-12-01

Until now change events lived in memory between a commit and their callbacks, so a process
dying in between lost them. Each event is now a row of ``licenzy_outbox`` with its stable id;
``(mode, status, next_attempt_at)`` is the one index ``deliver_pending_events`` reads, so a
periodic job that finds nothing due costs one indexed lookup however many events were
delivered before.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

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


def upgrade() -> None:
    op.create_table(
        "licenzy_outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False, autoincrement=True),
        sa.Column("id", key(ID), nullable=False),
        sa.Column("mode", key(MODE), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", instant(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_to", sa.Text(), nullable=False),
        sa.Column("delivered_at", instant(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_licenzy_outbox"),
        sa.UniqueConstraint("id", name="uq_licenzy_outbox_id"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_licenzy_outbox_due", "licenzy_outbox",
                    ["mode", "status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_licenzy_outbox_due", table_name="licenzy_outbox")
    op.drop_table("licenzy_outbox")
