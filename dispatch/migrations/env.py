"""Alembic environment: runs against the engine handed over by dispatch.db."""

from alembic import context

import dispatch.incidents.models
import dispatch.metrics.models
import dispatch.people.models
import dispatch.sla.models  # noqa: F401
from grids.store import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    # render_as_batch lets ALTER TABLE migrations work on SQLite too.
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
