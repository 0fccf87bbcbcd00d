"""Directory revision: moves with every change to who works where and when.

Revision ID: 0006_directory_revision
Revises: 0005_metrics
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_directory_revision'
down_revision = '0005_metrics'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('directory_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_revision'))
    )
    op.bulk_insert(table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table('directory_revision')
