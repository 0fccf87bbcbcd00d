"""`griddispatch bench metrics`: the committee board's queries on a million incidents.

The demo map (grids/demo/nanjing.gpkg) and the demo people and crews are loaded into each
database; then `--incidents` historical incidents over two years are generated with
lognormal phase times (some never acknowledged, reached or verified, some sent back for
rework, ratings) and written in bulk: the incident rows (the projection), their metric
facts and rollups, and the full event timelines of every `--events-every`-th incident.

Facts are what `metrics.record` would make of those timelines (first acknowledgement and
arrival, the standing resolution, dues as the events carry them) and the rollups are
`metrics.record.rollup_rows` of the facts, the function a rebuild uses;
tests/test_metrics_bench.py replays a small run's events through the event path and checks
it gets the same facts and rollups.

Each board query (the service functions the API calls) is timed `--repeats` times; the
baseline is the naive query that scans the event log and joins the incidents to compute the
same table, timed on the incidents that have events (a tenth by default, so the baseline is
flattered about tenfold). Progress to stderr; a table and a final JSON line to stdout.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import click
import numpy as np
import pandas as pd
import sqlalchemy as sa

from dispatch.db import Database
from dispatch.incidents.categories import STANDARD
from dispatch.incidents.models import Incident, IncidentEvent
from dispatch.metrics import service
from dispatch.metrics.histogram import nearest_rank
from dispatch.metrics.models import PHASES, MetricFact, MetricRollup
from dispatch.metrics.record import fact_row, rollup_rows
from dispatch.people.models import Crew, GridAssignment, User
from grids.store import Area

DEMO_MAP = Path(__file__).resolve().parents[2] / "grids" / "demo" / "nanjing.gpkg"
TZ_NAME = "Asia/Shanghai"
END = datetime(2026, 12, 1, tzinfo=ZoneInfo(TZ_NAME))  # history runs two years up to here
DAYS = 730
TARGET_MS = 100.0
SEED = 20261126
CHUNK = 20_000
RANGES = {"month": (date(2026, 11, 1), date(2026, 11, 30)),
          "30 days": (date(2026, 10, 17), date(2026, 11, 15)),
          "year": (date(2025, 12, 1), date(2026, 11, 30))}


def _say(message: str) -> None:
    click.echo(f"[bench metrics {time.strftime('%H:%M:%S')}] {message}", err=True)


# -- the world --------------------------------------------------------------------------

@dataclass
class Tree:
    grids: list[str]
    chains: dict[str, tuple[str, str, str]]  # grid -> community, street, district
    managers: dict[str, list[int]]  # grid -> its managers, primary first
    crews: dict[tuple[str, str], list[int]]  # (grid, skill) -> crews that serve it
    streets: list[str]


def load_world(db: Database) -> Tree:
    """The demo map, categories, people and crews, as `griddispatch demo` seeds them."""
    from dispatch.demo import seed_demo
    from grids.io import import_file

    db.upgrade()
    with db.session() as session:
        import_file(session, DEMO_MAP)
        seed_demo(session, now=END)
    with db.session() as session:
        areas = {a.code: a for a in session.scalars(sa.select(Area).where(
            Area.level.in_(("grid", "community", "street", "district"))))}
        grids = sorted(c for c, a in areas.items() if a.level == "grid")
        chains = {}
        for grid in grids:
            community = areas[grid].parent_code
            street = areas[community].parent_code
            chains[grid] = (community, street, areas[street].parent_code)
        managers: dict[str, list[int]] = defaultdict(list)
        for row in session.execute(sa.select(GridAssignment.grid_code, GridAssignment.user_id)
                                   .order_by(GridAssignment.kind.desc(), GridAssignment.id)):
            managers[row.grid_code].append(row.user_id)
        crews: dict[tuple[str, str], list[int]] = defaultdict(list)
        for crew in session.scalars(sa.select(Crew).order_by(Crew.id)):
            for grid in grids:
                if set(crew.service_areas) & {grid, *chains[grid]}:
                    for skill in crew.skills:
                        crews[(grid, skill)].append(crew.id)
        streets = sorted(c for c, a in areas.items() if a.level == "street")
    return Tree(grids, chains, dict(managers), dict(crews), streets)


# -- incidents ----------------------------------------------------------------------------

def _lognormal(rng: np.random.Generator, median_s: np.ndarray, sigma: float) -> np.ndarray:
    return np.maximum(1, rng.lognormal(np.log(median_s), sigma)).astype(np.int64)


def generate(tree: Tree, n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Timelines as epoch seconds (-1: never happened), all vectorised."""
    rng = np.random.default_rng(seed)
    end = int(END.timestamp())
    created = np.sort(end - rng.integers(1, DAYS * 86400, n))
    weights = rng.uniform(0.3, 1.0, len(STANDARD))
    category = rng.choice(len(STANDARD), n, p=weights / weights.sum())
    busy = rng.uniform(0.2, 1.0, len(tree.grids))
    grid = rng.choice(len(tree.grids), n, p=busy / busy.sum())
    minutes = np.array([[c[6], c[7], c[8], c[9]] for c in STANDARD], dtype=np.int64) * 60
    ack_limit, arrive_limit, resolve_limit, verify_limit = (minutes[category, k] for k in range(4))
    t = {"created": created, "category": category, "grid": grid,
         "acknowledge_due": created + ack_limit, "arrive_due": created + arrive_limit,
         "resolve_due": created + resolve_limit}
    stage = rng.random(n)
    ack = created + _lognormal(rng, ack_limit * 0.5, 0.9)
    arrive = ack + _lognormal(rng, np.maximum(60, arrive_limit - ack_limit) * 0.4, 0.8)
    resolve1 = arrive + _lognormal(rng, resolve_limit * 0.3, 0.9)
    rework = rng.random(n) < 0.06
    sent_back = resolve1 + _lognormal(rng, np.full(n, 7200), 0.8)
    arrive2 = sent_back + _lognormal(rng, np.full(n, 1800), 0.8)
    resolve2 = arrive2 + _lognormal(rng, resolve_limit * 0.2, 0.9)
    never = np.full(n, -1, dtype=np.int64)
    t["acknowledged"] = np.where(stage < 0.03, never, ack)
    t["on_site"] = np.where(stage < 0.05, never, arrive)
    t["resolved1"] = np.where(stage < 0.07, never, resolve1)
    t["rework"] = np.where((stage >= 0.07) & rework, sent_back, never)
    t["on_site2"] = np.where(t["rework"] >= 0, arrive2, never)
    t["resolved"] = np.where(t["rework"] >= 0, resolve2, t["resolved1"])
    t["verify_due"] = np.where(t["resolved"] >= 0, t["resolved"] + verify_limit, never)
    verified = (t["resolved"] >= 0) & (rng.random(n) < 0.88)
    t["verified"] = np.where(verified, t["resolved"] + _lognormal(rng, np.full(n, 4 * 3600), 1.0), never)
    closed = verified & (rng.random(n) < 0.95)
    t["closed"] = np.where(closed, t["verified"] + _lognormal(rng, np.full(n, 1800), 1.0), never)
    rated = closed & (rng.random(n) < 0.55)
    t["rated"] = np.where(rated, t["closed"] + _lognormal(rng, np.full(n, 86400), 0.7), never)
    t["rating"] = np.where(rated, rng.choice([3, 4, 5], n, p=[0.15, 0.35, 0.5]), 0)
    # Who: the grid's managers (the primary mostly) and a crew with the skill that serves it.
    t["manager"] = np.zeros(n, dtype=np.int64)
    t["crew"] = np.zeros(n, dtype=np.int64)
    pick = rng.random(n)
    for g, code in enumerate(tree.grids):
        mine = grid == g
        people = tree.managers.get(code, [])
        if people:
            backup = (pick[mine] > 0.85) & (len(people) > 1)
            t["manager"][mine] = np.where(backup, people[-1], people[0])
        for c, row in enumerate(STANDARD):
            if not row[5]:
                continue
            crews = tree.crews.get((code, row[3]), [])
            these = mine & (category == c)
            if crews and these.any():
                t["crew"][these] = np.asarray(crews)[rng.integers(0, len(crews), these.sum())]
    t["crew"][t["acknowledged"] < 0] = 0  # crews are dispatched on acknowledgement
    return t


