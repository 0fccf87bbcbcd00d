"""People (users, tokens, grid assignments, shifts, crews) and incidents with their events.

Revision ID: 0002_people_incidents
Revises: 0001_area_tree
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_people_incidents"
down_revision = "0001_area_tree"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_calendar_days")),
    )
    op.create_table(
        "categories",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name_zh", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=64), nullable=False),
        sa.Column("skill", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("needs_crew", sa.Boolean(), nullable=False),
        sa.Column("acknowledge_minutes", sa.Integer(), nullable=False),
        sa.Column("arrive_minutes", sa.Integer(), nullable=False),
        sa.Column("resolve_minutes", sa.Integer(), nullable=False),
        sa.Column("verify_minutes", sa.Integer(), nullable=False),
        sa.Column("clock_kind", sa.String(length=16), nullable=False),
        sa.Column("icon", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_categories")),
    )
    op.create_table(
        "crews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("service_areas", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("position_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idle_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crews")),
        sa.UniqueConstraint("name", name=op.f("uq_crews_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("scope_area_code", sa.String(length=64), nullable=True),
        sa.Column("crew_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["crew_id"], ["crews.id"], name=op.f("fk_users_crew_id_crews")),
        sa.ForeignKeyConstraint(
            ["scope_area_code"], ["areas.code"], name=op.f("fk_users_scope_area_code_areas")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_crew_id"), ["crew_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_role"), ["role"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "duty_desks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("community_code", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_code"], ["areas.code"], name=op.f("fk_duty_desks_community_code_areas")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_duty_desks_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_desks")),
        sa.UniqueConstraint("user_id", "community_code", name=op.f("uq_duty_desks_user_id")),
    )
    with op.batch_alter_table("duty_desks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_duty_desks_community_code"), ["community_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_duty_desks_user_id"), ["user_id"], unique=False)

    op.create_table(
        "grid_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["areas.code"], name=op.f("fk_grid_assignments_grid_code_areas")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_grid_assignments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_assignments")),
        sa.UniqueConstraint("user_id", "grid_code", name=op.f("uq_grid_assignments_user_id")),
    )
    with op.batch_alter_table("grid_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_grid_assignments_grid_code"), ["grid_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_grid_assignments_user_id"), ["user_id"], unique=False)

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("tracking_hash", sa.String(length=64), nullable=False),
        sa.Column("category_code", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("locate_method", sa.String(length=16), nullable=False),
        sa.Column("unit_code", sa.String(length=64), nullable=True),
        sa.Column("building_code", sa.String(length=64), nullable=True),
        sa.Column("grid_code", sa.String(length=64), nullable=True),
        sa.Column("community_code", sa.String(length=64), nullable=True),
        sa.Column("street_code", sa.String(length=64), nullable=True),
        sa.Column("district_code", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("reporter_name", sa.String(length=64), nullable=True),
        sa.Column("reporter_phone", sa.String(length=32), nullable=True),
        sa.Column("reporter_user_id", sa.Integer(), nullable=True),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("manager_id", sa.Integer(), nullable=True),
        sa.Column("crew_id", sa.Integer(), nullable=True),
        sa.Column("recommended_crew_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("sla_state", sa.String(length=8), nullable=False),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("suspected_duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("rework_count", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("en_route_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_site_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledge_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("arrive_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolve_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verify_due", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["categories.code"],
            name=op.f("fk_incidents_category_code_categories"),
        ),
        sa.ForeignKeyConstraint(["crew_id"], ["crews.id"], name=op.f("fk_incidents_crew_id_crews")),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["incidents.id"],
            name=op.f("fk_incidents_duplicate_of_id_incidents"),
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"], ["users.id"], name=op.f("fk_incidents_manager_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["recommended_crew_id"],
            ["crews.id"],
            name=op.f("fk_incidents_recommended_crew_id_crews"),
        ),
        sa.ForeignKeyConstraint(
            ["reporter_user_id"], ["users.id"], name=op.f("fk_incidents_reporter_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["suspected_duplicate_of_id"],
            ["incidents.id"],
            name=op.f("fk_incidents_suspected_duplicate_of_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("public_id", name=op.f("uq_incidents_public_id")),
        sa.UniqueConstraint("tracking_hash", name=op.f("uq_incidents_tracking_hash")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incidents_building_code"), ["building_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incidents_category_code"), ["category_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incidents_client_key"), ["client_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_incidents_community_code"), ["community_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incidents_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_crew_id"), ["crew_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_incidents_district_code"), ["district_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incidents_grid_code"), ["grid_code"], unique=False)
        batch_op.create_index("ix_incidents_lonlat", ["lon", "lat"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_manager_id"), ["manager_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_incidents_reporter_phone"), ["reporter_phone"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incidents_status"), ["status"], unique=False)
        batch_op.create_index("ix_incidents_status_grid", ["status", "grid_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_street_code"), ["street_code"], unique=False)

    op.create_table(
        "on_call_shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("area_code", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_code"], ["areas.code"], name=op.f("fk_on_call_shifts_area_code_areas")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_on_call_shifts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_on_call_shifts")),
    )
    with op.batch_alter_table("on_call_shifts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_on_call_shifts_area_code"), ["area_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_on_call_shifts_starts_at"), ["starts_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_on_call_shifts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "weekly_shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start", sa.Time(), nullable=False),
        sa.Column("end", sa.Time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_weekly_shifts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_shifts")),
    )
    with op.batch_alter_table("weekly_shifts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_weekly_shifts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_idempotency_keys_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "incident_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_incident_events_actor_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_incident_events_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_incident_events")),
    )
    with op.batch_alter_table("incident_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_events_incident_id"), ["incident_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("incident_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_events_incident_id"))

    op.drop_table("incident_events")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("weekly_shifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weekly_shifts_user_id"))

    op.drop_table("weekly_shifts")
    with op.batch_alter_table("on_call_shifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_on_call_shifts_user_id"))
        batch_op.drop_index(batch_op.f("ix_on_call_shifts_starts_at"))
        batch_op.drop_index(batch_op.f("ix_on_call_shifts_area_code"))

    op.drop_table("on_call_shifts")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_street_code"))
        batch_op.drop_index("ix_incidents_status_grid")
        batch_op.drop_index(batch_op.f("ix_incidents_status"))
        batch_op.drop_index(batch_op.f("ix_incidents_reporter_phone"))
        batch_op.drop_index(batch_op.f("ix_incidents_manager_id"))
        batch_op.drop_index("ix_incidents_lonlat")
        batch_op.drop_index(batch_op.f("ix_incidents_grid_code"))
        batch_op.drop_index(batch_op.f("ix_incidents_district_code"))
        batch_op.drop_index(batch_op.f("ix_incidents_crew_id"))
        batch_op.drop_index(batch_op.f("ix_incidents_created_at"))
        batch_op.drop_index(batch_op.f("ix_incidents_community_code"))
        batch_op.drop_index(batch_op.f("ix_incidents_client_key"))
        batch_op.drop_index(batch_op.f("ix_incidents_category_code"))
        batch_op.drop_index(batch_op.f("ix_incidents_building_code"))

    op.drop_table("incidents")
    with op.batch_alter_table("grid_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grid_assignments_user_id"))
        batch_op.drop_index(batch_op.f("ix_grid_assignments_grid_code"))

    op.drop_table("grid_assignments")
    with op.batch_alter_table("duty_desks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_duty_desks_user_id"))
        batch_op.drop_index(batch_op.f("ix_duty_desks_community_code"))

    op.drop_table("duty_desks")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_role"))
        batch_op.drop_index(batch_op.f("ix_users_crew_id"))

    op.drop_table("users")
    op.drop_table("crews")
    op.drop_table("categories")
    op.drop_table("calendar_days")
