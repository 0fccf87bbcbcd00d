"""Import and export of the area tree through geopandas (GeoJSON, GeoPackage, Shapefile, GeoParquet).

An import is planned completely before anything is written: every feature is checked
(geometry, type, code, level, parent, containment) and every problem is reported with the
feature it belongs to. Only a plan without problems is written, in one transaction, so a
rejected import leaves the database exactly as it was.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from grids import LEVELS, level_rank
from grids.geometry import geometry_problem, repair
from grids.store import Area, NewArea, add_areas, areas_by_code, existing_codes
from grids.text import HIDDEN_CATEGORIES, hidden_character, unstorable_in_text

FORMATS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".parquet": "GeoParquet",
    ".geoparquet": "GeoParquet",
}
# Looked for in this order when none is named; "parent_cod" is what Shapefile makes of "parent_code".
PARENT_FIELDS = ("parent_code", "parent", "parent_cod")
MIN_SHARE_INSIDE_PARENT = 0.5  # a child must lie at least half inside its parent
# Streets, communities and grids are drawn not to overlap (全覆盖、不重叠); a shared edge
# digitised twice leaves slivers of far less than a square metre, which are not worth a word.
OVERLAP_LEVELS = ("street", "community", "grid")
OVERLAP_WORTH_SAYING_M2 = 1.0
MAX_PROBLEMS_LISTED = 50
CODE_LENGTH = Area.__table__.c.code.type.length
NAME_LENGTH = Area.__table__.c.name.type.length
# How far (degrees) a feature may lie outside its CRS's area of use. A city just past a
# projection zone's edge is still drawn well; coordinates that only make sense in another
# CRS are far out (a Web Mercator y of 1e8 m lands within metres of the North Pole).
AREA_OF_USE_MARGIN = 3.0


class ImportRejected(Exception):
    """The file cannot be imported; `problems` names each feature and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_PROBLEMS_LISTED]
        more = len(problems) - len(shown)
        text = "\n".join(f"  - {p}" for p in shown)
        if more:
            text += f"\n  ... and {more} more"
        super().__init__(f"import rejected, nothing was written ({len(problems)} problems):\n{text}")


@dataclass
class ImportPlan:
    """What an import will write, and what it did on the way (repairs, parents it chose)."""

    areas: list[NewArea]
    source_crs: str
    repaired: list[str] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for area in self.areas:
            counts[area.level] = counts.get(area.level, 0) + 1
        return {level: counts[level] for level in LEVELS if level in counts}


def file_format(path: str | Path) -> str:
    """The format name for a path, from its extension; ValueError saying which ones are known."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown file type {suffix or '(none)'}; use one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def read_frame(path: str | Path, *, layer: str | None = None, crs: str | None = None) -> gpd.GeoDataFrame:
    """Read a geodata file into EPSG:4326; `crs` is used when the file declares none and overrides it otherwise."""
    try:
        fmt = file_format(path)
    except ValueError as exc:
        raise ImportRejected([str(exc)]) from exc
    if not Path(path).exists():
        raise ImportRejected([f"{path}: no such file"])
    try:
        if fmt == "GeoParquet":
            frame = gpd.read_parquet(path)
        else:
            # Unreadable geometries (unclosed rings) become None and are reported per feature.
            frame = gpd.read_file(path, layer=layer, engine="pyogrio", on_invalid="ignore")
    except Exception as exc:  # pyogrio/arrow raise many kinds; the message is what matters
        raise ImportRejected([f"{path}: cannot read the file: {exc}"]) from exc
    if crs:
        try:
            given = pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError as exc:
            raise ImportRejected([f"--crs {crs}: not a known coordinate reference system"]) from exc
        frame = frame.set_crs(given, allow_override=True)
    if frame.crs is None:
        raise ImportRejected(
            [f"{path}: the file declares no coordinate reference system; give one with --crs (e.g. --crs EPSG:4326)"]
        )
    source_crs = frame.crs.to_string()
    frame.attrs["area_of_use"] = frame.crs.area_of_use  # None for a CRS that states none
    if not frame.crs.equals(pyproj.CRS.from_epsg(4326)):
        try:
            frame = frame.to_crs(4326)
        except (pyproj.exceptions.CRSError, pyproj.exceptions.ProjError) as exc:
            # An engineering CRS (a site's local axes) has no way to longitude and latitude.
            raise ImportRejected([f"{path}: cannot convert {source_crs} to WGS84 lon/lat: {exc}"]) from exc
    frame.attrs["source_crs"] = source_crs
    return frame


def _outside_area_of_use(bounds: np.ndarray, area: Any) -> np.ndarray:
    """Which rows of (min lon, min lat, max lon, max lat) lie beyond the CRS's area of use
    by more than the margin; none when the CRS states no area."""
    if area is None:
        return np.zeros(len(bounds), dtype=bool)
    m = AREA_OF_USE_MARGIN
    outside = (bounds[:, 1] < area.south - m) | (bounds[:, 3] > area.north + m)
    if area.west <= area.east:  # an area across the antimeridian is checked by latitude only
        outside |= (bounds[:, 0] < area.west - m) | (bounds[:, 2] > area.east + m)
    return outside


def _area_of_use_problem(geometry: shapely.Geometry, plan: ImportPlan, area: Any) -> str | None:
    if area is None or not _outside_area_of_use(np.array([geometry.bounds]), area)[0]:
        return None
    lon_lat = ", ".join(f"{v:.6g}" for v in geometry.bounds)
    return (f"coordinates outside the area where {plan.source_crs} is used ({area.name}: "
            f"lon {area.west:g} to {area.east:g}, lat {area.south:g} to {area.north:g}): "
            f"lon/lat bounds ({lon_lat}); is the CRS right?")


def _label(position: int, code: Any) -> str:
    return f"feature #{position + 1} (code {code!r})" if code not in (None, "") else f"feature #{position + 1}"


def _text(value: Any) -> str | None:
    """A cell as clean text, or None when empty (NaN, None, blank)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # codes read from Shapefiles often come back as floats
    text = str(value).strip()
    return text or None