def _when(seconds: int) -> datetime | None:
    return None if seconds < 0 else datetime.fromtimestamp(int(seconds), UTC)


def timeline(t: dict[str, np.ndarray], i: int, tree: Tree) -> list[tuple[str, int, dict]]:
    """One incident's events (type, epoch seconds, data), as the lifecycle would record them."""
    cat = STANDARD[t["category"][i]]
    grid = tree.grids[t["grid"][i]]
    community, street, district = tree.chains[grid]
    crew, manager = int(t["crew"][i]), int(t["manager"][i])
    due = {k: _when(t[k][i]) for k in ("acknowledge_due", "arrive_due", "resolve_due")}
    events = [("reported", t["created"][i], {
        "public_id": f"B{i:08d}", "category_code": cat[0], "priority": cat[4], "grid_code": grid,
        "community_code": community, "street_code": street, "district_code": district, **due}),
        ("assigned", t["created"][i], {"manager_id": manager or None})]
    if t["acknowledged"][i] >= 0:
        events.append(("acknowledged", t["acknowledged"][i], {"status": "acknowledged"}))
        if crew:
            events.append(("dispatched", t["acknowledged"][i], {"crew_id": crew}))
    verify_limit = t["verify_due"][i] - t["resolved"][i]
    if t["on_site"][i] >= 0:
        events.append(("on_site", t["on_site"][i], {}))
    if t["resolved1"][i] >= 0:
        events.append(("resolved", t["resolved1"][i], {"verify_due": _when(t["resolved1"][i] + verify_limit)}))
    if t["rework"][i] >= 0:
        events += [("rework", t["rework"][i], {
            "status": "dispatched" if crew else "acknowledged", "rework_count": 1, "resolved_at": None,
            "verified_at": None, "closed_at": None, "verify_due": None}),
            ("on_site", t["on_site2"][i], {}),
            ("resolved", t["resolved"][i], {"verify_due": _when(t["verify_due"][i])})]
    for kind in ("verified", "closed"):
        if t[kind][i] >= 0:
            events.append((kind, t[kind][i], {}))
    if t["rated"][i] >= 0:
        events.append(("rated", t["rated"][i], {"rating": int(t["rating"][i])}))
    return events


