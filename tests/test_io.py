"""Import and export: round trips in every format and two CRSs, and every bad input rejected whole."""

from __future__ import annotations

import datetime
import json
import re

import geopandas as gpd
import pandas as pd
import pytest
import shapely
import shapely.affinity
from shapely.geometry import LineString, Point, Polygon, box
from sqlalchemy import delete, func, select

from grids.io import ImportRejected, export_file, import_file
from grids.store import Area, current_revision
from tests.geodata import G1, G2, G3, ROWS, square, tree_frame

FORMATS = ["geojson", "gpkg", "shp", "parquet"]


def write(frame: gpd.GeoDataFrame, path) -> None:
    if str(path).endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_file(path, engine="pyogrio")


def stored(db) -> dict[str, tuple]:
    """code -> (name, level, parent, geometry) of every stored area."""
    with db.session() as s:
        return {
            a.code: (a.name, a.level, a.parent_code, a.geometry, a.properties)
            for a in s.scalars(select(Area))
        }


def clear(db) -> None:
    """Delete every area, children first (the parent foreign key forbids the other order)."""
    with db.session() as s:
        for level in ("unit", "building", "grid", "community", "street", "district"):
            s.execute(delete(Area).where(Area.level == level))


def do_import(db, path, **options):
    with db.session() as s:
        return import_file(s, path, **options)


def assert_unchanged(db, before: dict, revision: int) -> None:
    assert stored(db).keys() == before.keys()
    with db.session() as s:
        assert current_revision(s) == revision


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:32650"])
def test_round_trip(db, tmp_path, fmt, crs):
    source = tmp_path / f"source.{fmt}"
    write(tree_frame().to_crs(crs), source)
    plan = do_import(db, source)
    assert plan.counts() == {
        "district": 1,
        "street": 2,
        "community": 2,
        "grid": 3,
        "building": 3,
        "unit": 2,
    }
    first = stored(db)
    assert first["B1"][4] == {"floors": 6}

    exported = tmp_path / f"exported.{fmt}"
    with db.session() as s:
        assert export_file(s, exported, crs=crs) == len(ROWS)
    clear(db)
    do_import(db, exported)
    second = stored(db)
    assert second.keys() == first.keys()
    for code, (name, level, parent, geometry, props) in first.items():
        name2, level2, parent2, geometry2, props2 = second[code]
        assert (name2, level2, parent2) == (name, level, parent)
        # Reprojecting to UTM and back moves vertices by far less than a millimetre.
        assert shapely.equals_exact(geometry, geometry2, tolerance=1e-8), code
        assert props2.get("floors") == props.get("floors")


def test_import_in_projected_crs_lands_in_wgs84(db, tmp_path):
    path = tmp_path / "utm.gpkg"
    write(tree_frame().to_crs("EPSG:32650"), path)
    plan = do_import(db, path)
    assert plan.source_crs.endswith("32650")
    minx, _miny, _maxx, maxy = stored(db)["320104"][3].bounds
    assert minx == pytest.approx(118.78, abs=1e-7) and maxy == pytest.approx(32.032, abs=1e-7)


def test_crs_given_for_a_file_without_one(db, tmp_path):
    path = tmp_path / "noprj.shp"
    write(tree_frame().to_crs("EPSG:32650"), path)
    path.with_suffix(".prj").unlink()
    with pytest.raises(ImportRejected, match="declares no coordinate reference system"):
        do_import(db, path)
    do_import(db, path, crs="EPSG:32650")
    assert len(stored(db)) == len(ROWS)


