"""The web apps: each is a static page (static/apps/<name>.html) with its ES module.

Pages get two values filled in: the map tile URL, if one is configured (maps work without
it), and the app's name. Everything a page loads comes from this server.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template_string
from markupsafe import Markup

bp = Blueprint("pages", __name__)

APPS = ("report", "track", "console", "crew", "board")

# The staff apps' sign-in form (static/js/signin.js drives it; app.css styles it).
SIGNIN_FORM = Markup("""<form class="signin" id="signin" hidden>
  <h2 data-i18n="{title_key}">{title}</h2>
  <label><span data-i18n="auth.username">用户名</span><input name="username" autocomplete="username" required></label>
  <label><span data-i18n="auth.password">密码</span><input name="password" type="password" autocomplete="current-password" required></label>
  <p role="alert"></p>
  <button type="submit" data-i18n="auth.signin">登录</button>
</form>""")


def signin_form(title_key: str, title: str) -> Markup:
    """`{{ signin_form("console.signin", "网格员登录") }}` in a page: the form, titled."""
    return SIGNIN_FORM.format(title_key=title_key, title=title)


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
                                  signin_form=signin_form, **values)


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
