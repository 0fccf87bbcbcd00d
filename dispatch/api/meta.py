"""Health and the OpenAPI document."""

from flask import Blueprint, jsonify

from dispatch.api.openapi import op, openapi_document

bp = Blueprint("meta", __name__)


@bp.get("/health")
def health():
    return jsonify({"status": "ok"})


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


PATHS = {
    "/health": {"get": op("Liveness", "health", ok=("200", {"type": "object", "properties": {
        "status": {"const": "ok"}}}), auth=False)},
    "/openapi.json": {"get": op("This document", "openapi", auth=False)},
}
