"""The `griddispatch` command."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from grids import LEVELS

DEMO_MAP = Path(__file__).resolve().parent.parent / "grids" / "demo" / "nanjing.gpkg"


def _app(**config):
    from dispatch.app import ConfigError, create_app

    try:
        return create_app(config or None)
    except ConfigError as exc:  # a setting, not a fault: said in one line
        raise click.ClickException(str(exc)) from None


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
    from sqlalchemy.exc import IntegrityError

    from grids.io import ImportRejected

    app = _app()
    try:
        plan = _import(app, path, layer=layer, level=level, code_field=code_field,
                       name_field=name_field, parent_field=parent_field, crs=crs,
                       fix_invalid=fix_invalid)
    except ImportRejected as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except IntegrityError:
        # Checked before writing, but another import wrote the same codes in between.
        click.echo("import rejected, nothing was written: another import stored some of these "
                   "codes at the same time; run it again to see which", err=True)
        sys.exit(1)
    for line in plan.repaired:
        click.echo(f"repaired: {line}")
    for line in plan.overlaps:
        click.echo(f"warning: {line}", err=True)
    counts = ", ".join(f"{n} {level}" for level, n in plan.counts().items())
    click.echo(f"imported {len(plan.areas)} areas ({counts}) from {path} (source CRS {plan.source_crs})")


def _import(app, path, **options):
    """Import one file with progress bars for checking and writing (shown on a terminal)."""
    from tqdm import tqdm

    from grids.io import import_file

    db = app.extensions["griddispatch.db"]
    db.upgrade()
    with db.session() as db_session, \
            tqdm(desc="checking features", unit=" features", disable=None, file=sys.stderr) as check, \
            tqdm(desc="writing areas", unit=" areas", disable=None, file=sys.stderr) as write:
        return import_file(db_session, path, checked=check.update, progress=write.update, **options)


@contextmanager
def _reading_areas():
    """A database without the schema (never `init-db`ed) says so, not a traceback. Reading
    commands do not create it: a command that only reads must not migrate a database."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        yield
    except (OperationalError, ProgrammingError) as exc:
        click.echo(f"error: cannot read the areas ({str(exc.orig).strip()}); a new database needs "
                   "`griddispatch init-db` and an import first", err=True)
        sys.exit(1)


@main.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--level", type=click.Choice(LEVELS), help="Export one level only.")
@click.option("--crs", help="Reproject to this CRS (default EPSG:4326).")
def export_command(path, level, crs) -> None:
    """Export areas to GeoJSON, GeoPackage, Shapefile or GeoParquet (by the file's extension)."""
    from grids.io import ExportFailed, export_file

    app = _app()
    db = app.extensions["griddispatch.db"]
    try:
        with _reading_areas(), db.session() as db_session:
            count = export_file(db_session, path, level=level, crs=crs)
    except ExportFailed as exc:
        click.echo(f"export failed, nothing was written: {exc}", err=True)
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
    with _reading_areas(), app.app_context(), db.session() as db_session:
        try:
            answer = locate_point(db_session, lon, lat, crs=crs,
                                  tolerance_m=app.config["LOCATE_TOLERANCE_M"])
        except ApiError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(2)
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2))


def load_demo(app) -> bool:
    """Load the bundled Nanjing map unless the database holds areas, then the demo people
    (idempotent); True when the map was loaded now."""
    from zoneinfo import ZoneInfo

    from dispatch.demo import seed_demo
    from grids.store import count_by_level

    db = app.extensions["griddispatch.db"]
    db.upgrade()
    with db.session() as db_session:
        loaded = not count_by_level(db_session)
    if loaded:
        _import(app, str(DEMO_MAP))
    with db.session() as db_session:
        seed_demo(db_session, now=app.extensions["griddispatch.clock"].now(),
                  tz=ZoneInfo(app.config["GRIDDISPATCH_TZ"]))
    return loaded


def _demo_logins(app) -> str:
    """The demo accounts to print, with a few grid managers as examples."""
    from sqlalchemy import select

    from dispatch.people.models import User

    with app.extensions["griddispatch.db"].session() as db_session:
        managers = db_session.scalars(select(User.username).where(User.username.like("manager-%"))
                                      .order_by(User.username).limit(3)).all()
        crews = db_session.scalars(select(User.username).where(User.role == "crew")
                                   .order_by(User.id).limit(2)).all()
    return ("  logins (password 'demo'): admin, operator, committee (district), committee-<street code>,\n"
            f"    manager-<grid code> e.g. {', '.join(managers)}, crew-<n> e.g. {', '.join(crews)}\n")


def _patch_for_gevent() -> None:
    """Make sockets, database drivers and locks cooperative before they are imported."""
    from gevent import monkey

    monkey.patch_all()


