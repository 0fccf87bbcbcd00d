"""The web apps: each is a static page (static/apps/<name>.html) with its ES module.

Pages get two values filled in: the map tile URL, if one is configured (maps work without
it), and the app's name. Everything a page loads comes from this server.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template_string

bp = Blueprint("pages", __name__)

APPS = ("report", "track", "console", "crew", "board")


@cache
def _page_source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _render(name: str, **values):
    path = Path(current_app.static_folder) / "apps" / f"{name}.html"
    if not path.exists():
        abort(404)
    source = _page_source(path) if not current_app.debug else path.read_text(encoding="utf-8")
    return render_template_string(source, tile_url=current_app.config.get("TILE_URL") or "",
                                  tile_attribution=current_app.config.get("TILE_ATTRIBUTION") or "",
                                  **values)


@bp.get("/")
def index():
    return _render("index")


@bp.get("/report")
def report():
    return _render("report")


@bp.get("/track/<token>")
def track(token: str):
    return _render("track", tracking_token=token)


@bp.get("/console")
def console():
    return _render("console")


@bp.get("/crew")
def crew():
    return _render("crew")


@bp.get("/board")
def board():
    return _render("board")


@bp.get("/favicon.ico")
def favicon():
    # Browsers ask for it even on a plain file (a stylesheet); an empty answer keeps their
    # consoles free of a 404 on every app.
    return "", 204
