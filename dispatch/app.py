"""The application factory: the one place where griddispatch is assembled."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, Response, g, has_request_context, request
from sqlalchemy.orm import Session

from dispatch.clock import Clock, ManualClock
from dispatch.db import Database
from dispatch.errors import register_error_handlers
from dispatch.live import Notifier
from dispatch.people.roster import RosterCache
from grids.store import IndexCache

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class ConfigError(ValueError):
    """A setting from the environment that cannot be used; the message names it."""


def _env_number(name: str, default: float, kind: type) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number{' (whole)' if kind is int else ''}, got {raw!r}") from None
    low = 0 if kind is int else 1e-3  # a count may be 0; a period of 0 s would spin
    if not low <= value < float("inf"):
        raise ConfigError(f"{name} must be at least {low} and finite, got {raw!r}")
    return value


def _check_time_zone(name: str) -> None:
    """Refuse a time zone that does not exist at start, not at the first report: every
    deadline, shift and day of the metrics is read in it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, "Asia"
        raise ConfigError(f"GRIDDISPATCH_TZ: unknown time zone {name!r} (an IANA name, e.g. Asia/Shanghai)") from None


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
        GRIDDISPATCH_TZ=os.environ.get("GRIDDISPATCH_TZ") or "Asia/Shanghai",
        # Optional background tiles for the maps; without them the maps are plain vectors.
        TILE_URL=os.environ.get("GRIDDISPATCH_TILE_URL") or None,
        TILE_ATTRIBUTION=os.environ.get("GRIDDISPATCH_TILE_ATTRIBUTION") or None,
        LOCATE_TOLERANCE_M=30.0,
        # Live push reads the event log at least this often, even with no wake-up from Redis.
        LIVE_POLL_SECONDS=_env_number("GRIDDISPATCH_LIVE_POLL_SECONDS", 0.5, float),
        # How soon a live socket is told that its sign-in ended or its rooms changed.
        LIVE_SIGNIN_CHECK_SECONDS=_env_number("GRIDDISPATCH_LIVE_SIGNIN_CHECK_SECONDS", 5.0, float),
        JSON_AS_ASCII=False,
        # Reverse proxies in front of the server (nginx, a load balancer) whose
        # X-Forwarded-For is to be believed. With 0 it is ignored, so nobody can spoof it; behind
        # a proxy, leaving it 0 makes every resident one client to the anonymous rate limit.
        TRUSTED_PROXIES=_env_number("GRIDDISPATCH_TRUSTED_PROXIES", 0, int),
        # The largest body any route needs is a few KB (maps are imported with the CLI): a
        # bigger one is refused with a 413 before it is read into memory.
        MAX_CONTENT_LENGTH=1024 * 1024,
        # `griddispatch bench intake` only: a bare /bench/echo route as the same-stack baseline.
        BENCH_BASELINE_ROUTE=os.environ.get("GRIDDISPATCH_BENCH_BASELINE_ROUTE") == "1",
    )
    if test_config:
        app.config.update(test_config)
    _check_time_zone(app.config["GRIDDISPATCH_TZ"])
    app.json.ensure_ascii = False  # names are Chinese; keep them readable in responses
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    app.extensions["griddispatch.db"] = Database(app.config["DATABASE_URL"])
    # Every process that commits incident events wakes the live tailers (dispatch.live).
    app.extensions["griddispatch.notifier"] = Notifier(app.config["REDIS_URL"])
    app.extensions["griddispatch.notifier"].watch(app.extensions["griddispatch.db"].sessions)
    app.extensions["griddispatch.index"] = IndexCache()
    app.extensions["griddispatch.roster"] = RosterCache()
    # The test clock only exists when asked for (`--test-clock` or a test); never by default.
    app.extensions["griddispatch.clock"] = (
        app.config.get("CLOCK") or (ManualClock() if app.config.get("TEST_CLOCK") else Clock())
    )
    app.teardown_appcontext(_close_session)
    app.after_request(_no_content_has_no_type)
    register_error_handlers(app)

    from dispatch import pages
    from dispatch.api import register_api

    register_api(app)
    if app.config.get("TEST_CLOCK"):  # SLA: the test clock route exists only when asked for
        from dispatch.api import testclock
        app.register_blueprint(testclock.bp, url_prefix="/api/v1")
    app.register_blueprint(pages.bp)
    if app.config.get("BENCH_BASELINE_ROUTE"):  # off by default; outside /api/v1
        from dispatch.bench.baseline_server import register_echo
        register_echo(app)
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
    """The request's session, opened on first use and closed when the request ends. A GET
    only reads (on SQLite its session cannot write), so it waits for no writer."""
    if "db_session" not in g:
        db = database()
        reads_only = has_request_context() and request.method in ("GET", "HEAD")
        g.db_session = (db.read_sessions if reads_only else db.sessions)()
    return g.db_session


def _no_content_has_no_type(response: Response) -> Response:
    # Flask types every response text/html; a 204 has no content for a type to describe,
    # and the OpenAPI document promises none.
    if response.status_code == 204:
        del response.headers["Content-Type"]
    return response


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
