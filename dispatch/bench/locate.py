"""`griddispatch bench locate`: locate on a synthetic city against its two baselines.

Measured in one run, so the figures that matter are ratios:
- index build: `AreaIndex.from_arrays` on the whole tree (what `load_index` calls);
- single locate: `AreaIndex.locate` per point against the floor, a raw shapely
  `STRtree.query(Point, predicate="intersects")` on the same buildings, the two
  alternated point by point;
- batch locate: `AreaIndex.locate_many` against one bulk `STRtree.query`;
- PostGIS (when reachable and the extension can be created): a prepared
  `ST_Contains` lookup on a GiST index, alternated with `locate` point by point;
- import: `grids.io.import_file` of the city as GeoParquet into a fresh SQLite file.

Progress goes to stderr; a table and a final single-line JSON go to stdout.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np
import shapely

from dispatch.bench.city import City, Queries, make_city, query_points
from grids.index import AreaIndex, Location, OutsideManagedArea

TARGETS = {"build_s": 5.0, "single_ratio": 1.5, "postgis_speedup": 15.0, "import_s": 60.0}
WARMUP = 500
SEED = 20240601


def _say(message: str) -> None:
    click.echo(f"[bench locate {time.strftime('%H:%M:%S')}] {message}", err=True)


def _percentiles(ns: np.ndarray) -> dict[str, float]:
    us = ns / 1000.0
    return {
        "p50_us": round(float(np.percentile(us, 50)), 2),
        "p90_us": round(float(np.percentile(us, 90)), 2),
        "p99_us": round(float(np.percentile(us, 99)), 2),
        "mean_us": round(float(us.mean()), 2),
    }


def _found(result: Location | OutsideManagedArea) -> str | None:
    """The code locate settled on (building, else grid), or None when outside."""
    if isinstance(result, OutsideManagedArea):
        return None
    return result.chain["building"] or result.chain["grid"]


def _check(results: list, queries: Queries) -> dict[str, int]:
    """How many answers were what the city says they should be, per kind of point."""
    right: dict[str, int] = {}
    for result, kind, expected in zip(results, queries.kind, queries.expected):
        if kind in ("building", "grid"):
            ok = _found(result) == expected
        elif kind == "snapped":
            ok = isinstance(result, Location) and result.method == "snapped"
        else:
            ok = isinstance(result, OutsideManagedArea)
        right[kind] = right.get(kind, 0) + int(ok)
    return right


# -- single and batch locate ----------------------------------------------------------

def time_single(index: AreaIndex, tree: shapely.STRtree, lons: list[float], lats: list[float]):
    """Per-call nanoseconds of index.locate and of the raw STRtree query, alternated."""
    n = len(lons)
    locate_ns = np.empty(n, dtype=np.int64)
    floor_ns = np.empty(n, dtype=np.int64)
    locate, query, point, clock = index.locate, tree.query, shapely.Point, time.perf_counter_ns
    for k in range(min(WARMUP, n)):  # caches, branch predictors, lazily built trees
        with suppress(OutsideManagedArea):
            locate(lons[k], lats[k])
        query(point(lons[k], lats[k]), predicate="intersects")
    for k in range(n):
        lon, lat = lons[k], lats[k]
        if k & 1:
            t0 = clock()
            try:
                locate(lon, lat)
            except OutsideManagedArea:
                pass
            t1 = clock()
            query(point(lon, lat), predicate="intersects")
            t2 = clock()
            locate_ns[k], floor_ns[k] = t1 - t0, t2 - t1
        else:
            t0 = clock()
            query(point(lon, lat), predicate="intersects")
            t1 = clock()
            try:
                locate(lon, lat)
            except OutsideManagedArea:
                pass
            t2 = clock()
            floor_ns[k], locate_ns[k] = t1 - t0, t2 - t1
    return locate_ns, floor_ns


def time_batch(index: AreaIndex, tree: shapely.STRtree, lons: np.ndarray, lats: np.ndarray,
               repeats: int = 3):
    """Best-of wall time of locate_many and of one bulk STRtree query (points included)."""
    best_locate = best_floor = math.inf
    results = None
    for r in range(repeats):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            if which == 0:
                results = index.locate_many(lons, lats)
                best_locate = min(best_locate, time.perf_counter() - t0)
            else:
                tree.query(shapely.points(lons, lats), predicate="intersects")
                best_floor = min(best_floor, time.perf_counter() - t0)
    return best_locate, best_floor, results


# -- PostGIS --------------------------------------------------------------------------

def _libpq_url(url: str) -> str:
    """postgresql+psycopg://... (SQLAlchemy style) -> postgresql://... for psycopg."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def postgis_baseline(url: str, city: City, index: AreaIndex, queries: Queries) -> tuple[dict | None, str]:
    """(figures, note); figures is None with the reason in note when PostGIS is unusable."""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed"
    try:
        conn = psycopg.connect(_libpq_url(url), connect_timeout=5, autocommit=True)
    except psycopg.Error as exc:  # any failure to connect means: no baseline
        return None, f"PostgreSQL not reachable at {url}: {str(exc).strip().splitlines()[0]}"
    schema = f"bench_locate_{uuid.uuid4().hex[:10]}"
    created_extension = False
    try:
        with conn.cursor() as cur:
            had = cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone()
            try:
                cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except psycopg.Error as exc:
                return None, f"cannot create the postgis extension: {str(exc).strip().splitlines()[0]}"
            created_extension = had is None
            version = cur.execute("SELECT postgis_lib_version(), current_setting('server_version')").fetchone()
            cur.execute(f"CREATE SCHEMA {schema}")
            load_s = {}
            for table, part in (("grids", city.grids), ("buildings", city.buildings)):
                _say(f"PostGIS: loading {part.stop - part.start} {table}")
                t0 = time.perf_counter()
                cur.execute(f"CREATE TABLE {schema}.{table} (code text, geom geometry(Polygon, 4326))")
                _copy(cur, f"{schema}.{table}", city.codes[part], city.geometries[part])
                cur.execute(f"CREATE INDEX ON {schema}.{table} USING gist (geom)")
                cur.execute(f"ANALYZE {schema}.{table}")
                load_s[table] = round(time.perf_counter() - t0, 1)

            _say(f"PostGIS: {len(queries.lons)} ST_Contains lookups alternated with locate")
            in_building = (f"SELECT code FROM {schema}.buildings WHERE "
                           "ST_Contains(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) LIMIT 1")
            in_grid = (f"SELECT code FROM {schema}.grids WHERE "
                       "ST_Contains(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) LIMIT 1")
            pg_ns, locate_ns, matches = _time_postgis(cur, in_building, in_grid, index, queries)
    finally:
        with suppress(Exception), conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            if created_extension:
                cur.execute("DROP EXTENSION IF EXISTS postgis")
        conn.close()
    pg, loc = _percentiles(pg_ns), _percentiles(locate_ns)
    figures = {
        "server": f"PostgreSQL {version[1]}, PostGIS {version[0]}",
        "load_s": load_s,
        "postgis_p50_us": pg["p50_us"],
        "postgis_p90_us": pg["p90_us"],
        "postgis_p99_us": pg["p99_us"],
        # locate measured in this loop too: right after each PostGIS round trip, so with
        # caches disturbed by the server process (a pessimistic locate figure).
        "locate_p50_us_interleaved": loc["p50_us"],
        "speedup_interleaved": round(pg["p50_us"] / loc["p50_us"], 1),
        "building_answers_agree": matches,
    }
    note = "extension created for the run and dropped after" if created_extension else "extension already present"
    return figures, note


