"""REST API under /api/v1: thin blueprints that parse, call a service and serialise.

Each module has a Blueprint `bp` and the OpenAPI `PATHS` of its routes.
"""

from types import ModuleType

from flask import Flask, request


def modules() -> list[ModuleType]:
    from dispatch.api import areas, auth, categories, crews, incidents, meta, metrics, people

    return [meta, auth, areas, incidents, people, crews, categories, metrics]


def register_api(app: Flask) -> None:
    from dispatch.api.body import refuse_unstorable

    for module in modules():
        app.register_blueprint(module.bp, url_prefix="/api/v1")

    @app.before_request
    def _storable_text_only():
        if request.path.startswith("/api/"):
            refuse_unstorable()
