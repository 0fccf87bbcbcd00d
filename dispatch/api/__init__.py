"""REST API under /api/v1: thin blueprints that parse, call a service and serialise."""

from flask import Flask


def register_api(app: Flask) -> None:
    from dispatch.api import areas, meta

    app.register_blueprint(meta.bp, url_prefix="/api/v1")
    app.register_blueprint(areas.bp, url_prefix="/api/v1")
