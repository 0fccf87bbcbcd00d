"""The `griddispatch` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from grids import LEVELS

DEMO_MAP = Path(__file__).resolve().parent.parent / "grids" / "demo" / "nanjing.gpkg"


def _app():
    from dispatch.app import create_app

    return create_app()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """griddispatch: urban grid management dispatch (网格化管理调度)."""


@main.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (DATABASE_URL, default SQLite in the instance folder)."""
    app = _app()
    db = app.extensions["griddispatch.db"]
    db.upgrade()
    click.echo(f"schema is up to date on {db.engine.url.render_as_string(hide_password=True)}")


@main.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--layer", help="Layer to read (GeoPackage); default the first.")
@click.option("--level", type=click.Choice(LEVELS), help="Level of every feature; default the file's 'level' column.")
@click.option("--code-field", default="code", show_default=True)
@click.option("--name-field", default="name", show_default=True)
@click.option("--parent-field", help="Field with the parent's code; default 'parent_code' or 'parent' if present.")
@click.option("--crs", help="CRS of the file when it declares none (or to override it), e.g. EPSG:4547.")
@click.option("--fix-invalid", is_flag=True, help="Repair invalid geometries (make_valid) instead of rejecting them.")
def import_command(path, layer, level, code_field, name_field, parent_field, crs, fix_invalid) -> None:
    """Import areas from GeoJSON, GeoPackage, Shapefile or GeoParquet; all or nothing."""
    from grids.io import ImportRejected

    app = _app()
    try:
        plan = _import(app, path, layer=layer, level=level, code_field=code_field,
                       name_field=name_field, parent_field=parent_field, crs=crs,
                       fix_invalid=fix_invalid)
    except ImportRejected as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for line in plan.repaired:
        click.echo(f"repaired: {line}")
    counts = ", ".join(f"{n} {level}" for level, n in plan.counts().items())
    click.echo(f"imported {len(plan.areas)} areas ({counts}) from {path} (source CRS {plan.source_crs})")


def _import(app, path, **options):
    """Import one file with a progress bar on the write."""
    from tqdm import tqdm

    from grids.io import import_file

    db = app.extensions["griddispatch.db"]
    db.upgrade()
    with db.session() as db_session, tqdm(
        desc="writing areas", unit=" areas", disable=None, file=sys.stderr
    ) as bar:
        return import_file(db_session, path, progress=bar.update, **options)


@main.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--level", type=click.Choice(LEVELS), help="Export one level only.")
@click.option("--crs", help="Reproject to this CRS (default EPSG:4326).")
def export_command(path, level, crs) -> None:
    """Export areas to GeoJSON, GeoPackage, Shapefile or GeoParquet (by the file's extension)."""
    from grids.io import ImportRejected, export_file

    app = _app()
    db = app.extensions["griddispatch.db"]
    try:
        with db.session() as db_session:
            count = export_file(db_session, path, level=level, crs=crs)
    except ImportRejected as exc:  # raised for an unknown extension
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"exported {count} areas to {path}")


@main.command("locate")
@click.argument("lon", type=float)
@click.argument("lat", type=float)
@click.option("--crs", default="wgs84", show_default=True, help="wgs84, gcj02 or bd09")
def locate_command(lon, lat, crs) -> None:
    """Which unit, building, grid, community, street and district hold this point."""
    from dispatch.areas import locate_point
    from dispatch.errors import ApiError

    app = _app()
    db = app.extensions["griddispatch.db"]
    with app.app_context(), db.session() as db_session:
        try:
            answer = locate_point(db_session, lon, lat, crs=crs,
                                  tolerance_m=app.config["LOCATE_TOLERANCE_M"])
        except ApiError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(2)
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2))


def load_demo_map(app) -> bool:
    """Load the bundled Nanjing map unless the database already holds areas."""
    from grids.store import count_by_level

    db = app.extensions["griddispatch.db"]
    db.upgrade()
    with db.session() as db_session:
        if count_by_level(db_session):
            return False
    _import(app, str(DEMO_MAP))
    return True


def _patch_for_gevent() -> None:
    """Make sockets, database drivers and locks cooperative before they are imported."""
    from gevent import monkey

    monkey.patch_all()


def _serve(app, host: str, port: int) -> None:
    from gevent.pywsgi import WSGIServer

    click.echo(f"serving on http://{host}:{port}  (Ctrl-C stops)")
    WSGIServer((host, port), app, log=None).serve_forever()


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host, port) -> None:
    """Serve the bundled map of central Nanjing on embedded SQLite (or DATABASE_URL)."""
    _patch_for_gevent()
    app = _app()
    if load_demo_map(app):
        click.echo("loaded the demo map of central Nanjing (© OpenStreetMap contributors, ODbL)")
    base = f"http://{host}:{port}"
    click.echo(f"\n  start page   {base}/\n  API          {base}/api/v1/health\n"
               f"  OpenAPI      {base}/api/v1/openapi.json\n"
               f"  locate       {base}/api/v1/locate?lon=118.7835&lat=32.0335\n")
    _serve(app, host, port)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host, port) -> None:
    """Serve the API and web apps (gevent)."""
    _patch_for_gevent()
    app = _app()
    app.extensions["griddispatch.db"].upgrade()
    _serve(app, host, port)


@main.group("bench")
def bench() -> None:
    """Benchmarks: each prints a table and a final JSON line with its same-run baseline."""


@bench.command("locate")
@click.option("--grids", "n_grids", default=100_000, show_default=True, type=int)
@click.option("--buildings", "n_buildings", default=1_000_000, show_default=True, type=int)
@click.option("--queries", default=20_000, show_default=True, type=int)
@click.option("--postgis-url", default="postgresql://postgres@127.0.0.1:5432/test", show_default=True,
              help="PostgreSQL with PostGIS for the ST_Contains baseline; skipped when unreachable.")
@click.option("--skip-import", is_flag=True, help="Do not time the SQLite import of the city.")
def bench_locate(n_grids, n_buildings, queries, postgis_url, skip_import) -> None:
    """Locate on a synthetic city against raw STRtree and PostGIS ST_Contains."""
    from dispatch.bench.locate import run

    run(n_grids=n_grids, n_buildings=n_buildings, queries=queries,
        postgis_url=postgis_url, time_import=not skip_import)
