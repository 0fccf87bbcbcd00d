"""The start page: until the web apps land, a plain list of what the map holds."""

from flask import Blueprint, render_template_string

from dispatch.app import session
from grids import LEVELS
from grids.store import count_by_level, query_areas

bp = Blueprint("pages", __name__)

START_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>griddispatch 网格化管理调度</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem">
<h1>griddispatch 网格化管理调度</h1>
<p>Areas: {% for level in levels %}{{ level }} {{ counts.get(level, 0) }}{% if not loop.last %} · {% endif %}{% endfor %}</p>
<h2>街道 / Streets and communities</h2>
<ul>{% for street in streets %}<li>{{ street.name }} ({{ street.code }})</li>{% endfor %}</ul>
<p>API: <a href="/api/v1/health">/api/v1/health</a> ·
<a href="/api/v1/openapi.json">/api/v1/openapi.json</a> ·
<a href="/api/v1/areas?level=street">/api/v1/areas?level=street</a></p>
<p><small>Map data © OpenStreetMap contributors, ODbL 1.0.</small></p>
</body></html>"""


@bp.get("/")
def index():
    db = session()
    streets, _ = query_areas(db, level="street", limit=1000)
    return render_template_string(
        START_PAGE, levels=LEVELS, counts=count_by_level(db), streets=streets
    )