class _NotStorable(ValueError):
    """A property value that the properties' JSON cannot hold."""


def _json_value(value: Any, where: str) -> Any:
    """A cell (or a part of a nested one) as JSON can hold it; None when it is missing."""
    if isinstance(value, np.ndarray):  # a list column
        value = value.tolist()
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise _NotStorable(f"property {where!r} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        problem = _unstorable(value, f"property {where!r}")
        if problem:
            raise _NotStorable(problem)
        return value
    if isinstance(value, (datetime.date, datetime.time)):  # datetimes and Timestamps too
        return value.isoformat()
    if isinstance(value, dict):
        return {_key(k, where): _json_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise _NotStorable(f"property {where!r} holds {type(value).__name__}, which JSON cannot hold")


def _key(key: Any, where: str) -> str:
    problem = _unstorable(str(key), f"a key of property {where!r}")
    if problem:
        raise _NotStorable(problem)
    return str(key)


def _unstorable(text: str, what: str) -> str | None:
    """'<what> must not contain …' when `text` holds what no field can store, else None."""
    found = unstorable_in_text(text, what)
    return " ".join(found) if found is not None else None


def _properties(row: dict[str, Any], skip: set[str]) -> dict[str, Any]:
    """The feature's other columns, as JSON; _NotStorable naming the first that cannot be."""
    props: dict[str, Any] = {}
    for key, value in row.items():
        if key in skip:
            continue
        if key == "properties":  # written by export_file; GeoJSON readers may hand back a dict
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            if isinstance(value, dict):
                props.update(_json_value(value, "properties"))
                continue
        value = _json_value(value, str(key))
        if value is not None:
            props[_key(key, str(key))] = value
    return props


def _text_problem(value: str | None, what: str, limit: int) -> str | None:
    """Why a code or name cannot be stored as it is, or None."""
    if value is None:
        return None
    problem = _unstorable(value, what)
    if problem:
        return problem
    if len(value) > limit:
        return f"{what} is too long ({len(value)} characters, at most {limit})"
    return None


# Besides what hides in any name, space characters other than a plain space (a no-break
# space looks like one) and combining marks: none is seen as itself where a code is read.
CODE_REFUSED_CATEGORIES = HIDDEN_CATEGORIES | {"Zs", "Mn", "Me"}


def _code_problem(code: str | None, what: str) -> str | None:
    """Why a code cannot name an area, or None. A code is typed, compared and put in a URL
    path: a zero-width space or a direction mark would make a second area that looks like
    the first, and a "/" one that `GET /areas/<code>` cannot reach."""
    problem = _text_problem(code, what, CODE_LENGTH)
    if problem or code is None:
        return problem
    char = hidden_character(code, categories=CODE_REFUSED_CATEGORIES, also="/")
    return None if char is None else f"{what} must not contain {char!r} (U+{ord(char):04X})"


def plan_import(
    session: Session,
    frame: gpd.GeoDataFrame,
    *,
    level: str | None = None,
    code_field: str = "code",
    name_field: str = "name",
    parent_field: str | None = None,
    fix_invalid: bool = False,
    checked: Callable[[int], None] | None = None,
) -> ImportPlan:
    """Check every feature and decide each one's parent; raise ImportRejected listing all problems.

    `checked(n)` is called as features are checked, for a progress bar.
    """
    columns = set(frame.columns)
    problems: list[str] = []
    geometry_column = frame.geometry.name
    for option, name in (("--code-field", code_field), ("--name-field", name_field),
                         ("--parent-field", parent_field)):
        if name == geometry_column:
            raise ImportRejected([f"{option} {name}: that is the geometry column"])
    if code_field not in columns:
        others = sorted(columns - {geometry_column})
        raise ImportRejected([f"no code field {code_field!r} (columns: {', '.join(others)})" if others else
                              f"no code field {code_field!r}: the features have no attributes at all "
                              "(a Shapefile without its .dbf?)"])
    if name_field not in columns and name_field != "name":
        raise ImportRejected([f"no name field {name_field!r}"])
    if level is None and "level" not in columns:
        raise ImportRejected(["no 'level' column in the file; give --level"])
    if level is not None and level not in LEVELS:
        raise ImportRejected([f"--level {level!r} is not one of {', '.join(LEVELS)}"])
    if parent_field is None:
        parent_field = next((f for f in PARENT_FIELDS if f in columns), None)
    elif parent_field not in columns:
        raise ImportRejected([f"no parent field {parent_field!r}"])

    skip = {code_field, name_field, "level", parent_field or ""}
    plan = ImportPlan(areas=[], source_crs=frame.attrs.get("source_crs", "EPSG:4326"))
    geometries = np.asarray(frame.geometry, dtype=object)
    # Vectorized first pass; only the few suspect features pay for a detailed reason.
    bounds = shapely.bounds(geometries)  # NaN for a missing or empty geometry
    suspect = ~(
        shapely.is_valid(geometries)
        & ~shapely.is_empty(geometries)
        & np.isin(shapely.get_type_id(geometries), (3, 6))  # Polygon, MultiPolygon
    ) | (bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (bounds[:, 1] < -90) | (bounds[:, 3] > 90)
    area_of_use = frame.attrs.get("area_of_use")
    suspect |= _outside_area_of_use(bounds, area_of_use)
    # Column by column, then zipped: DataFrame.to_dict("records") boxes every cell on its
    # own and took seconds for a million features.
    names = [c for c in frame.columns if c != geometry_column]
    # (The code field is among them, checked above, so zip() sees at least one column.)
    records = [dict(zip(names, cells)) for cells in zip(*(frame[c].tolist() for c in names))]
    seen: dict[str, int] = {}
    for position, row in enumerate(records):
        if checked is not None and position % 10000 == 0 and position:
            checked(10000)
        code = _text(row.get(code_field))
        label = _label(position, code)
        if code is None:
            problems.append(f"{label}: missing code in field {code_field!r}")
            continue
        if code in seen:
            problems.append(f"{label}: duplicate code, also feature #{seen[code] + 1}")
            continue
        seen[code] = position
        row_level = level or _text(row.get("level"))
        if row_level not in LEVELS:
            problems.append(f"{label}: unknown level {row_level!r} (expected one of {', '.join(LEVELS)})")
            continue
        geometry = geometries[position]
        if suspect[position]:
            problem = geometry_problem(geometry) if geometry is not None else "missing or unreadable geometry"
            if problem and problem.startswith("invalid geometry") and fix_invalid:
                fixed = repair(geometry)
                if fixed is None or fixed.is_empty:
                    problems.append(f"{label}: {problem}; repair left nothing polygonal")
                    continue
                plan.repaired.append(f"{label}: {problem}; repaired")
                geometry, problem = fixed, geometry_problem(fixed)  # its range, say
            problem = problem or _area_of_use_problem(geometry, plan, area_of_use)
            if problem:
                hint = " (use --fix-invalid to repair it)" if problem.startswith("invalid geometry") else ""
                problems.append(f"{label}: {problem}{hint}")
                continue
        parent = _text(row.get(parent_field)) if parent_field else None
        name = _text(row.get(name_field)) or code
        problem = (_code_problem(code, "the code") or _text_problem(name, "the name", NAME_LENGTH)
                   or _code_problem(parent, "the parent code"))
        try:
            properties = _properties(row, skip)
        except _NotStorable as exc:
            problem = problem or str(exc)
        if problem:
            problems.append(f"{label}: {problem}")
            continue
        plan.areas.append(
            NewArea(
                code=code,
                name=name,
                level=row_level,
                parent_code=parent,
                geometry=geometry,
                properties=properties,
            )
        )

    taken = existing_codes(session, (a.code for a in plan.areas))
    for area in plan.areas:
        if area.code in taken:
            problems.append(f"{_label(seen[area.code], area.code)}: duplicate code, already in the database")
    if not problems:
        problems.extend(_check_parents(session, plan, seen))
    if problems:
        raise ImportRejected(problems)
    plan.areas.sort(key=lambda a: level_rank(a.level))  # parents are written before children
    plan.overlaps = _overlaps(session, plan)
    return plan


def _overlaps(session: Session, plan: ImportPlan) -> list[str]:
    """Each new street, community or grid sharing ground with another of its level, in the
    file or stored. Not refused (a boundary survey may be under way), but said: a point in
    the shared part goes to the lower code, which may not be who works it."""
    found: list[str] = []
    geod = pyproj.Geod(ellps="WGS84")
    for level in OVERLAP_LEVELS:
        new = [a for a in plan.areas if a.level == level]
        if not new:
            continue
        codes = [a.code for a in new]
        geoms = np.array([a.geometry for a in new], dtype=object)
        stored = session.execute(select(Area.code, Area.geom_wkb).where(Area.level == level)).all()
        if stored:
            # Only the stored ones the new ones touch: a grid added to a city's thousands
            # is checked against its neighbours.
            stored_geoms = shapely.from_wkb(np.array([wkb for _, wkb in stored], dtype=object))
            near = np.unique(shapely.STRtree(stored_geoms).query(geoms, predicate="intersects")[1])
            codes += [stored[k][0] for k in near]
            geoms = np.concatenate([geoms, stored_geoms[near]])
        # GEOS's coverage check flags, in one pass, each polygon with an edge inside another
        # (of two that overlap, one at least) or not matching its neighbour's vertex for
        # vertex: about 5 s for 100,000 grids, against 10 s for testing every pair of
        # neighbours. Only the flagged ones are paired up with what they touch.
        flagged = np.flatnonzero(~shapely.is_empty(shapely.coverage_invalid_edges(geoms)))
        if not len(flagged):
            continue
        hit, other = shapely.STRtree(geoms).query(geoms[flagged], predicate="intersects")
        pairs = np.sort(np.stack([flagged[hit], other], axis=1), axis=1)
        pairs = np.unique(pairs[(pairs[:, 0] != pairs[:, 1]) & (pairs[:, 0] < len(new))], axis=0)
        first, second = pairs[:, 0], pairs[:, 1]  # a new area first: a stored one's index is above
        # Neighbours touch along their edges: only pairs whose insides meet need measuring.
        inside = shapely.relate_pattern(geoms[first], geoms[second], "2********")
        for i, j in zip(first[inside], second[inside]):
            shared = shapely.intersection(geoms[i], geoms[j])
            m2 = abs(geod.geometry_area_perimeter(shared)[0]) if not shared.is_empty else 0.0
            if m2 >= OVERLAP_WORTH_SAYING_M2:
                # Locate decides by grid (a street or community by its grids), and of two
                # grids holding a point outside any building the lower code takes it.
                then = f": a point there outside a building goes to {min(codes[i], codes[j])!r}" \
                    if level == "grid" else ""
                found.append(f"{level} {codes[i]!r} overlaps {level} {codes[j]!r} by {m2:,.0f} m²{then}")
    return found


def _check_parents(session: Session, plan: ImportPlan, seen: dict[str, int]) -> list[str]:
    """Resolve given parents, place parentless areas by largest overlap, check containment."""
    problems: list[str] = []
    in_file = {a.code: a for a in plan.areas}
    stored = areas_by_code(session, {a.parent_code for a in plan.areas if a.parent_code} - in_file.keys())
    for area in plan.areas:
        label = _label(seen[area.code], area.code)
        if area.parent_code is None:
            continue
        parent_level = (in_file[area.parent_code].level if area.parent_code in in_file
                        else stored[area.parent_code].level if area.parent_code in stored else None)
        if parent_level is None:
            problems.append(f"{label}: unknown parent code {area.parent_code!r}")
        elif level_rank(parent_level) != level_rank(area.level) - 1:
            problems.append(
                f"{label}: parent {area.parent_code!r} is a {parent_level}, a {area.level} needs a "
                f"{LEVELS[level_rank(area.level) - 1] if area.level != LEVELS[0] else 'no parent'}"
            )
    if problems:
        return problems

    def geometry_of(code: str) -> shapely.Geometry:
        return in_file[code].geometry if code in in_file else stored[code].geometry

    # Containment, vectorized: most children lie wholly inside their parent, so the cheap
    # `within` test settles them and only the rest pay for an intersection.
    with_parent = [a for a in plan.areas if a.parent_code]
    if with_parent:
        children = np.array([a.geometry for a in with_parent], dtype=object)
        parents = np.array([geometry_of(a.parent_code) for a in with_parent], dtype=object)
        inside = shapely.within(children, parents)
        holders: dict[str, _Holders] = {}
        for i in np.flatnonzero(~inside):
            area = with_parent[i]
            share = _share_inside(children[i], parents[i])
            if share >= MIN_SHARE_INSIDE_PARENT:
                continue
            label = _label(seen[area.code], area.code)
            if area.level == "building" and share > 0:
                # A building straddling several grids belongs to the one it overlaps most.
                level = LEVELS[level_rank(area.level) - 1]
                holders.setdefault(level, _Holders(session, plan, level))
                best_code, best_share = holders[level].largest([area.geometry])[0]
                if best_code == area.parent_code or best_share <= share + 1e-9:
                    continue
                problems.append(f"{label}: lies mostly in {best_code!r} ({best_share:.0%}), "
                                f"not in its parent {area.parent_code!r} ({share:.0%})")
                continue
            problems.append(f"{label}: lies outside its parent {area.parent_code!r} "
                            f"(only {share:.0%} of it inside)")
    problems.extend(_place_orphans(session, plan, seen, in_file))
    return problems


def _share_inside(child: shapely.Geometry, parent: shapely.Geometry) -> float:
    area = child.area
    return shapely.intersection(child, parent).area / area if area > 0 else 0.0


class _Holders:
    """The areas of one level, in the file and stored, that may hold areas of the level below."""

    def __init__(self, session: Session, plan: ImportPlan, level: str) -> None:
        candidates = [(a.code, a.geometry) for a in plan.areas if a.level == level]
        candidates += [
            (code, shapely.from_wkb(wkb))
            for code, wkb in session.execute(select(Area.code, Area.geom_wkb).where(Area.level == level))
        ]
        self.codes = np.array([c for c, _ in candidates], dtype=object)
        self.tree = shapely.STRtree(np.array([g for _, g in candidates], dtype=object))

    def __bool__(self) -> bool:
        return len(self.codes) > 0

    def largest(self, geometries: list[shapely.Geometry]) -> list[tuple[str, float] | None]:
        """For each geometry, the holder it overlaps most and the share of it inside (None: none)."""
        geoms = np.array(geometries, dtype=object)
        child_idx, holder_idx = self.tree.query(geoms, predicate="intersects")
        overlap = shapely.area(shapely.intersection(geoms[child_idx], self.tree.geometries[holder_idx]))
        # Largest overlap wins; ties go to the smaller code so the answer never depends on order.
        order = np.lexsort((self.codes[holder_idx].astype(str), -overlap, child_idx))
        best: list[tuple[str, float] | None] = [None] * len(geoms)
        areas = shapely.area(geoms)
        for k in order:
            i = int(child_idx[k])
            if best[i] is None:
                share = overlap[k] / areas[i] if areas[i] > 0 else 0.0
                best[i] = (str(self.codes[holder_idx[k]]), float(share))
        return best


def _place_orphans(
    session: Session, plan: ImportPlan, seen: dict[str, int], in_file: dict[str, NewArea]
) -> list[str]:
    """Give each parentless area below the top the area one level up that holds most of it."""
    problems: list[str] = []
    for level in LEVELS[1:]:
        orphans = [a for a in plan.areas if a.level == level and a.parent_code is None]
        if not orphans:
            continue
        parent_level = LEVELS[level_rank(level) - 1]
        holders = _Holders(session, plan, parent_level)
        if not holders:
            continue  # nothing above them: they stay roots
        for area, best in zip(orphans, holders.largest([a.geometry for a in orphans])):
            if best is None:
                # It touches nothing one level up. A building must lie in a grid (and a unit
                # in a building), or reports there would reach nobody; above, it stays a root.
                if level in ("building", "unit"):
                    problems.append(f"{_label(seen[area.code], area.code)}: it lies in no {parent_level}")
                continue
            area.parent_code, share = best
            plan.placed.append(f"{area.code} -> {area.parent_code} ({share:.0%} inside)")
            if share < MIN_SHARE_INSIDE_PARENT and level not in ("building", "unit"):
                problems.append(
                    f"{_label(seen[area.code], area.code)}: no {parent_level} holds most of it "
                    f"(best {area.parent_code!r} with {share:.0%})"
                )
        in_file.update({a.code: a for a in orphans})
    return problems


def import_file(
    session: Session,
    path: str | Path,
    *,
    layer: str | None = None,
    level: str | None = None,
    code_field: str = "code",
    name_field: str = "name",
    parent_field: str | None = None,
    crs: str | None = None,
    fix_invalid: bool = False,
    checked: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportPlan:
    """Read, check and write one file inside the caller's transaction; all or nothing."""
    frame = read_frame(path, layer=layer, crs=crs)
    if frame.empty:
        raise ImportRejected([f"{path}: the file has no features"])
    plan = plan_import(
        session,
        frame,
        level=level,
        code_field=code_field,
        name_field=name_field,
        parent_field=parent_field,
        fix_invalid=fix_invalid,
        checked=checked,
    )
    add_areas(session, plan.areas, progress=progress)
    return plan


def areas_frame(session: Session, *, level: str | None = None) -> gpd.GeoDataFrame:
    """Stored areas as a GeoDataFrame in EPSG:4326, parents first."""
    query = select(Area.code, Area.name, Area.level, Area.parent_code, Area.properties, Area.geom_wkb)
    if level:
        query = query.where(Area.level == level)
    rows = session.execute(query.order_by(Area.id)).all()
    return gpd.GeoDataFrame(
        {
            "code": [r.code for r in rows],
            "name": [r.name for r in rows],
            "level": [r.level for r in rows],
            # "parent" rather than "parent_code": Shapefile field names stop at 10 characters.
            "parent": [r.parent_code for r in rows],
            "properties": [json.dumps(r.properties or {}, ensure_ascii=False) for r in rows],
        },
        geometry=shapely.from_wkb(np.array([r.geom_wkb for r in rows], dtype=object)),
        crs="EPSG:4326",
    )


class ExportFailed(Exception):
    """The areas cannot be written as asked; the message says why."""


SHAPEFILE_TEXT_BYTES = 254  # a DBF text field's width


def export_file(
    session: Session, path: str | Path, *, level: str | None = None, crs: str | None = None
) -> int:
    """Write the stored areas (optionally one level, optionally reprojected) to a file; returns
    the count. ExportFailed, with nothing written, when the format cannot hold them whole."""
    try:
        fmt = file_format(path)
    except ValueError as exc:
        raise ExportFailed(str(exc)) from exc
    if not Path(path).parent.is_dir():
        raise ExportFailed(f"{path}: no such folder {str(Path(path).parent)!r}")
    frame = areas_frame(session, level=level)
    if crs:
        try:
            frame = frame.to_crs(crs)
        except (pyproj.exceptions.CRSError, pyproj.exceptions.ProjError) as exc:
            raise ExportFailed(f"--crs {crs}: not a coordinate reference system the areas can be converted to: {exc}") from exc
    if fmt == "ESRI Shapefile":
        _check_fits_a_shapefile(frame)
    try:
        if fmt == "GeoParquet":
            frame.to_parquet(path)
        else:
            kwargs = {"layer": "areas"} if fmt == "GPKG" else {}
            frame.to_file(path, driver=fmt, engine="pyogrio", **kwargs)
    except Exception as exc:  # pyogrio/arrow raise many kinds; the message is what matters
        raise ExportFailed(f"{path}: cannot write the file: {exc}") from exc
    return len(frame)


def _check_fits_a_shapefile(frame: gpd.GeoDataFrame) -> None:
    """A DBF text field holds 254 bytes, and longer values are cut without an error: refuse
    rather than write names or properties that come back shorter."""
    too_long = []
    for column in frame.columns.drop(frame.geometry.name):
        sizes = frame[column].map(lambda v: len(v.encode()) if isinstance(v, str) else 0)
        for code in frame.loc[sizes > SHAPEFILE_TEXT_BYTES, "code"].head(3):
            too_long.append(f"{column} of {code}")
    if too_long:
        raise ExportFailed(f"a Shapefile holds at most {SHAPEFILE_TEXT_BYTES} bytes of text per field, and "
                           f"{', '.join(too_long)} would be cut: export to .gpkg, .geojson or .parquet instead")