def rows(t: dict[str, np.ndarray], tree: Tree, tz: ZoneInfo, events_every: int):
    """Incident, fact and event rows for every incident, and the facts for the rollups."""
    n = len(t["created"])
    days = pd.to_datetime(t["created"], unit="s", utc=True).tz_convert(tz).date
    incidents, facts, events = [], [], []
    for i in range(n):
        cat = STANDARD[t["category"][i]]
        grid = tree.grids[t["grid"][i]]
        community, street, district = tree.chains[grid]
        crew, manager = int(t["crew"][i]), int(t["manager"][i])
        created, ack, arrive = t["created"][i], t["acknowledged"][i], t["on_site"][i]
        resolved, verified = t["resolved"][i], t["verified"][i]
        status = ("closed" if t["closed"][i] >= 0 else "verified" if verified >= 0 else
                  "resolved" if resolved >= 0 else "on_site" if arrive >= 0 else
                  ("dispatched" if crew else "acknowledged") if ack >= 0 else "assigned")
        story = timeline(t, i, tree)
        incidents.append({
            "id": i + 1, "public_id": f"B{i:08d}", "tracking_hash": f"{i:064x}",
            "category_code": cat[0], "priority": cat[4], "lon": 118.79, "lat": 32.03,
            "locate_method": "grid", "grid_code": grid, "community_code": community,
            "street_code": street, "district_code": district, "channel": "resident",
            "manager_id": manager or None, "crew_id": crew or None, "status": status,
            "version": len(story), "escalation_level": 0, "sla_state": "green",
            "rework_count": int(t["rework"][i] >= 0), "rating": int(t["rating"][i]) or None,
            "created_at": _when(created), "updated_at": _when(story[-1][1]),
            "assigned_at": _when(created), "acknowledged_at": _when(ack),
            "dispatched_at": _when(ack) if crew else None,
            "on_site_at": _when(max(arrive, t["on_site2"][i])),
            "resolved_at": _when(resolved), "verified_at": _when(verified),
            "closed_at": _when(t["closed"][i]),
            **{k: _when(t[k][i]) for k in ("acknowledge_due", "arrive_due", "resolve_due", "verify_due")},
        })
        fact = SimpleNamespace(
            incident_id=i + 1, day=days[i], grid_code=grid, community_code=community,
            street_code=street, district_code=district, category_code=cat[0], crew_id=crew,
            manager_id=manager, status=status, resolved_ever=bool(t["resolved1"][i] >= 0),
            rework_count=int(t["rework"][i] >= 0), rating=int(t["rating"][i]) or None)
        for phase, start, end, due in (("acknowledge", created, ack, "acknowledge_due"),
                                       ("arrive", created, arrive, "arrive_due"),
                                       ("resolve", created, resolved, "resolve_due"),
                                       ("verify", resolved, verified, "verify_due")):
            done = start >= 0 and end >= 0
            setattr(fact, f"{phase}_s", int(end - start) if done else None)
            setattr(fact, f"{phase}_on_time", bool(end <= t[due][i]) if done else None)
        facts.append(fact)
        if i % events_every == 0:
            events += [{"incident_id": i + 1, "type": kind, "at": _when(at), "actor_id": None,
                        "actor_role": "system", "version": v + 1,
                        "data": {k: (x.isoformat() if isinstance(x, datetime) else x) for k, x in data.items()}}
                       for v, (kind, at, data) in enumerate(story)]
    return incidents, facts, events


