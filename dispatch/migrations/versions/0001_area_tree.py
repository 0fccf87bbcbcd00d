"""The area tree: districts down to units, with geometry and bounding box.

Revision ID: 0001_area_tree
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_area_tree"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("parent_code", sa.String(length=64), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("geom_wkb", sa.LargeBinary(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["areas.code"], name=op.f("fk_areas_parent_code_areas")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_areas")),
        sa.UniqueConstraint("code", name=op.f("uq_areas_code")),
    )
    op.create_index(op.f("ix_areas_level"), "areas", ["level"])
    op.create_index(op.f("ix_areas_parent_code"), "areas", ["parent_code"])
    op.create_index("ix_areas_bbox", "areas", ["level", "min_lon", "max_lon", "min_lat", "max_lat"])
    op.create_table(
        "area_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_area_revision")),
    )


def downgrade() -> None:
    op.drop_table("area_revision")
    op.drop_index("ix_areas_bbox", table_name="areas")
    op.drop_index(op.f("ix_areas_parent_code"), table_name="areas")
    op.drop_index(op.f("ix_areas_level"), table_name="areas")
    op.drop_table("areas")
