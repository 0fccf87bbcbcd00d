"""Alembic migrations: down to nothing and up again on both databases, matching the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from dispatch.db import Database, downgrade_schema, upgrade_schema
from dispatch.people.models import directory_revision
from grids.store import Base


def test_down_to_base_and_up_again_matches_the_models(database_url):
    database = Database(database_url)
    try:
        upgrade_schema(database.engine)
        with database.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
        downgrade_schema(database.engine, "base")
        assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
        upgrade_schema(database.engine)
        with database.session() as session:
            assert directory_revision(session) == 0  # the counter row is made by its migration
    finally:
        database.dispose()


def _second_event_at_the_same_version(session) -> dict:
    """A copy of an incident's last event, at the same version, as a lost update left one."""
    from sqlalchemy import insert, select

    from dispatch.incidents.models import IncidentEvent

    last = session.scalars(select(IncidentEvent).order_by(IncidentEvent.seq.desc()).limit(1)).one()
    row = {c.key: getattr(last, c.key) for c in IncidentEvent.__table__.columns if c.key != "seq"}
    session.execute(insert(IncidentEvent).values(**row))
    return row


def test_the_database_keeps_one_event_per_incident_version(world):
    import pytest
    from sqlalchemy.exc import IntegrityError

    assert world.report().status_code == 201
    db = world.app.extensions["griddispatch.db"]
    with pytest.raises(IntegrityError), db.session() as session:
        _second_event_at_the_same_version(session)

    # A database that already holds such a pair is not upgraded over it: it says which.
    downgrade_schema(db.engine, "0008_sign_in_failures")
    with db.session() as session:
        row = _second_event_at_the_same_version(session)
    with pytest.raises(RuntimeError, match=f"incident {row['incident_id']} version {row['version']}"):
        upgrade_schema(db.engine)