def test_coordinates_far_outside_the_crs_area_of_use_are_refused(db, tmp_path):
    # Web Mercator metres of 1e8 are no place: they land within metres of the North Pole,
    # inside the lon/lat range, where the projection is not used (it stops at 85.06°).
    polar = gpd.GeoDataFrame({"code": ["POLE"], "name": ["pole"], "level": ["district"]},
                             geometry=[box(1e8, 1e8, 1.001e8, 1.001e8)], crs="EPSG:3857")
    write(polar, tmp_path / "polar.gpkg")
    with pytest.raises(ImportRejected, match=r"code 'POLE'\): coordinates outside the area where "
                       r"EPSG:3857 is used \(World between 85.06°S and 85.06°N"):
        do_import(db, tmp_path / "polar.gpkg")
    # Nanjing labelled as the Gauss-Krüger zone centred on 75°E lands 45° west, outside that zone.
    wrong_zone = tree_frame().to_crs("EPSG:4549").set_crs("EPSG:4534", allow_override=True)
    write(wrong_zone, tmp_path / "wrong_zone.gpkg")
    with pytest.raises(ImportRejected, match=r"code '320104'\): coordinates outside the area where "
                       r"EPSG:4534 is used .*is the CRS right\?") as info:
        do_import(db, tmp_path / "wrong_zone.gpkg")
    assert len(info.value.problems) == len(ROWS)  # every feature, each named
    assert stored(db) == {}
    # Just past a zone's edge is still fine: Nanjing (118.8°E) in UTM 51N (120–126°E).
    write(tree_frame().to_crs("EPSG:32651"), tmp_path / "next_zone.gpkg")
    do_import(db, tmp_path / "next_zone.gpkg")
    assert stored(db)["320104"][3].bounds[0] == pytest.approx(118.78, abs=1e-7)


def test_parentless_areas_are_placed_by_largest_overlap(db, tmp_path):
    frame = tree_frame()
    frame.loc[frame.level.isin(["grid", "building", "unit"]), "parent_code"] = None
    path = tmp_path / "orphans.geojson"
    write(frame, path)
    plan = do_import(db, path)
    areas = stored(db)
    assert areas["B2"][2] == G2  # two thirds of B2 lie in G2
    assert areas["B1"][2] == G1
    assert areas["B1-2"][2] == "B1"
    assert areas[G1][2] == "320104001001"
    assert any(line.startswith("B2 -> " + G2) for line in plan.placed)


def test_areas_with_nothing_above_stay_roots(db, tmp_path):
    path = tmp_path / "grids.geojson"
    frame = tree_frame()
    write(frame[frame.level == "grid"].drop(columns=["parent_code"]), path)
    do_import(db, path)
    assert {code: row[2] for code, row in stored(db).items()} == {
        G1: None,
        G2: None,
        "320104002001001": None,
    }


def test_import_under_areas_already_stored(db, tmp_path):
    frame = tree_frame()
    top, rest = tmp_path / "top.geojson", tmp_path / "rest.gpkg"
    write(frame[frame.level.isin(["district", "street", "community"])], top)
    write(frame[~frame.level.isin(["district", "street", "community"])], rest)
    do_import(db, top)
    do_import(db, rest)
    assert len(stored(db)) == len(ROWS)


def test_level_and_field_options(db, tmp_path):
    frame = tree_frame()
    grids = frame[frame.level == "grid"].rename(columns={"code": "WGBM", "name": "WGMC"})
    path = tmp_path / "grids.shp"
    write(grids.drop(columns=["level", "parent_code"]), path)
    do_import(db, path, level="grid", code_field="WGBM", name_field="WGMC")
    assert stored(db)[G1][:3] == ("中牌楼社区第1网格", "grid", None)


def _set_geometry(code, geometry):
    def edit(frame):
        frame.loc[frame.code == code, "geometry"] = geometry
        return frame

    return edit


def _set(code, column, value):
    def edit(frame):
        frame.loc[frame.code == code, column] = value
        return frame

    return edit


BOWTIE = Polygon(
    [(118.7802, 32.0302), (118.7806, 32.0306), (118.7806, 32.0302), (118.7802, 32.0306)]
)

