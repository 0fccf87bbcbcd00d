"""The committee board in a real browser against `griddispatch demo --test-clock`."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import requests

from tests.browser import (
    DESKTOP,
    PHONE,
    TABLET,
    building_in,
    set_clock,
    sign_in_form,
    sign_in_storage,
)
from tests.web_helpers import Rest, crew_for, crew_members, expect_console_error

pytest.importorskip("playwright")
from playwright.sync_api import expect

STREET = "320104006"
OTHER_STREET = "320104007"


def report(base: str, building: str, category: str, phone: str) -> dict:
    response = requests.post(f"{base}/api/v1/incidents", timeout=10, json={
        "category": category, "reporter_phone": phone, "location": {"building_code": building}})
    assert response.status_code == 201, response.text
    return response.json()


def board(open_page, base: str, username: str, viewport: dict, name: str):
    return sign_in_form(open_page(base, "/board", viewport, name), username)


def counters(watched) -> dict[str, int]:
    return {name: int(watched.page.text_content(f"#count-{name}"))
            for name in ("open", "red", "escalated", "resolved")}


def wait_for_counters(watched, expected: dict[str, int]) -> None:
    watched.page.wait_for_function(
        "expected => Object.entries(expected).every(([k, v]) => document.getElementById(`count-${k}`).textContent === String(v))",
        arg=expected, timeout=5000)


def downloaded_csv(watched, link: str) -> list[list[str]]:
    with watched.page.expect_download() as download:
        watched.page.click(link)
    return list(csv.reader(Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()))


def test_district_board_moves_live_and_exports_csv(demo_server, open_page):
    watched = board(open_page, demo_server, "committee", DESKTOP, "board-district")
    assert counters(watched) == {"open": 0, "red": 0, "escalated": 0, "resolved": 0}
    for league in ("grid", "community", "crew"):
        assert watched.page.locator(f"#league-{league} table").is_visible()
    assert "5" in watched.page.text_content("#league-grid .note")  # the minimum sample is shown
    watched.screenshot("empty")

    pipe = report(demo_server, building_in(demo_server, STREET), "burst_pipe", "13900000001")
    wait_for_counters(watched, {"open": 1, "red": 0, "escalated": 0})
    marker = watched.page.locator(f'path[data-incident="{pipe["public_id"]}"]')
    assert marker.get_attribute("fill") == "#1b7f3b"

    # Past the 5 minutes to acknowledge: red, escalated, on the map too — without a reload.
    set_clock(demo_server, advance_minutes=6)
    wait_for_counters(watched, {"open": 1, "red": 1, "escalated": 1})
    assert marker.get_attribute("fill") == "#b3261e"

    # One report is below the minimum sample: its grid's row is hidden and counted.
    note = watched.page.locator('#league-grid .note[data-hidden="1"]')
    note.wait_for(timeout=10_000)
    assert "1" in note.inner_text() and watched.page.locator("#league-grid tbody tr[data-group]").count() == 0
    watched.screenshot("escalated")

    rates = downloaded_csv(watched, "#csv-rates")
    assert rates[0][:4] == ["group", "name", "bucket", "count"] and len(rates) == 2
    times = downloaded_csv(watched, "#csv-times")
    assert times[0][:4] == ["group", "name", "bucket", "phase"]

    watched.page.set_viewport_size(TABLET)
    watched.screenshot("tablet")


def test_street_committee_only_sees_its_street(demo_server, open_page):
    watched = board(open_page, demo_server, f"committee-{STREET}", DESKTOP, "board-street")
    inside = report(demo_server, building_in(demo_server, STREET), "blocked_drain", "13900000002")
    outside = report(demo_server, building_in(demo_server, OTHER_STREET), "blocked_drain", "13900000003")
    wait_for_counters(watched, {"open": 1})
    watched.page.locator(f'path[data-incident="{inside["public_id"]}"]').wait_for()
    watched.page.wait_for_timeout(1000)  # the other street's push would have come by now
    assert watched.page.locator(f'path[data-incident="{outside["public_id"]}"]').count() == 0
    assert counters(watched)["open"] == 1
    areas = watched.page.eval_on_selector_all("select[name=area] option", "options => options.map(o => o.value)")
    assert areas[0] == "" and all(code.startswith(STREET) for code in areas[1:])
    watched.screenshot("street")

    watched.page.click("#lang")
    watched.page.get_by_text("Committee board").wait_for()
    assert "board." not in watched.page.inner_text("body")  # every key has its English text
    watched.screenshot("english")


def test_crews_serving_the_scope_move_and_change_live(demo_server, open_page):
    """The board shows the crews serving its scope where they are, coloured and counted by
    status; a position report and an off-duty tap reach it live, not another street's board."""
    crew = crew_for(demo_server, "plumbing", STREET)
    assert OTHER_STREET not in crew["service_areas"]
    district = board(open_page, demo_server, "committee", DESKTOP, "board-crews")
    other = board(open_page, demo_server, f"committee-{OTHER_STREET}", DESKTOP, "board-crews-other-street")
    mine = district.page.locator(f'.crew-marker [data-crew="{crew["id"]}"]')
    expect(mine).to_have_attribute("data-status", "available")
    assert other.page.locator(f'[data-crew="{crew["id"]}"]').count() == 0
    served = Rest(demo_server, "admin").get(f"/crews?area={OTHER_STREET}")["crews"]
    expect(other.page.locator(".crew-marker [data-crew]")).to_have_count(
        sum(c["position"] is not None for c in served))
    note = district.page.locator("#crew-note")
    available = int(re.search(r"空闲 (\d+)", note.inner_text()).group(1))
    before = mine.bounding_box()
    district.screenshot("crews")

    member = Rest(demo_server, crew_members(demo_server, crew["id"])[0])
    member.call("POST", f"/crews/{crew['id']}/position", json={"lon": 118.7835, "lat": 32.0335})
    district.page.wait_for_function(
        "([id, x]) => Math.abs(document.querySelector(`.crew-marker [data-crew=\"${id}\"]`)"
        ".getBoundingClientRect().x - x) > 1", arg=[crew["id"], before["x"]], timeout=5000)
    member.call("POST", f"/crews/{crew['id']}/status", json={"status": "off"})
    expect(mine).to_have_attribute("data-status", "off")
    expect(note).to_contain_text(f"空闲 {available - 1}")
    district.page.wait_for_timeout(500)
    assert other.page.locator(f'[data-crew="{crew["id"]}"]').count() == 0
    district.screenshot("crew-off-duty")