def _copy(cur, table: str, codes: np.ndarray, geoms: np.ndarray, chunk: int = 50_000) -> None:
    """COPY code + EWKB hex (SRID 4326) in chunks."""
    with cur.copy(f"COPY {table} (code, geom) FROM STDIN") as copy:
        for start in range(0, len(codes), chunk):
            part = shapely.set_srid(geoms[start : start + chunk], 4326)
            hexes = shapely.to_wkb(part, hex=True, include_srid=True)
            copy.write("".join(f"{c}\t{h}\n" for c, h in zip(codes[start : start + chunk], hexes)))


def _time_postgis(cur, in_building: str, in_grid: str, index: AreaIndex, queries: Queries):
    lons, lats = queries.lons.tolist(), queries.lats.tolist()
    n = len(lons)
    pg_ns = np.empty(n, dtype=np.int64)
    locate_ns = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns

    def postgis(lon: float, lat: float):
        row = cur.execute(in_building, (lon, lat), prepare=True).fetchone()
        if row is None:  # the same fallback locate makes: the grid
            row = cur.execute(in_grid, (lon, lat), prepare=True).fetchone()
        return row

    def locate(lon: float, lat: float):
        with suppress(OutsideManagedArea):
            index.locate(lon, lat)

    for k in range(min(WARMUP, n)):
        postgis(lons[k], lats[k])
        locate(lons[k], lats[k])
    agree = 0
    for k in range(n):
        lon, lat = lons[k], lats[k]
        first, second = (postgis, locate) if k & 1 else (locate, postgis)
        t0 = clock()
        a = first(lon, lat)
        t1 = clock()
        b = second(lon, lat)
        t2 = clock()
        row = a if k & 1 else b
        if k & 1:
            pg_ns[k], locate_ns[k] = t1 - t0, t2 - t1
        else:
            locate_ns[k], pg_ns[k] = t1 - t0, t2 - t1
        if queries.kind[k] == "building" and row is not None and row[0] == queries.expected[k]:
            agree += 1
    return pg_ns, locate_ns, agree