BAD_INPUTS = {
    "self-intersecting": (
        _set_geometry("B1", BOWTIE),
        r"feature #9 \(code 'B1'\): invalid geometry: Self-intersection",
    ),
    "empty geometry": (_set_geometry("B1", Polygon()), r"feature #9 \(code 'B1'\): empty geometry"),
    "line": (
        _set_geometry("B3", LineString([(118.782, 32.03), (118.783, 32.031)])),
        r"feature #11 \(code 'B3'\): wrong geometry type LineString",
    ),
    "point": (
        _set_geometry("B3", Point(118.782, 32.03)),
        r"code 'B3'\): wrong geometry type Point",
    ),
    "duplicate code": (
        _set("B3", "code", "B2"),
        r"feature #11 \(code 'B2'\): duplicate code, also feature #10",
    ),
    "unknown parent": (
        _set("B3", "parent_code", "NOPE"),
        r"code 'B3'\): unknown parent code 'NOPE'",
    ),
    "parent at wrong level": (
        _set("B3", "parent_code", "320104"),
        r"code 'B3'\): parent '320104' is a district",
    ),
    "unknown level": (_set("B3", "level", "block"), r"code 'B3'\): unknown level 'block'"),
    "missing code": (_set("B3", "code", None), r"feature #11: missing code"),
    "child outside parent": (
        _set_geometry("B3", square(0.2, 1.5, 0.5, 1.8)),
        r"code 'B3'\): lies outside its parent '320104002001001' \(only 0% of it inside\)",
    ),
    # Found by fuzzing the import: a code or name longer than its column was a traceback on
    # PostgreSQL and stored whole on SQLite; a valid root out of lon/lat range was imported.
    "code too long": (_set("B3", "code", "B" * 65), r"the code is too long \(65 characters, at most 64\)"),
    "name too long": (_set("B3", "name", "名" * 201), r"code 'B3'\): the name is too long \(201 characters"),
    # Found by an area audit: a building far from every grid was kept as a root, and a
    # report there was filed with no grid and no manager.
    "building in no grid": (
        lambda frame: _set_geometry("B3", square(10, 10, 10.5, 10.5))(_set("B3", "parent_code", None)(frame)),
        r"code 'B3'\): it lies in no grid",
    ),
    "root beyond latitude 90": (
        _set_geometry("320104", box(118.78, 95.0, 118.784, 95.002)),
        r"code '320104'\): coordinates outside WGS84 lon/lat range",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
def test_bad_input_is_rejected_whole(db, tmp_path, case, fmt):
    # Something is already stored, so "nothing written" is checked against a real state.
    other = tmp_path / f"other.{fmt}"
    write(
        gpd.GeoDataFrame(
            {"code": ["X1"], "name": ["other"], "level": ["grid"]},
            geometry=[box(118.9, 32.1, 118.91, 32.11)],
            crs=4326,
        ),
        other,
    )
    do_import(db, other)
    before = stored(db)
    with db.session() as s:
        revision = current_revision(s)

    edit, match = BAD_INPUTS[case]
    path = tmp_path / f"bad.{fmt}"
    write(edit(tree_frame()), path)
    with pytest.raises(ImportRejected, match=match) as info:
        do_import(db, path)
    assert "nothing was written" in str(info.value)
    assert_unchanged(db, before, revision)


def test_every_problem_is_listed_not_just_the_first(db, tmp_path):
    frame = _set_geometry("B1", BOWTIE)(_set("B3", "parent_code", "NOPE")(tree_frame()))
    frame = _set_geometry("B2", Point(118.781, 32.031))(frame)
    path = tmp_path / "bad.gpkg"
    write(frame, path)
    with pytest.raises(ImportRejected) as info:
        do_import(db, path)
    codes = " ".join(info.value.problems)
    assert "'B1'" in codes and "'B2'" in codes


def test_code_already_in_database(db, tmp_path):
    path = tmp_path / "tree.gpkg"
    write(tree_frame(), path)
    do_import(db, path)
    with pytest.raises(
        ImportRejected, match=r"code '320104'\): duplicate code, already in the database"
    ):
        do_import(db, path)
    assert len(stored(db)) == len(ROWS)


def test_fix_invalid_repairs_and_reports(db, tmp_path):
    frame = _set_geometry("B1", BOWTIE)(tree_frame())
    frame = frame[frame.level != "unit"]
    path = tmp_path / "bowtie.gpkg"
    write(frame, path)
    plan = do_import(db, path, fix_invalid=True)
    assert plan.repaired and "B1" in plan.repaired[0]
    repaired = stored(db)["B1"][3]
    assert repaired.is_valid and repaired.geom_type == "MultiPolygon"
    # Two triangles, each a quarter of the 0.0004° square the bow-tie spans.
    assert repaired.area == pytest.approx(0.0004 * 0.0004 / 2, rel=1e-6)
    # A repair is checked like any other geometry: out of the lon/lat range it is refused.
    far = gpd.GeoDataFrame({"code": ["FAR"], "name": ["far"], "level": ["district"]}, crs=4326,
                           geometry=[shapely.affinity.translate(BOWTIE, yoff=63.0)])  # latitude 95
    write(far, tmp_path / "far.gpkg")
    with pytest.raises(ImportRejected, match=r"code 'FAR'\): coordinates outside WGS84 lon/lat range"):
        do_import(db, tmp_path / "far.gpkg", fix_invalid=True)


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("missing.gpkg", None, "no such file"),
        ("areas.csv", "code\n1\n", "unknown file type .csv"),
        ("broken.geojson", "{not json", "cannot read the file"),
    ],
)
def test_unreadable_files(db, tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ImportRejected, match=match):
        do_import(db, path)


