"""Failed sign-ins, counted per account and per client to slow down password guessing.

Revision ID: 0008_sign_in_failures
Revises: 0007_idempotency_key_age
"""

import sqlalchemy as sa
from alembic import op

revision = '0008_sign_in_failures'
down_revision = '0007_idempotency_key_age'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client_key", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_failures")),
    )
    for column in ("username", "client_key", "at"):
        op.create_index(op.f(f"ix_sign_in_failures_{column}"), "sign_in_failures", [column])


def downgrade() -> None:
    for column in ("username", "client_key", "at"):
        op.drop_index(op.f(f"ix_sign_in_failures_{column}"), table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
