"""Event rooms: who may see each event, for live push and replay.

Revision ID: 0003_event_rooms
Revises: 0002_people_incidents
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_event_rooms'
down_revision = '0002_people_incidents'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event_rooms',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['seq'], ['incident_events.seq'], name=op.f('fk_event_rooms_seq_incident_events')),
    sa.PrimaryKeyConstraint('seq', 'room', name=op.f('pk_event_rooms'))
    )
    op.create_index('ix_event_rooms_room_seq', 'event_rooms', ['room', 'seq'])



def downgrade() -> None:
    op.drop_index('ix_event_rooms_room_seq', table_name='event_rooms')
    op.drop_table('event_rooms')