def test_empty_file(db, tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(ImportRejected):
        do_import(db, path)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Area)) == 0


def test_missing_level_column_needs_level_option(db, tmp_path):
    path = tmp_path / "nolevel.geojson"
    write(tree_frame().drop(columns=["level"]), path)
    with pytest.raises(ImportRejected, match="no 'level' column"):
        do_import(db, path)


def test_building_straddling_grids_belongs_to_its_largest_overlap(db, tmp_path):
    frame = tree_frame()
    # B2 lies one third in G1 and two thirds in G2: G2 is right, G1 is not.
    frame.loc[frame.code == "B2", "geometry"] = square(0.6, 1.0, 1.5, 1.4)
    path = tmp_path / "straddle.gpkg"
    write(frame, path)
    do_import(db, path)
    clear(db)
    frame.loc[frame.code == "B2", "parent_code"] = G1
    write(frame, path)
    with pytest.raises(ImportRejected, match=r"code 'B2'\): lies mostly in '320104001001002' \(56%\), not in its parent '320104001001001' \(44%\)"):
        do_import(db, path)


def test_property_values_are_stored_as_json_or_refused_by_name(db, tmp_path):
    """Other columns become the area's properties. Dates, lists and missing times were a
    traceback (not JSON); values JSON cannot hold are now refused, naming the property."""
    frame = tree_frame()
    frame["opened"] = [datetime.date(2020, 1, n + 1) for n in range(len(frame))]
    frame["checked_at"] = [pd.NaT if code == "B1" else pd.Timestamp("2024-05-01T08:00:00")
                           for code in frame.code]
    frame["tags"] = [["水", "电"]] * len(frame)
    path = tmp_path / "props.parquet"
    frame.to_parquet(path)
    do_import(db, path)
    properties = {code: row[4] for code, row in stored(db).items()}
    assert properties["B1"]["opened"] == "2020-01-09" and "checked_at" not in properties["B1"]
    assert properties["B2"]["checked_at"] == "2024-05-01T08:00:00"
    assert properties["B2"]["tags"] == ["水", "电"]
    clear(db)

    for column, values, match in [
        ("blob", [b"\x00\x01"] * len(frame), r"code '320104'\): property 'blob' holds bytes"),
        ("ratio", [float("inf")] * len(frame), r"property 'ratio' is inf, which JSON cannot hold"),
        ("note", ["a\x00b"] * len(frame), r"property 'note' must not contain a NUL character"),
    ]:
        bad = tree_frame().assign(**{column: values})
        bad.to_parquet(path)
        with pytest.raises(ImportRejected, match=match):
            do_import(db, path)
        assert stored(db) == {}


def test_a_code_holding_what_no_text_field_can_is_refused(db, tmp_path):
    """A NUL was a traceback on PostgreSQL and stored on SQLite. (A lone surrogate cannot
    arrive from a file: GDAL reads "\\ud800" in GeoJSON as U+FFFD, and Arrow holds UTF-8.)"""
    frame = _set("B3", "code", "B\x003")(tree_frame())
    frame.to_parquet(tmp_path / "nul.parquet")
    with pytest.raises(ImportRejected, match="the code must not contain a NUL character"):
        do_import(db, tmp_path / "nul.parquet")
    assert stored(db) == {}


@pytest.mark.parametrize("code, shown", [
    ("B9\u200b", "U+200B"), ("\u202eB9", "U+202E"), ("B\n9", "U+000A"), ("a/b", "U+002F"),
    ("B\u00a09", "U+00A0"), ("B9\u034f", "U+034F"), ("B\u31649", "U+3164")])
def test_a_code_with_an_invisible_character_or_a_slash_is_refused(db, tmp_path, code, shown):
    """Found by an area audit: "B9" with a zero-width space was a second area looking exactly
    like B9, and "a/b" could not be read back over REST."""
    frame = _set("B3", "code", code)(tree_frame())
    frame.to_parquet(tmp_path / "odd.parquet")
    with pytest.raises(ImportRejected, match="the code must not contain .*" + re.escape(f"({shown})")):
        do_import(db, tmp_path / "odd.parquet")
    assert stored(db) == {}