# -- import ---------------------------------------------------------------------------

def measure_import(city: City) -> dict:
    """Write the city as GeoParquet and import it into a fresh SQLite database."""
    import geopandas as gpd
    from tqdm import tqdm

    from dispatch.db import Database
    from grids.io import import_file
    from grids.store import load_index

    with tempfile.TemporaryDirectory(prefix="bench-locate-") as tmp:
        path = Path(tmp) / "city.parquet"
        _say(f"import: writing {len(city)} areas to GeoParquet")
        t0 = time.perf_counter()
        gpd.GeoDataFrame(
            {"code": city.codes, "name": city.names, "level": city.levels,
             "parent_code": city.parents},
            geometry=city.geometries, crs="EPSG:4326",
        ).to_parquet(path)
        write_s = time.perf_counter() - t0
        parquet_mb = path.stat().st_size / 1e6
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            db.upgrade()
            _say("import: grids.io.import_file into a fresh SQLite database")
            t0 = time.perf_counter()
            with db.session() as session, tqdm(
                desc="writing areas", unit=" areas", total=len(city), file=sys.stderr,
                disable=None, mininterval=2,
            ) as bar:
                plan = import_file(session, path, progress=bar.update)
            import_s = time.perf_counter() - t0
            _say("import: load_index from the database (what every process does on a change)")
            t0 = time.perf_counter()
            with db.session() as session:
                loaded = load_index(session)
            load_index_s = time.perf_counter() - t0
            db_mb = (Path(tmp) / "bench.db").stat().st_size / 1e6
        finally:
            db.dispose()
    return {
        "import_s": round(import_s, 1),
        "imported": len(plan.areas),
        "parquet_write_s": round(write_s, 1),
        "parquet_mb": round(parquet_mb),
        "sqlite_mb": round(db_mb),
        "load_index_s": round(load_index_s, 1),
        "load_index_areas": len(loaded),
    }


# -- the run --------------------------------------------------------------------------