def _serve(app, host: str, port: int) -> None:
    """The API, the web apps, Socket.IO and the SLA clock on one gevent server."""
    from dispatch.server import attach_live_and_clock, serve

    attach_live_and_clock(app)
    click.echo(f"serving on http://{host}:{port}  (Ctrl-C stops)", err=True)
    serve(app, host, port)


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--test-clock", is_flag=True, help="Expose GET/POST /api/v1/test-clock (end-to-end tests only).")
def demo(host, port, test_clock) -> None:
    """Serve the bundled map of central Nanjing on embedded SQLite (or DATABASE_URL)."""
    _patch_for_gevent()
    app = _app(TEST_CLOCK=True) if test_clock else _app()
    if load_demo(app):
        click.echo("loaded the demo map of central Nanjing (© OpenStreetMap contributors, ODbL)")
    base = f"http://{host}:{port}"
    click.echo(f"\n  start page   {base}/\n  report       {base}/report   (residents, no sign-in)\n"
               f"  calls        {base}/report?call  (hotline operators)\n"
               f"  console      {base}/console  (grid managers)\n  crew         {base}/crew\n"
               f"  board        {base}/board    (committee members)\n"
               f"  API          {base}/api/v1/openapi.json\n"
               f"  locate       {base}/api/v1/locate?lon=118.7835&lat=32.0335\n\n"
               + _demo_logins(app))
    _serve(app, host, port)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--test-clock", is_flag=True, help="Expose GET/POST /api/v1/test-clock (end-to-end tests only).")
def serve(host, port, test_clock) -> None:
    """Serve the API and web apps (gevent)."""
    _patch_for_gevent()
    app = _app(TEST_CLOCK=True) if test_clock else _app()
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


@main.group("users")
def users() -> None:
    """Accounts: add, list, disable."""


@contextmanager
def _accounts():
    """A session on the migrated database and the time now; a refused change exits 1 saying why."""
    from dispatch.errors import ApiError

    app = _app()
    db = app.extensions["griddispatch.db"]
    db.upgrade()
    try:
        with app.app_context(), db.session() as db_session:
            yield db_session, app.extensions["griddispatch.clock"].now()
    except ApiError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


@users.command("add")
@click.argument("username")
@click.option("--role", required=True, help="resident, operator, grid_manager, crew, committee or admin")
@click.option("--name", help="Display name (default the username).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted (hidden, twice) when omitted.")
@click.option("--scope", help="Area code a committee member (required) or operator watches.")
@click.option("--grid", "grids", multiple=True, help="A grid this grid manager runs (repeatable).")
@click.option("--crew", "crew_id", type=int, help="Crew id of a crew member.")
def users_add(username, role, name, password, scope, grids, crew_id) -> None:
    """Create an account."""
    from dispatch.people import service

    with _accounts() as (db_session, now):
        user = service.create_user(session=db_session, now=now, username=username, role=role,
                                   password=password, display_name=name, scope_area_code=scope,
                                   crew_id=crew_id)
        if grids:
            service.set_grids(session=db_session, user=user, grids=[{"grid_code": g} for g in grids])
    click.echo(f"added {role} {username} (id {user.id})")


@users.command("list")
@click.option("--role", help="Only this role.")
def users_list(role) -> None:
    """Accounts as a table."""
    from dispatch.people import service

    with _accounts() as (db_session, _now):
        people = service.list_users(session=db_session, role=role)
        grids = service.grid_assignments(session=db_session, user_ids=[u.id for u in people])
    rows = [(str(u.id), u.username, u.role, "yes" if u.active else "no", u.scope_area_code or "",
             ",".join(g.grid_code for g in grids[u.id]), u.display_name) for u in people]
    header = ("id", "username", "role", "active", "scope", "grids", "name")
    # The name goes last, unpadded: Chinese characters are double width and would skew columns.
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    click.echo(f"{len(rows)} account{'' if len(rows) == 1 else 's'}")


