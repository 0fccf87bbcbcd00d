"""Idempotency keys indexed by age, so the clock can forget the old ones cheaply.

Revision ID: 0007_idempotency_key_age
Revises: 0006_directory_revision
"""

from alembic import op

revision = '0007_idempotency_key_age'
down_revision = '0006_directory_revision'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