def test_the_board_fits_a_phone(demo_server, open_page):
    """Found by a browser audit: at 375 px the board was 661 px wide (the filters and the
    CSV links kept their desktop widths). Wide league tables scroll in their own box."""
    watched = board(open_page, demo_server, "committee", PHONE, "board-phone")
    page = watched.page
    for language in ("中文", "EN"):
        if language == "EN":
            page.click("#lang")
        page.wait_for_timeout(300)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], language
        for link in ("#csv-times", "#csv-rates"):
            box = page.locator(link).bounding_box()
            assert box["x"] + box["width"] <= PHONE["width"], (language, link)
    watched.screenshot("phone")


@pytest.mark.parametrize("app, role, extra", [
    ("/board", "committee", {"scope_area_code": STREET}),
    ("/console", "grid_manager", {}),
])
def test_a_long_name_leaves_sign_out_on_a_phone(demo_server, open_page, app, role, extra):
    """Found by a browser audit: in English, a long display name pushed "Sign out" 12 px past
    the right edge of a 375 px screen."""
    Rest(demo_server, "admin").call("POST", "/people", status=201, json={
        "username": "long-name", "password": "demo", "role": role, **extra,
        "display_name": "Alexandra Konstantinopoulou-Richardson of Qinhuai"})
    watched = sign_in_form(open_page(demo_server, app, PHONE, f"long-name{app.replace('/', '-')}"), "long-name")
    page = watched.page
    for language in ("中文", "EN"):
        if language == "EN":
            page.click("#lang")
        page.wait_for_timeout(300)
        for button in ("#signout", "#lang"):
            box = page.locator(button).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (language, button, box)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], language
    watched.screenshot("long-name")


def test_dates_in_the_address_that_cannot_be_a_range_and_early_exports(demo_server, open_page):
    """Found by a live audit: `?from=` after `?to=` left the board half-drawn with an uncaught
    error, and the CSV links, clicked before the charts loaded, saved the board's own HTML
    as export.csv; a refused export said "network unreachable"."""
    watched = open_page(demo_server, "/static/css/app.css", DESKTOP, "board-bad-range",
                        storage=sign_in_storage(demo_server, "committee"))
    page = watched.page
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    page.goto(f"{demo_server}/board?from=2026-12-01&to=2026-11-01")
    page.locator("body[data-ready=true]").wait_for(timeout=15_000)
    assert page.input_value("#filters [name=from]") <= page.input_value("#filters [name=to]")
    expect(page.locator("#problem")).to_be_hidden()
    rates = downloaded_csv(watched, "#csv-rates")
    assert rates[0][0] == "group"

    page.goto(f"{demo_server}/board?from=1900-01-01")
    page.locator("body[data-ready=true]").wait_for(timeout=15_000)
    expect(page.locator("#problem")).to_be_visible()  # the server's refusal, said
    count = len(downloads)
    page.click("#csv-times")
    page.wait_for_timeout(500)
    assert len(downloads) == count  # refused: nothing saved
    assert "1900" in page.text_content("#problem")
    expect_console_error(watched, "400")