def write(db: Database, table: sa.Table, records: list[dict]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany on SQLite."""
    if not records:
        return
    if db.engine.dialect.name == "postgresql":
        # COPY skips the model's Python-side defaults: send them (as the ORM would) explicitly.
        defaults = {c.name: c.default.arg for c in table.columns
                    if c.name not in records[0] and c.default is not None and c.default.is_scalar}
        columns = list(records[0]) + list(defaults)
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for record in records:
                    record = {**record, **defaults}
                    copy.write_row([json.dumps(record[c]) if c in json_columns else record[c] for c in columns])
            raw.commit()
        finally:
            raw.close()
        return
    with db.engine.begin() as conn:
        for start in range(0, len(records), CHUNK):
            conn.execute(table.insert(), records[start:start + CHUNK])


def load(db: Database, tree: Tree, n: int, events_every: int, seed: int = SEED) -> dict[str, float]:
    """Generate and write everything; returns the seconds each part took."""
    tz = ZoneInfo(TZ_NAME)
    took = {}
    t0 = time.perf_counter()
    t = generate(tree, n, seed)
    incidents, facts, events = rows(t, tree, tz, events_every)
    cells = rollup_rows(facts)
    took["generate_s"] = time.perf_counter() - t0
    _say(f"{db.engine.dialect.name}: generated {n:,} incidents, {len(events):,} events, "
         f"{len(cells):,} rollup cells in {took['generate_s']:.0f} s")
    for name, table, records in (("incidents", Incident.__table__, incidents),
                                 ("facts", MetricFact.__table__, [fact_row(f) for f in facts]),
                                 ("rollups", MetricRollup.__table__, cells),
                                 ("events", IncidentEvent.__table__, events)):
        t0 = time.perf_counter()
        write(db, table, records)
        took[f"write_{name}_s"] = time.perf_counter() - t0
        _say(f"{db.engine.dialect.name}: wrote {len(records):,} {name} in {took[f'write_{name}_s']:.0f} s")
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"SELECT setval('incidents_id_seq', {n})"))
            conn.execute(sa.text("SELECT setval('incident_events_seq_seq', "
                                 "(SELECT coalesce(max(seq), 1) FROM incident_events))"))
        conn.execute(sa.text("ANALYZE"))
    took["events"] = len(events)
    took["rollup_cells"] = len(cells)
    return took


# -- the baseline: the same tables straight from the event log -----------------------------

def naive_table(session, user: User, query: service.Query, kind: str) -> list[tuple]:
    """Scan the events joined to their incidents; work out each phase per incident in Python."""
    e, i = IncidentEvent, Incident
    tz = ZoneInfo(TZ_NAME)
    start = datetime.combine(query.start, datetime.min.time(), tz)
    end = datetime.combine(query.end + timedelta(days=1), datetime.min.time(), tz)
    group = getattr(i, query.column)

    def first(kind_):
        return sa.func.min(sa.case((e.type == kind_, e.at)))

    def last(kind_):
        return sa.func.max(sa.case((e.type == kind_, e.at)))

    statement = (sa.select(group, i.status, i.rating, i.acknowledge_due, i.arrive_due, i.resolve_due,
                           i.verify_due, first("reported"), first("acknowledged"), first("on_site"),
                           last("resolved"), last("rework"), last("verified"))
                 .join(i, i.id == e.incident_id)
                 .where(i.created_at >= start, i.created_at < end, i.status != "merged")
                 .group_by(e.incident_id, group, i.status, i.rating, i.acknowledge_due, i.arrive_due,
                           i.resolve_due, i.verify_due))
    scope = service.scope(session, user, i)
    if scope is not None:
        statement = statement.where(scope)
    per_group: dict[Any, list] = defaultdict(list)
    for row in session.execute(statement):
        per_group[row[0] or 0].append(row)
    out = []
    for key, members in sorted(per_group.items(), key=lambda kv: str(kv[0])):
        durations: dict[str, list[int]] = {p: [] for p in PHASES}
        on_time = {p: [0, 0] for p in PHASES}
        closed = reworked = rated = satisfied = 0
        for (_, status, rating, *dues, reported, ack, arrive, resolved, rework, verified) in members:
            parse = _as_utc
            reported, ack, arrive, resolved, rework, verified = map(
                parse, (reported, ack, arrive, resolved, rework, verified))
            if rework is not None and resolved is not None and resolved < rework:
                resolved = None
            if verified is not None and (resolved is None or verified < resolved):
                verified = None
            for phase, begin, finish, due in zip(PHASES, (reported, reported, reported, resolved),
                                                 (ack, arrive, resolved, verified), map(parse, dues)):
                if begin is not None and finish is not None:
                    durations[phase].append(int((finish - begin).total_seconds()))
                    if due is not None:
                        on_time[phase][0] += finish <= due
                        on_time[phase][1] += 1
            closed += status == "closed"
            reworked += rework is not None
            rated += rating is not None
            satisfied += (rating or 0) >= 4
        if kind == "response-times":
            out.append((key, len(members), *((len(v), sum(v) / len(v) if v else None, nearest_rank(sorted(v), 50),
                                              nearest_rank(sorted(v), 90)) for v in durations.values())))
        else:
            out.append((key, len(members), closed, reworked, rated, satisfied, *map(tuple, on_time.values())))
    return out


def _as_utc(value):
    if isinstance(value, str):  # SQLite hands back aggregates of datetimes as text
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


# -- timing ---------------------------------------------------------------------------------

@dataclass
class BoardQuery:
    label: str
    kind: str
    params: dict[str, str]
    scoped: bool
    baseline: bool = False


def board_queries(street: str) -> list[BoardQuery]:
    out = []
    for range_name, (start, end) in RANGES.items():
        dates = {"from": start.isoformat(), "to": end.isoformat()}
        for scoped in (False, True):
            for group_by in ("grid", "community", "street", "crew", "manager", "category"):
                out.append(BoardQuery(f"response-times by {group_by}, {range_name}", "response-times",
                                      {"group_by": group_by, **dates}, scoped,
                                      baseline=group_by == "grid" and range_name != "30 days"))
            for group_by in ("grid", "crew"):
                out.append(BoardQuery(f"rates by {group_by}, {range_name}", "rates",
                                      {"group_by": group_by, **dates}, scoped,
                                      baseline=group_by == "grid" and range_name == "year"))
        out.append(BoardQuery(f"response-times by street per {'week' if range_name != 'year' else 'month'}, "
                              f"{range_name}", "response-times",
                              {"group_by": "street", "bucket": "week" if range_name != "year" else "month",
                               **dates}, False))
    return out


def _time(call: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def measure(db: Database, queries: list[BoardQuery], street: str, repeats: int,
            baseline_repeats: int) -> dict[str, dict]:
    admin = User(id=0, username="bench-admin", role="admin", scope_area_code=None)
    committee = User(id=0, username="bench-committee", role="committee", scope_area_code=street)
    out = {}
    with db.sessions() as session:
        for q in queries:
            user = committee if q.scoped else admin
            query = service.parse_query(q.params, today=END.date())
            build = service.response_times if q.kind == "response-times" else service.rates
            board = partial(build, session, user, query, tz_name=TZ_NAME)
            board()  # warm the caches once
            ms, table = _time(board, repeats)
            figures = {"p50_ms": round(ms, 1), "rows": len(table["rows"]),
                       "method": table.get("percentiles", {}).get("method")}
            if q.baseline:
                base_ms, _ = _time(partial(naive_table, session, user, query, q.kind), baseline_repeats)
                figures["baseline_p50_ms"] = round(base_ms, 1)
            out[f"{q.label}{' [street scope]' if q.scoped else ''}"] = figures
            _say(f"{db.engine.dialect.name}: {q.label}{' scoped' if q.scoped else ''}: {figures}")
    return out


# -- the run ----------------------------------------------------------------------------

def _fresh_postgres(admin_url: str) -> tuple[str, Callable[[], None]] | None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"griddispatch_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        _say(f"PostgreSQL skipped: {exc.orig}")
        admin.dispose()
        return None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


def run(*, incidents: int = 1_000_000, database_urls: tuple[str, ...] = (),
        postgres_admin_url: str | None = "postgresql://postgres@127.0.0.1:5432/test",
        events_every: int = 10, repeats: int = 7, baseline_repeats: int = 3) -> dict:
    """Run the benchmark on each database, print the table and the JSON line."""
    started = datetime.now(UTC)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        targets: list[tuple[str, Callable[[], None] | None]] = [(u, None) for u in database_urls]
        if not database_urls:
            targets.append((f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", None))
            fresh = _fresh_postgres(postgres_admin_url) if postgres_admin_url else None
            if fresh:
                targets.append(fresh)
        for url, drop in targets:
            db = Database(url)
            try:
                _say(f"{db.engine.dialect.name}: loading the demo map and people")
                tree = load_world(db)
                took = load(db, tree, incidents, events_every)
                street = tree.streets[0]
                timings = measure(db, board_queries(street), street, repeats, baseline_repeats)
                results[db.engine.dialect.name] = {"load": {k: round(v, 1) for k, v in took.items()},
                                                   "queries": timings}
            finally:
                db.dispose()
                if drop:
                    drop()
    figures = {
        "bench": "metrics", "date": started.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "incidents": incidents, "events_every": events_every, "repeats": repeats,
        "target_ms": TARGET_MS, "databases": results,
        "targets_met": all(q["p50_ms"] <= TARGET_MS for r in results.values() for q in r["queries"].values()),
    }
    click.echo(table(figures))
    click.echo(json.dumps(figures, ensure_ascii=False))
    return figures


def table(f: dict) -> str:
    """query | per database: p50, baseline p50, speedup | met?"""
    names = list(f["databases"])
    labels = list(next(iter(f["databases"].values()))["queries"]) if names else []
    head = ["board query"]
    for name in names:
        head += [f"{name} p50", f"{name} naive p50", f"{name} speedup"]
    head.append("<= 100 ms?")
    lines = [head]
    for label in labels:
        cells, met = [label], True
        for name in names:
            q = f["databases"][name]["queries"][label]
            base = q.get("baseline_p50_ms")
            cells += [f"{q['p50_ms']:.1f} ms", f"{base:.0f} ms" if base else "-",
                      f"{base / q['p50_ms']:.0f}x" if base else "-"]
            met &= q["p50_ms"] <= f["target_ms"]
        cells.append("yes" if met else "NO")
        lines.append(cells)
    widths = [max(len(row[c]) for row in lines) for c in range(len(head))]
    out = [f"metrics board on {f['incidents']:,} incidents; naive baseline over the events of every "
           f"{f['events_every']}th incident; p50 of {f['repeats']} runs"]
    out += [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in lines[:1]]
    out.append("-|-".join("-" * w for w in widths))
    out += [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in lines[1:]]
    for name in names:
        load_figures = f["databases"][name]["load"]
        out.append(f"{name} load: " + ", ".join(f"{k} {v}" for k, v in load_figures.items()))
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    run(incidents=int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
