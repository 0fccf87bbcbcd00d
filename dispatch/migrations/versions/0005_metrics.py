"""Metrics: one fact row per incident and its day, week and month rollups.

Revision ID: 0005_metrics
Revises: 0004_sla
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_metrics'
down_revision = '0004_sla'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('metric_rollups',
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('span', sa.String(length=1), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('grid_code', sa.String(length=64), nullable=False),
    sa.Column('category_code', sa.String(length=32), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=False),
    sa.Column('manager_id', sa.Integer(), nullable=False),
    sa.Column('community_code', sa.String(length=64), nullable=False),
    sa.Column('street_code', sa.String(length=64), nullable=False),
    sa.Column('district_code', sa.String(length=64), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('closed', sa.Integer(), nullable=False),
    sa.Column('resolved', sa.Integer(), nullable=False),
    sa.Column('reworked', sa.Integer(), nullable=False),
    sa.Column('rated', sa.Integer(), nullable=False),
    sa.Column('satisfied', sa.Integer(), nullable=False),
    sa.Column('first_fix', sa.Integer(), nullable=False),
    sa.Column('acknowledge_n', sa.Integer(), nullable=False),
    sa.Column('acknowledge_sum', sa.BigInteger(), nullable=False),
    sa.Column('acknowledge_due_n', sa.Integer(), nullable=False),
    sa.Column('acknowledge_on_time', sa.Integer(), nullable=False),
    sa.Column('arrive_n', sa.Integer(), nullable=False),
    sa.Column('arrive_sum', sa.BigInteger(), nullable=False),
    sa.Column('arrive_due_n', sa.Integer(), nullable=False),
    sa.Column('arrive_on_time', sa.Integer(), nullable=False),
    sa.Column('resolve_n', sa.Integer(), nullable=False),
    sa.Column('resolve_sum', sa.BigInteger(), nullable=False),
    sa.Column('resolve_due_n', sa.Integer(), nullable=False),
    sa.Column('resolve_on_time', sa.Integer(), nullable=False),
    sa.Column('verify_n', sa.Integer(), nullable=False),
    sa.Column('verify_sum', sa.BigInteger(), nullable=False),
    sa.Column('verify_due_n', sa.Integer(), nullable=False),
    sa.Column('verify_on_time', sa.Integer(), nullable=False),
    sa.Column('histogram', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'span', 'period', 'grid_code', 'category_code', 'crew_id', 'manager_id', name=op.f('pk_metric_rollups'))
    )
    op.create_table('metric_facts',
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('grid_code', sa.String(length=64), nullable=False),
    sa.Column('community_code', sa.String(length=64), nullable=False),
    sa.Column('street_code', sa.String(length=64), nullable=False),
    sa.Column('district_code', sa.String(length=64), nullable=False),
    sa.Column('category_code', sa.String(length=32), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=False),
    sa.Column('manager_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('acknowledge_s', sa.Integer(), nullable=True),
    sa.Column('arrive_s', sa.Integer(), nullable=True),
    sa.Column('resolve_s', sa.Integer(), nullable=True),
    sa.Column('verify_s', sa.Integer(), nullable=True),
    sa.Column('acknowledge_on_time', sa.Boolean(), nullable=True),
    sa.Column('arrive_on_time', sa.Boolean(), nullable=True),
    sa.Column('resolve_on_time', sa.Boolean(), nullable=True),
    sa.Column('verify_on_time', sa.Boolean(), nullable=True),
    sa.Column('resolved_ever', sa.Boolean(), nullable=False),
    sa.Column('rework_count', sa.Integer(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_metric_facts_incident_id_incidents')),
    sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_metric_facts'))
    )
    with op.batch_alter_table('metric_facts', schema=None) as batch_op:
        batch_op.create_index('ix_metric_facts_day_grid', ['day', 'grid_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('metric_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_metric_facts_day_grid')

    op.drop_table('metric_facts')
    op.drop_table('metric_rollups')
