"""The griddispatch command: init-db, import, export, locate, and an import seen by a running server."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import requests
from click.testing import CliRunner

from dispatch.cli import main
from tests.geodata import G1, ROWS, at, square, tree_frame
from tests.server import running_server


def run(database_url: str, *args: str):
    return CliRunner().invoke(
        main, list(args), env={"DATABASE_URL": database_url}, catch_exceptions=False
    )


def test_init_import_export_locate(database_url, tmp_path):
    assert run(database_url, "init-db").exit_code == 0
    source = tmp_path / "tree.geojson"
    tree_frame().to_file(source, engine="pyogrio")
    result = run(database_url, "import", str(source))
    assert result.exit_code == 0, result.output
    assert f"imported {len(ROWS)} areas" in result.output

    out = tmp_path / "out.parquet"
    result = run(database_url, "export", str(out), "--level", "building")
    assert result.exit_code == 0 and "exported 3 areas" in result.output
    assert sorted(gpd.read_parquet(out).code) == ["B1", "B2", "B3"]

    lon, lat = at(0.5, 1.0)
    result = run(database_url, "locate", str(lon), str(lat))
    assert result.exit_code == 0
    assert json.loads(result.output)["chain"]["grid"]["code"] == G1


def test_import_errors_exit_non_zero_and_write_nothing(database_url, tmp_path):
    frame = tree_frame()
    frame.loc[frame.code == "B3", "parent_code"] = "NOPE"
    source = tmp_path / "bad.gpkg"
    frame.to_file(source, engine="pyogrio")
    result = run(database_url, "import", str(source))
    assert result.exit_code == 1
    assert "unknown parent code 'NOPE'" in result.output and "nothing was written" in result.output
    out = tmp_path / "out.geojson"
    run(database_url, "export", str(out))
    assert gpd.read_file(out).empty


def test_an_import_overlapping_stored_grids_warns(database_url, tmp_path):
    source, more = tmp_path / "tree.geojson", tmp_path / "more.geojson"
    tree_frame().to_file(source, engine="pyogrio")
    assert "warning" not in run(database_url, "import", str(source)).output
    grid = gpd.GeoDataFrame({"code": ["320104001001004"], "level": "grid", "parent_code": "320104001001"},
                            geometry=[square(0.9, 0, 1.0, 0.5)], crs="EPSG:4326")
    grid.to_file(more, engine="pyogrio")
    result = run(database_url, "import", str(more))
    assert result.exit_code == 0 and "imported 1 areas" in result.output
    assert (f"warning: grid '320104001001004' overlaps grid '{G1}' by 524 m²: a point there outside "
            f"a building goes to '{G1}'") in result.output


def test_locate_outside_exits_2(database_url, tmp_path):
    source = tmp_path / "tree.geojson"
    tree_frame().to_file(source, engine="pyogrio")
    run(database_url, "import", str(source))
    result = run(database_url, "locate", "116.39", "39.9")
    assert result.exit_code == 2 and "outside the managed area" in result.output


def test_locate_bad_crs(database_url):
    run(database_url, "init-db")
    result = run(database_url, "locate", "118.78", "32.03", "--crs", "bd42")
    assert result.exit_code == 2 and "crs" in result.output


def test_running_server_sees_an_import_from_another_process(database_url, tmp_path):
    run(database_url, "init-db")
    lon, lat = at(0.5, 1.0)
    with running_server(database_url) as base:
        url = f"{base}/api/v1/locate?lon={lon}&lat={lat}"
        assert requests.get(url, timeout=5).status_code == 422  # the server's index is empty
        source = tmp_path / "tree.gpkg"
        tree_frame().to_file(source, engine="pyogrio")
        assert run(database_url, "import", str(source)).exit_code == 0
        response = requests.get(url, timeout=5)
        assert response.status_code == 200
        assert response.json()["chain"]["grid"]["code"] == G1


def test_export_and_locate_failures_are_messages_not_tracebacks(database_url, tmp_path):
    """Found by an area audit: each of these was a Python traceback (or, for a Shapefile,
    names cut at 254 bytes and an exit 0)."""
    for command in (("locate", "118.78", "32.03"), ("export", str(tmp_path / "none.geojson"))):
        fresh = run(database_url, *command)  # no init-db yet: a message, and nothing created
        assert fresh.exit_code == 1 and "needs `griddispatch init-db`" in fresh.output, fresh.output
    source = tmp_path / "tree.geojson"
    frame = tree_frame()
    frame.loc[frame.code == "B3", "name"] = "名" * 200  # 600 bytes of UTF-8
    frame.to_file(source, engine="pyogrio")
    assert run(database_url, "import", str(source)).exit_code == 0
    for args, said in [
        ((str(tmp_path / "out.geojson"), "--crs", "FOO"), "--crs FOO"),
        ((str(tmp_path / "no-such-folder" / "out.geojson"),), "no such folder"),
        ((str(tmp_path / "out.xyz"),), "unknown file type .xyz"),
        ((str(tmp_path / "out.shp"),), "name of B3 would be cut"),
    ]:
        result = run(database_url, "export", *args)
        assert result.exit_code == 1, (args, result.output)
        assert "export failed, nothing was written" in result.output and said in result.output, result.output
    assert not (tmp_path / "out.shp").exists()
    whole = run(database_url, "export", str(tmp_path / "out.gpkg"), "--level", "building")
    assert whole.exit_code == 0 and "名" * 200 in set(gpd.read_file(tmp_path / "out.gpkg").name)


@pytest.mark.parametrize("name, value, said", [
    ("GRIDDISPATCH_TZ", "Mars/Base", "GRIDDISPATCH_TZ: unknown time zone 'Mars/Base'"),
    ("GRIDDISPATCH_TZ", "Asia", "GRIDDISPATCH_TZ: unknown time zone 'Asia'"),  # a folder of zones
    ("GRIDDISPATCH_LIVE_POLL_SECONDS", "fast", "GRIDDISPATCH_LIVE_POLL_SECONDS must be a number"),
    ("GRIDDISPATCH_LIVE_POLL_SECONDS", "0", "GRIDDISPATCH_LIVE_POLL_SECONDS must be at least"),
    ("GRIDDISPATCH_TRUSTED_PROXIES", "-1", "GRIDDISPATCH_TRUSTED_PROXIES must be at least 0"),
])
def test_a_setting_that_cannot_be_used_is_named_at_start(database_url, name, value, said):
    """Found by a people audit: a time zone that does not exist was a traceback from
    `users disable`, and a server started with it failed at every report."""
    result = CliRunner().invoke(main, ["users", "list"], env={"DATABASE_URL": database_url, name: value})
    assert result.exit_code == 1 and said in result.output and "Traceback" not in result.output, result.output
    assert run(database_url, "users", "list").exit_code == 0  # unset again, it starts