def run(*, n_grids: int = 100_000, n_buildings: int = 1_000_000, queries: int = 20_000,
        postgis_url: str | None = None, time_import: bool = True, seed: int = SEED) -> dict:
    """Run the benchmark, print the table and the JSON line, and return the figures."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    city = make_city(n_grids, n_buildings, seed=seed, progress=lambda m: _say(f"city: {m}"))
    city_s = time.perf_counter() - t0
    _say(f"city: {city.counts()} in {city_s:.1f} s")

    _say("index: AreaIndex.from_arrays on the whole tree")
    t0 = time.perf_counter()
    index = AreaIndex.from_arrays(city.codes, city.levels, city.parents, city.geometries)
    build_s = time.perf_counter() - t0
    _say(f"index: built in {build_s:.2f} s")
    # The floor: a plain tree on the same building geometries.
    t0 = time.perf_counter()
    tree = shapely.STRtree(city.geometries[city.buildings])
    strtree_build_s = time.perf_counter() - t0

    q = query_points(city, queries, seed=seed + 1)
    _say(f"single: {queries} points, locate and raw STRtree alternated")
    locate_ns, floor_ns = time_single(index, tree, q.lons.tolist(), q.lats.tolist())
    loc, floor = _percentiles(locate_ns), _percentiles(floor_ns)
    by_kind = {
        kind: round(float(np.percentile(locate_ns[q.kind == kind], 50)) / 1000, 2)
        for kind in ("building", "grid", "snapped", "outside") if np.any(q.kind == kind)
    }
    single = {
        "locate_p50_us": loc["p50_us"], "locate_p90_us": loc["p90_us"],
        "locate_p99_us": loc["p99_us"], "locate_mean_us": loc["mean_us"],
        "strtree_p50_us": floor["p50_us"], "strtree_p90_us": floor["p90_us"],
        "strtree_p99_us": floor["p99_us"], "strtree_mean_us": floor["mean_us"],
        "ratio": round(loc["p50_us"] / floor["p50_us"], 2),
        "locate_p50_us_by_kind": by_kind,
    }

    _say("batch: locate_many against one bulk STRtree query")
    many_s, bulk_s, results = time_batch(index, tree, q.lons, q.lats)
    batch = {
        "locate_many_s": round(many_s, 4),
        "locate_many_points_per_s": round(queries / many_s),
        "strtree_s": round(bulk_s, 4),
        "strtree_points_per_s": round(queries / bulk_s),
        "ratio": round(many_s / bulk_s, 2),
    }
    correct = _check(results, q)
    kinds = dict(zip(*np.unique(q.kind.astype(str), return_counts=True)))
    correct = {k: f"{correct.get(k, 0)}/{int(kinds[k])}" for k in kinds}

    postgis, postgis_note = (None, "no --postgis-url")
    if postgis_url:
        _say(f"PostGIS: trying {postgis_url}")
        postgis, postgis_note = postgis_baseline(postgis_url, city, index, q)
        if postgis:
            # The headline compares with the single-locate p50 measured above.
            postgis["locate_p50_us"] = single["locate_p50_us"]
            postgis["speedup"] = round(postgis["postgis_p50_us"] / single["locate_p50_us"], 1)
        _say(f"PostGIS: {postgis_note}")

    imported = measure_import(city) if time_import else None

    figures = {
        "bench": "locate",
        "date": started.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "shapely": shapely.__version__, "geos": shapely.geos_version_string},
        "grids": n_grids,
        "buildings": n_buildings,
        "areas": len(city),
        "queries": queries,
        "city_s": round(city_s, 1),
        "build_s": round(build_s, 2),
        "strtree_build_s": round(strtree_build_s, 2),
        "single": single,
        "batch": batch,
        "correct": correct,
        "postgis": postgis,
        "postgis_note": postgis_note,
        "import_s": imported["import_s"] if imported else None,
        "import": imported,
        "targets_met": {
            "build_s": build_s <= TARGETS["build_s"],
            "single_ratio": single["ratio"] <= TARGETS["single_ratio"],
            "postgis_speedup": (postgis["speedup"] >= TARGETS["postgis_speedup"]
                                if postgis else None),
            "import_s": (imported["import_s"] <= TARGETS["import_s"] if imported else None),
        },
    }
    click.echo(table(figures))
    click.echo(json.dumps(figures, ensure_ascii=False))
    return figures


def _yes(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "NO")


def table(f: dict) -> str:
    """The human table: metric, value, baseline, ratio, target, met?"""
    s, b, p, imp, met = f["single"], f["batch"], f["postgis"], f["import"], f["targets_met"]
    rows = [
        ("index build (from_arrays)", f"{f['build_s']:.2f} s", "-", "-", "<= 5 s",
         _yes(met["build_s"])),
        ("single locate p50 vs raw STRtree", f"{s['locate_p50_us']:.1f} us",
         f"{s['strtree_p50_us']:.1f} us", f"{s['ratio']:.2f}x", "<= 1.5x",
         _yes(met["single_ratio"])),
        ("single locate p90", f"{s['locate_p90_us']:.1f} us", f"{s['strtree_p90_us']:.1f} us",
         f"{s['locate_p90_us'] / s['strtree_p90_us']:.2f}x", "-", "-"),
        ("single locate p99", f"{s['locate_p99_us']:.1f} us", f"{s['strtree_p99_us']:.1f} us",
         f"{s['locate_p99_us'] / s['strtree_p99_us']:.2f}x", "-", "-"),
        ("single locate mean", f"{s['locate_mean_us']:.1f} us", f"{s['strtree_mean_us']:.1f} us",
         f"{s['locate_mean_us'] / s['strtree_mean_us']:.2f}x", "-", "-"),
        ("batch locate_many vs bulk STRtree", f"{b['locate_many_points_per_s']:,} pt/s",
         f"{b['strtree_points_per_s']:,} pt/s", f"{b['ratio']:.2f}x time", "-", "-"),
    ]
    if p:
        rows.append(("single locate p50 vs PostGIS p50", f"{p['locate_p50_us']:.1f} us",
                     f"{p['postgis_p50_us']:.1f} us", f"{p['speedup']:.1f}x faster", ">= 15x",
                     _yes(met["postgis_speedup"])))
        rows.append(("  same, locate alternated with PostGIS", f"{p['locate_p50_us_interleaved']:.1f} us",
                     f"{p['postgis_p50_us']:.1f} us", f"{p['speedup_interleaved']:.1f}x faster",
                     "-", "-"))
    else:
        rows.append(("single locate vs PostGIS", "-", "skipped", "-", ">= 15x", "n/a"))
    if imp:
        rows.append(("import GeoParquet -> SQLite", f"{imp['import_s']:.1f} s", "-", "-",
                     "<= 60 s", _yes(met["import_s"])))
        rows.append(("load_index from SQLite", f"{imp['load_index_s']:.1f} s", "-", "-", "-", "-"))
    else:
        rows.append(("import GeoParquet -> SQLite", "skipped", "-", "-", "<= 60 s", "n/a"))
    head = ("metric", "value", "baseline", "ratio", "target", "met?")
    widths = [max(len(str(r[c])) for r in [head, *rows]) for c in range(len(head))]
    line = "-|-".join("-" * w for w in widths)
    right = ", ".join(f"{k} {v}" for k, v in f["correct"].items())
    title = (f"locate on {f['grids']:,} grids / {f['buildings']:,} buildings "
             f"({f['areas']:,} areas), {f['queries']:,} query points; answers right: {right}")
    out = [title]
    if not p:
        out.append(f"PostGIS baseline skipped: {f['postgis_note']}")
    out.append(" | ".join(str(h).ljust(w) for h, w in zip(head, widths)))
    out.append(line)
    out += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)
