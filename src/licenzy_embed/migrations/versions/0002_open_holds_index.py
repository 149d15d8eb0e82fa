"""Index a subject's holds by status, so finding its open holds costs the same after a
million settled ones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Every reserve, spend and denied access check asks for the subject's holds still ``held``
(``open_holds``, ``expired_holds``, ``has_expired_holds``). Until now the only index starting
with the subject was the idempotency key's unique one, (mode, subject_ref, idempotency_key):
the database found the subject's rows with it and then read every hold the subject ever made
to keep the few still held, so a busy subject's spends slowed down with its history.
(mode, subject_ref, status, expires_at) reaches exactly the open holds, expired ones first.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_licenzy_holds_subject_status", "licenzy_holds",
                    ["mode", "subject_ref", "status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_licenzy_holds_subject_status", table_name="licenzy_holds")
