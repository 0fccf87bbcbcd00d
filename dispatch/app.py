"""The application factory: the one place where griddispatch is assembled."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, g
from sqlalchemy.orm import Session

from dispatch.clock import Clock, ManualClock
from dispatch.db import Database
from dispatch.errors import register_error_handlers
from grids.store import IndexCache

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, then `test_config` on top."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        static_folder=str(STATIC_DIR),
        static_url_path="/static",
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev-only-change-me"),
        # Keep the default database in the instance folder, out of the source tree.
        DATABASE_URL=os.environ.get("DATABASE_URL")
        or f"sqlite:///{Path(app.instance_path) / 'griddispatch.sqlite3'}",
        REDIS_URL=os.environ.get("REDIS_URL") or None,
        GRIDDISPATCH_TZ=os.environ.get("GRIDDISPATCH_TZ", "Asia/Shanghai"),
        LOCATE_TOLERANCE_M=30.0,
        JSON_AS_ASCII=False,
    )
    if test_config:
        app.config.update(test_config)
    app.json.ensure_ascii = False  # names are Chinese; keep them readable in responses

    app.extensions["griddispatch.db"] = Database(app.config["DATABASE_URL"])
    app.extensions["griddispatch.index"] = IndexCache()
    # The test clock only exists when asked for (`--test-clock` or a test); never by default.
    app.extensions["griddispatch.clock"] = (
        app.config.get("CLOCK") or (ManualClock() if app.config.get("TEST_CLOCK") else Clock())
    )
    app.teardown_appcontext(_close_session)
    register_error_handlers(app)

    from dispatch import pages
    from dispatch.api import register_api

    register_api(app)
    app.register_blueprint(pages.bp)
    return app


def database(app: Flask | None = None) -> Database:
    """The Database of this app (the current one by default)."""
    from flask import current_app

    return (app or current_app).extensions["griddispatch.db"]


def clock() -> Clock:
    """The app's clock (a ManualClock under test)."""
    from flask import current_app

    return current_app.extensions["griddispatch.clock"]


def session() -> Session:
    """The request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = database().sessions()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
