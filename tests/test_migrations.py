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