@users.command("disable")
@click.argument("username")
def users_disable(username) -> None:
    """Disable an account: it can no longer sign in and its tokens stop working. A grid
    manager's unfinished incidents go to whoever routing picks now."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    from dispatch.incidents.flows import SYSTEM
    from dispatch.incidents.handover import update_account
    from dispatch.people import service

    with _accounts() as (db_session, now):
        app = current_app._get_current_object()
        user = service.user_by_username(session=db_session, username=username)
        handed = update_account(db_session, user, now=now, tz=ZoneInfo(app.config["GRIDDISPATCH_TZ"]),
                                index=app.extensions["griddispatch.index"].get(db_session),
                                actor=SYSTEM, active=False)
        handed_ids = [i.public_id for i in handed]
    click.echo(f"disabled {username}")
    if handed_ids:
        click.echo(f"handed over {len(handed_ids)} unfinished incident{'' if len(handed_ids) == 1 else 's'}: "
                   + ", ".join(handed_ids))


@main.command("worker")
@click.option("--interval", default=5.0, show_default=True, type=float, help="Seconds between ticks.")
@click.option("--once", is_flag=True, help="Run one tick and print what it did.")
def worker(interval, once) -> None:
    """Run the SLA clock out of process: amber, red and escalations (one leader across processes)."""
    from dispatch.sla.worker import SlaWorker, run_forever

    app = _app()
    app.extensions["griddispatch.db"].upgrade()
    if once:
        sla = SlaWorker(app, interval_s=interval)
        try:
            click.echo(json.dumps(sla.tick()))
        finally:
            sla.leadership.release()
        return
    click.echo(f"SLA clock ticking every {interval:g} s (Ctrl-C stops)")
    try:
        run_forever(app, interval)
    except KeyboardInterrupt:
        click.echo("stopped")


@bench.command("intake")
@click.option("--clients", default=16, show_default=True, type=int, help="Closed-loop concurrent clients.")
@click.option("--duration", default=10.0, show_default=True, type=float, help="Seconds per phase.")
@click.option("--rate", default=100.0, show_default=True, type=float, help="Open-loop offered reports/s.")
@click.option("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test", show_default=True,
              help="Server where a fresh database is created and dropped; '' skips PostgreSQL.")
@click.option("--database", "databases", multiple=True, type=click.Choice(["sqlite", "postgresql"]),
              help="Only these databases (repeatable; default both).")
@click.option("--profile-dir", help="Record py-spy profiles of the server during the intake phases.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 16),
              help="Server processes sharing the database (and a private Redis when more than one); "
                   "clients and the baseline are spread over them alike.")
def bench_intake(clients, duration, rate, postgres_url, databases, profile_dir, processes) -> None:
    """POST /api/v1/incidents on running gevent server(s) against a bare route on the same stack."""
    from dispatch.bench.intake import run

    run(clients=clients, duration=duration, rate=rate, postgres_url=postgres_url or None,
        databases=tuple(databases) or ("sqlite", "postgresql"), profile_dir=profile_dir,
        processes=processes)


@bench.command("metrics")
@click.option("--incidents", default=1_000_000, show_default=True, type=int)
@click.option("--database-url", "database_urls", multiple=True,
              help="Database to fill and time (repeatable). Default: a temporary SQLite file and a "
                   "fresh PostgreSQL database made through --postgres-admin-url and dropped after.")
@click.option("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/test", show_default=True,
              help="Where to create the throwaway PostgreSQL database; skipped when unreachable.")
@click.option("--events-every", default=10, show_default=True, type=int,
              help="Write the event timeline of every n-th incident (the naive baseline scans them).")
@click.option("--repeats", default=7, show_default=True, type=int)
def bench_metrics(incidents, database_urls, postgres_admin_url, events_every, repeats) -> None:
    """The committee board's queries on rollups against the naive scan of the event log."""
    from dispatch.bench.metrics import run

    run(incidents=incidents, database_urls=database_urls, postgres_admin_url=postgres_admin_url,
        events_every=events_every, repeats=repeats)


@bench.command("live")
@click.option("--clients", default=1000, show_default=True, type=int,
              help="Socket.IO clients: committee boards plus tablets over the demo grids.")
@click.option("--rate", default=50.0, show_default=True, type=float, help="Reports per second.")
@click.option("--duration", default=30.0, show_default=True, type=float, help="Seconds of reports.")
@click.option("--layout", "layouts", multiple=True, type=click.Choice(["1", "2"]),
              help="Server processes: 1, or 2 with a private Redis (repeatable; default both).")
@click.option("--client-procs", default=2, show_default=True, type=int, help="Client processes.")
@click.option("--database", default="postgresql", show_default=True,
              type=click.Choice(["sqlite", "postgresql"]))
@click.option("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test", show_default=True,
              help="Server where a fresh database is created and dropped.")
@click.option("--grace", default=5.0, show_default=True, type=float,
              help="Seconds to wait for deliveries after the last report.")
def bench_live(clients, rate, duration, layouts, client_procs, database, postgres_url, grace) -> None:
    """Report-to-tablet latency and delivery counts against a bare Flask-SocketIO emit."""
    from dispatch.bench.live import run

    run(clients=clients, rate=rate, duration=duration,
        layouts=tuple(int(n) for n in layouts) or (1, 2), client_procs=client_procs,
        database=database, postgres_url=postgres_url, grace=grace)
