"""Meters: one balance per (entitlement, meter), and the meter each hold, usage record and
ledger entry is of.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Until now an entitlement had one pool of units, in ``licenzy_entitlements.usage_remaining``
(and ``units_granted``). A product may now carry several meters ("1 000 api_calls and 50
exports a month"), so each balance gets a row of ``licenzy_entitlement_meters``, keyed by
(entitlement_id, meter). The entitlement row keeps the *sum* of its balances in
``usage_remaining``: the access check still reads one indexed row ("a pack is available while
any of its meters has units left" is ``usage_remaining > 0``).

Nothing is lost: every metered entitlement's units become its meter ``units`` (what was
remaining and what each period or purchase grants), every existing hold and usage record is
of meter ``units`` (the column's default), and every ledger entry that moved units names
meter ``units``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

METER = 64


def key(length: int) -> sa.types.TypeEngine[str]:
    """Byte-for-byte identifiers, as in 0001: VARBINARY on MySQL, collation "C" on
    PostgreSQL."""
    return sa.String(length).with_variant(
        mysql.VARBINARY(length * 4), "mysql", "mariadb"
    ).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "licenzy_entitlement_meters",
        sa.Column("entitlement_id", key(128), nullable=False),
        sa.Column("mode", key(8), nullable=False),
        sa.Column("meter", key(METER), nullable=False),
        sa.Column("usage_remaining", sa.BigInteger(), nullable=False),
        sa.Column("units_granted", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("entitlement_id", "meter",
                                name="pk_licenzy_entitlement_meters"),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    op.add_column("licenzy_ledger", sa.Column("meter", sa.String(METER), nullable=True))
    op.add_column("licenzy_holds", sa.Column("meter", sa.String(METER), nullable=False,
                                             server_default="units"))
    op.add_column("licenzy_usage_records", sa.Column("meter", sa.String(METER),
                                                     nullable=False, server_default="units"))
    ent = sa.table("licenzy_entitlements", sa.column("id"), sa.column("mode"),
                   sa.column("usage_remaining"), sa.column("units_granted"))
    metered = sa.or_(ent.c.usage_remaining.is_not(None), ent.c.units_granted.is_not(None))
    op.execute(sa.table(
        "licenzy_entitlement_meters", sa.column("entitlement_id"), sa.column("mode"),
        sa.column("meter"), sa.column("usage_remaining"), sa.column("units_granted"),
    ).insert().from_select(
        ["entitlement_id", "mode", "meter", "usage_remaining", "units_granted"],
        sa.select(ent.c.id, ent.c.mode, sa.literal("units", sa.String()),
                  sa.func.coalesce(ent.c.usage_remaining, sa.literal(0, sa.BigInteger())),
                  ent.c.units_granted)
        .where(metered)))
    # The entitlement row holds the sum of its meters: zero, not NULL, once it has one.
    op.execute(ent.update()
               .where(ent.c.usage_remaining.is_(None), ent.c.units_granted.is_not(None))
               .values(usage_remaining=sa.literal(0, sa.BigInteger())))
    ledger = sa.table("licenzy_ledger", sa.column("meter"), sa.column("units_delta"))
    op.execute(ledger.update().where(ledger.c.units_delta.is_not(None))
               .values(meter=sa.literal("units", sa.String())))


def downgrade() -> None:
    # Lossy for meters other than ``units``: the entitlement row keeps their sum only.
    op.drop_column("licenzy_usage_records", "meter")
    op.drop_column("licenzy_holds", "meter")
    op.drop_column("licenzy_ledger", "meter")
    op.drop_table("licenzy_entitlement_meters")
