"""SLA clock: pause and breach marks on incidents, the worker's schedule and its lease.

Revision ID: 0004_sla
Revises: 0003_event_rooms
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_sla"
down_revision = "0003_event_rooms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pause_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("sla_marks", sa.JSON(), nullable=True))
    op.create_table(
        "sla_watch",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("check_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name=op.f("fk_sla_watch_incident_id_incidents")),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_sla_watch")),
    )
    op.create_index(op.f("ix_sla_watch_check_at"), "sla_watch", ["check_at"])
    op.create_table(
        "worker_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_leases")),
    )


def downgrade() -> None:
    op.drop_table("worker_leases")
    op.drop_index(op.f("ix_sla_watch_check_at"), table_name="sla_watch")
    op.drop_table("sla_watch")
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_column("sla_marks")
        batch_op.drop_column("pause_reason")
        batch_op.drop_column("paused_at")
