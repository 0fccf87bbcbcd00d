"""Health and the OpenAPI document."""

from flask import Blueprint, jsonify

from dispatch.api.openapi import openapi_document

bp = Blueprint("meta", __name__)


@bp.get("/health")
def health():
    return jsonify({"status": "ok"})


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