def test_a_code_with_a_plain_space_is_fine(db, tmp_path):
    frame = _set("B3", "code", "Block 3")(tree_frame())
    frame.to_parquet(tmp_path / "spaced.parquet")
    do_import(db, tmp_path / "spaced.parquet")
    assert "Block 3" in stored(db)


def test_a_crs_with_no_way_to_longitude_and_latitude_is_refused(db, tmp_path):
    path = tmp_path / "tree.gpkg"
    write(tree_frame(), path)
    local = ('ENGCRS["site",EDATUM["d"],CS[Cartesian,2],AXIS["x",east,ORDER[1],LENGTHUNIT["metre",1]],'
             'AXIS["y",north,ORDER[2],LENGTHUNIT["metre",1]]]')
    with pytest.raises(ImportRejected, match=r"cannot convert .* to WGS84 lon/lat"):
        do_import(db, path, crs=local)
    assert stored(db) == {}


def test_a_geometry_with_nan_is_refused_even_when_repairing(db, tmp_path):
    frame = _set_geometry("B3", Polygon([(118.78, 32.03), (float("nan"), 32.031), (118.781, 32.031)]))(tree_frame())
    frame.to_parquet(tmp_path / "nan.parquet")
    with pytest.raises(ImportRejected, match=r"code 'B3'\): .*repair left nothing polygonal"):
        do_import(db, tmp_path / "nan.parquet", fix_invalid=True)
    assert stored(db) == {}


def test_field_options_naming_the_geometry_or_nothing_say_so(db, tmp_path):
    path = tmp_path / "tree.gpkg"
    write(tree_frame(), path)
    with pytest.raises(ImportRejected, match="--parent-field geometry: that is the geometry column"):
        do_import(db, path, parent_field="geometry")
    shapefile = tmp_path / "tree.shp"
    write(tree_frame(), shapefile)
    shapefile.with_suffix(".dbf").unlink()
    with pytest.raises(ImportRejected, match=r"no attributes at all \(a Shapefile without its \.dbf\?\)"):
        do_import(db, shapefile)
    assert stored(db) == {}



def test_grids_sharing_ground_are_imported_and_said(db, tmp_path):
    """Grids are drawn not to overlap; when they do, the import names each pair and its size."""
    write(tree_frame(), tmp_path / "tree.gpkg")
    assert do_import(db, tmp_path / "tree.gpkg").overlaps == []  # shared edges are not overlaps
    # G4 lies in stored G1 and shares an edge with stored G2; G5 overlaps G4, in the same
    # file, and G1.
    g4, g5 = "320104001001004", "320104001001005"
    grids = gpd.GeoDataFrame(
        {"code": [g4, g5], "level": "grid", "parent_code": "320104001001"},
        geometry=[square(0.9, 0, 1.0, 0.5), square(0.95, 0.4, 1.0, 0.6)], crs="EPSG:4326")
    write(grids, tmp_path / "grids.gpkg")
    plan = do_import(db, tmp_path / "grids.gpkg")
    said = [re.fullmatch(r"grid '(\d+)' overlaps grid '(\d+)' by ([\d,]+) m²: a point there "
                         r"outside a building goes to '(\d+)'", line).groups() for line in plan.overlaps]
    # About 9.4 m by 55 m, 4.7 m by 11 m and 4.7 m by 22 m.
    assert sorted(said) == [(g4, G1, "524", G1), (g4, g5, "52", g4), (g5, G1, "105", G1)]
    assert len(stored(db)) == len(ROWS) + 2  # said, not refused
    # One wholly inside a stored grid, touching none of its edges; one drawn exactly as another.
    g6, g7 = "320104002001006", "320104001001007"
    write(gpd.GeoDataFrame({"code": [g6, g7], "level": "grid", "parent_code": ["320104002001", "320104001001"]},
                           geometry=[square(3.0, 0.5, 3.2, 0.7), square(1, 0, 2, 2)], crs="EPSG:4326"),
          tmp_path / "more.gpkg")
    said = [line.split(" by ")[0] for line in do_import(db, tmp_path / "more.gpkg").overlaps]
    assert sorted(said) == [f"grid '{g7}' overlaps grid '{G2}'", f"grid '{g6}' overlaps grid '{G3}'"]
