"""The resident's apps in a real browser: /report on a phone, then /track/<token> following it live."""

from __future__ import annotations

import json
import re
import time

import pytest

from grids.geometry import wgs84_to_gcj02
from tests.browser import PHONE, Watched
from tests.web_helpers import (
    DEMO_BUILDING,
    Rest,
    crew_members,
    expect_console_error,
    fail_once,
    report,
    sent_crew,
)

pytest.importorskip("playwright")
from playwright.sync_api import expect

LIVE = 5000  # ms a live change may take to reach the page

# A point in the demo map's 火瓦巷社区第1网格 (WGS84), about 500 m from where it lands if its
# GCJ-02 form is wrongly read as WGS84.
POINT = (118.7835, 32.0335)

TAPPABLE_BUILDING = """() => {
  const map = document.getElementById("map").getBoundingClientRect();
  for (const path of document.querySelectorAll("#map path[data-code]")) {
    const box = path.getBoundingClientRect();
    const x = box.left + box.width / 2, y = box.top + box.height / 2;
    if (box.width < 14 || box.height < 14 || box.left < map.left + 50 || box.right > map.right - 10
        || box.top < map.top + 10 || box.bottom > map.bottom - 30) continue;
    if (document.elementFromPoint(x, y) === path) return { code: path.dataset.code, x, y };
  }
  return null;
}"""


def choose_category(page, code: str = "burst_pipe") -> None:
    page.locator(f'#categories [data-code="{code}"]').click()
    expect(page.locator(f'#categories [data-code="{code}"]')).to_have_attribute("aria-pressed", "true")


def tap_building(watched: Watched) -> str:
    """Tap a building drawn on the map, as a finger would; returns its code."""
    page = watched.page
    page.locator("#map path[data-code]").first.wait_for(state="attached")
    page.locator("#map").scroll_into_view_if_needed()
    target = page.evaluate(TAPPABLE_BUILDING)
    assert target, "no building on the map is large enough to tap"
    page.touchscreen.tap(target["x"], target["y"])
    expect(page.locator(f'#map path[data-code="{target["code"]}"]')).to_have_attribute("stroke", "#b3261e")
    return target["code"]


def submit_and_follow(watched: Watched) -> str:
    """Send the form; returns the tracking token of the page it lands on."""
    page = watched.page
    page.locator("#description").fill("楼道水管爆裂，水流不止")
    page.locator("#submit").click()
    page.wait_for_url(re.compile(r"/track/[^/]+$"))
    return page.url.rsplit("/", 1)[1]


def lose_answers(page, first: int | None = None) -> list[int]:
    """Let the page's reports reach the server but lose the answers (every one, or the first
    `first`) as a dropped connection would; returns the statuses of those lost."""
    lost: list[int] = []

    def route(route):
        if route.request.method == "POST" and (first is None or len(lost) < first):
            lost.append(route.fetch().status)
            route.abort()
        else:
            route.continue_()

    page.route("**/api/v1/incidents", route)
    return lost


def timeline_step(page, event_type: str):
    return page.locator(f'#timeline li[data-type="{event_type}"]')


def test_burst_pipe_reported_by_tapping_a_building_is_followed_live_and_rated(demo_server, open_page):
    watched = open_page(demo_server, "/report", PHONE, "resident-report")
    page = watched.page
    choose_category(page)
    code = tap_building(watched)
    expect(page.locator("#place")).to_contain_text("已选")
    watched.screenshot("1-filled")
    token = submit_and_follow(watched)

    tracked = Rest(demo_server).get(f"/track/{token}")
    assert tracked["areas"]["building"]["code"] == code
    manager_name = tracked["manager"]["display_name"]
    page.evaluate("window.notReloaded = true")
    expect(timeline_step(page, "reported")).to_be_visible()
    expect(timeline_step(page, "assigned")).to_contain_text(f"已派给 {manager_name}")
    expect(page.locator("#manager")).to_have_text(manager_name)
    expect(page.locator("#deadline")).not_to_be_empty()
    watched.screenshot("2-tracking")

    admin = Rest(demo_server, "admin")
    incident = admin.get(f"/incidents/{tracked['public_id']}")
    manager = Rest(demo_server, admin.get(f"/people/{incident['manager']['id']}")["username"])
    crew = Rest(demo_server, crew_members(demo_server, incident["crew"]["id"])[0])
    steps = [(manager, "acknowledge", "acknowledged", "status.dispatched"),
             (crew, "en_route", "en_route", "维修队在路上"),
             (crew, "on_site", "on_site", "维修队已到场"),
             (crew, "resolve", "resolved", "已处理"),
             (manager, "verify", "verified", "已核查")]
    for who, action, event_type, status_text in steps:
        who.act(incident["id"], action)
        expect(timeline_step(page, event_type)).to_be_visible(timeout=LIVE)
        if not status_text.startswith("status."):
            expect(page.locator("#status")).to_have_text(status_text)
    assert page.evaluate("window.notReloaded") is True
    watched.screenshot("3-verified")

    page.locator('.stars input[value="5"]').check()
    page.locator("#comment").fill("修得很快，谢谢")
    page.locator("#rate-submit").click()
    expect(page.locator("#rated-text")).to_contain_text("5")
    expect(page.locator("#rework")).to_be_hidden()
    watched.screenshot("4-rated")
    stored = Rest(demo_server, "admin").get(f"/incidents/{incident['id']}")
    assert (stored["rating"], stored["rating_comment"]) == (5, "修得很快，谢谢")
    # The tracking page is shared by the reports merged into this one: no one's words on it.
    assert "rating_comment" not in Rest(demo_server).get(f"/track/{token}")


def test_low_rating_shows_the_rework(demo_server, open_page):
    answer = report(demo_server)
    crew = Rest(demo_server, crew_members(demo_server, sent_crew(demo_server, answer["id"]))[0])
    for action in ("en_route", "on_site", "resolve"):
        crew.act(answer["id"], action)
    watched = open_page(demo_server, f"/track/{answer['tracking_token']}", PHONE, "resident-rework")
    page = watched.page
    page.locator('.stars input[value="1"]').check()
    page.locator("#rate-submit").click()
    expect(page.locator("#rework")).to_be_visible()
    expect(timeline_step(page, "rework")).to_be_visible()
    watched.screenshot("sent-back")
    assert Rest(demo_server).get(f"/track/{answer['tracking_token']}")["rework_count"] == 1
    # Fixed again: the new fix is rated afresh (found by a browser audit: the form stayed hidden).
    expect(page.locator("#rating")).to_be_hidden()
    for action in ("en_route", "on_site", "resolve"):
        crew.act(answer["id"], action)
    expect(page.locator("#rating")).to_be_visible(timeout=LIVE)
    expect(page.locator("#rated")).to_be_hidden()
    page.locator('.stars input[value="4"]').check()
    page.locator("#rate-submit").click()
    expect(page.locator("#rated-text")).to_contain_text("4")


def test_a_report_merged_into_another_follows_that_one_live(demo_server, open_page):
    """The manager merges a resident's report into an earlier one about the same problem: the
    open tracking page switches to the original, says why, and follows it live from then on."""
    first = report(demo_server, "blocked_drain")
    second = report(demo_server, "blocked_drain")  # the same building and category
    watched = open_page(demo_server, f"/track/{second['tracking_token']}", PHONE, "resident-merged")
    page = watched.page
    expect(page.locator("#number")).to_have_text(second["public_id"])
    expect(page.locator("#merged-note")).to_be_hidden()
    page.evaluate("window.notReloaded = true")

    operator = Rest(demo_server, "operator")
    operator.act(second["id"], "merge", duplicate_of=first["public_id"])
    expect(page.locator("#number")).to_have_text(first["public_id"], timeout=LIVE)
    expect(page.locator("#merged-note")).to_contain_text(second["public_id"])
    Rest(demo_server, "admin").act(first["id"], "acknowledge")
    expect(page.locator("#status")).to_have_attribute("data-status", "acknowledged", timeout=LIVE)
    expect(timeline_step(page, "acknowledged")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    watched.screenshot("merged")


def test_a_merged_reporter_is_not_offered_the_originals_rating(demo_server, open_page):
    """Found by an intake audit: once the original was fixed, a merged reporter's page
    offered a rating the server then refused, and showed the other reporter's as theirs."""
    first = report(demo_server, "neighbour_dispute")
    second = report(demo_server, "neighbour_dispute")
    admin = Rest(demo_server, "admin")
    admin.act(second["id"], "merge", duplicate_of=first["public_id"])
    for action in ("acknowledge", "on_site", "resolve"):
        admin.act(first["id"], action)
    merged = open_page(demo_server, f"/track/{second['tracking_token']}", PHONE, "resident-merged-rating").page
    own = open_page(demo_server, f"/track/{first['tracking_token']}", PHONE, "resident-own-rating").page
    expect(own.locator("#rating")).to_be_visible()
    expect(merged.locator("#status")).to_have_attribute("data-status", "resolved")
    expect(merged.locator("#rating")).to_be_hidden()
    own.locator('.stars input[value="5"]').check()
    own.click("#rate-submit")
    expect(own.locator("#rated")).to_be_visible(timeout=LIVE)
    merged.wait_for_timeout(1000)  # the rating is pushed to both pages
    expect(merged.locator("#rated")).to_be_hidden()
    expect(merged.locator("#rating")).to_be_hidden()


def test_building_and_unit_picked_from_the_list(demo_server, open_page):
    watched = open_page(demo_server, "/report", PHONE, "resident-list")
    page = watched.page
    choose_category(page, "rubbish")
    page.locator('.modes [data-mode="list"]').click()
    first = page.locator("#buildings button").first
    name = first.inner_text()
    page.locator("#search").fill(name)
    page.locator("#buildings button", has_text=name).first.click()
    expect(page.locator("#unit option")).not_to_have_count(1)
    unit = page.locator("#unit option").nth(1)
    unit_code, unit_name = unit.get_attribute("value"), unit.inner_text()
    page.locator("#unit").select_option(unit_code)
    expect(page.locator("#place")).to_contain_text(f"{name} {unit_name}")
    watched.screenshot("picked")
    token = submit_and_follow(watched)
    areas = Rest(demo_server).get(f"/track/{token}")["areas"]
    assert (areas["building"]["name"], areas["unit"]["code"]) == (name, unit_code)


def test_pasted_gcj02_coordinate_lands_in_the_right_grid(demo_server, open_page):
    anonymous = Rest(demo_server)
    lon, lat = (float(v) for v in wgs84_to_gcj02(*POINT))
    right = anonymous.get("/locate", params={"lon": POINT[0], "lat": POINT[1]})["chain"]["grid"]["code"]
    misread = anonymous.get("/locate", params={"lon": lon, "lat": lat})["chain"]["grid"]["code"]
    assert right != misread  # otherwise this test could not tell the datums apart

    watched = open_page(demo_server, "/report", PHONE, "resident-gcj02")
    page = watched.page
    choose_category(page, "power_cut")
    page.locator('.modes [data-mode="gps"]').click()
    page.locator("#coordinate").fill(f"{lon:.6f},{lat:.6f}")
    expect(page.locator("#crs")).to_have_value("gcj02")
    page.locator("#paste").click()
    expect(page.locator("#place")).to_contain_text("已选位置")
    watched.screenshot("pasted")
    token = submit_and_follow(watched)
    assert anonymous.get(f"/track/{token}")["areas"]["grid"]["code"] == right


def test_a_point_that_cannot_be_located_for_want_of_a_connection_says_so(demo_server, open_page):
    """The lookup of a pasted point gets no answer: the place field says there is no
    connection (not an error from the map), and the same tap works once it is back."""
    watched = open_page(demo_server, "/report", PHONE, "resident-locate-offline")
    page = watched.page
    cut = {"on": True}
    page.route("**/api/v1/locate?*", lambda route: route.abort() if cut["on"] else route.continue_())
    page.locator('.modes [data-mode="gps"]').click()
    page.locator("#coordinate").fill(f"{POINT[0]},{POINT[1]}")
    page.locator("#paste").click()
    expect(page.locator("#error-location")).to_have_text("网络不通，请稍后重试（不会重复提交）")
    expect(page.locator("#place")).not_to_contain_text("已选位置")
    watched.screenshot("no-connection")
    cut["on"] = False
    page.locator("#paste").click()
    expect(page.locator("#place")).to_contain_text("已选位置")
    expect(page.locator("#error-location")).to_have_text("")
    expect_console_error(watched, "net::ERR_FAILED")


def test_missing_category_is_shown_next_to_the_field(demo_server, open_page):
    watched = open_page(demo_server, "/report", PHONE, "resident-missing-category")
    page = watched.page
    tap_building(watched)
    page.locator("#submit").click()
    expect(page.locator("#error-category")).to_have_text("请选择问题类型")
    expect(page).to_have_url(re.compile(r"/report$"))
    watched.screenshot("error")
    expect_console_error(watched, "status of 400")
    assert Rest(demo_server, "admin").get("/incidents")["total"] == 0


def test_an_empty_report_says_every_missing_field_at_once(demo_server, open_page):
    """Found by a browser audit: an empty form flagged only the category, and the place only
    on the next try."""
    watched = open_page(demo_server, "/report", PHONE, "resident-empty")
    page = watched.page
    page.locator("#submit").click()
    expect(page.locator("#error-category")).to_have_text("请选择问题类型")
    expect(page.locator("#error-location")).to_have_text("请标出问题所在的楼栋或位置")
    expect_console_error(watched, "status of 400")
    assert Rest(demo_server, "admin").get("/incidents")["total"] == 0


def test_english_toggle_switches_the_labels(demo_server, open_page):
    watched = open_page(demo_server, "/report", PHONE, "resident-english")
    page = watched.page
    expect(page.locator('#categories [data-code="burst_pipe"]')).to_contain_text("水管爆裂")
    page.locator("#lang").click()
    expect(page.locator("#submit")).to_have_text("Send")
    expect(page.locator("#field-category legend")).to_have_text("1. What is the problem?")
    expect(page.locator('#categories [data-code="burst_pipe"]')).to_contain_text("Burst water pipe")
    expect(page.locator("#lang")).to_have_text("中文")
    watched.screenshot("english")
    page.locator("#lang").click()
    expect(page.locator("#submit")).to_have_text("提交")


def test_double_tap_on_submit_files_one_report(demo_server, open_page):
    watched = open_page(demo_server, "/report", PHONE, "resident-double-tap")
    page = watched.page
    choose_category(page)
    tap_building(watched)
    page.locator("#submit").dblclick()
    page.wait_for_url(re.compile(r"/track/[^/]+$"))
    assert Rest(demo_server, "admin").get("/incidents")["total"] == 1


def test_lost_answers_are_retried_with_the_same_key_and_file_one_report(demo_server, open_page):
    """Each try reached the server but its answer was lost: the form tries again by itself with
    the same key, tells the resident when it gives up, and a later tap files nothing new."""
    watched = open_page(demo_server, "/report", PHONE, "resident-retry")
    page = watched.page
    lost = lose_answers(page, first=5)  # the first try and the form's four retries
    choose_category(page)
    tap_building(watched)
    page.locator("#submit").click()
    expect(page.locator("#submit")).to_have_text("连接不上，正在重试…")
    expect(page.locator("#error-form")).to_contain_text("网络不通", timeout=30000)  # 1+2+4+8 s of retries
    assert lost == [201] * 5
    page.locator("#submit").click()
    page.wait_for_url(re.compile(r"/track/[^/]+$"))
    expect_console_error(watched, "net::ERR_FAILED")
    assert Rest(demo_server, "admin").get("/incidents")["total"] == 1


def test_a_report_edited_after_its_answers_were_lost_is_filed_not_refused(demo_server, open_page):
    """Found by a browser audit: sent again after an edit, under the key of the version whose
    answers were lost, the report was refused (422, in English) though the first was filed.
    An edited report is another request: it goes under a new key, and is filed as the first
    one's suspected duplicate, with a tracking page for the resident."""
    watched = open_page(demo_server, "/report", PHONE, "resident-edited")
    page = watched.page
    lost = lose_answers(page, first=5)
    choose_category(page)
    tap_building(watched)
    page.locator("#submit").click()
    expect(page.locator("#error-form")).to_contain_text("网络不通", timeout=30000)
    assert lost == [201] * 5
    page.locator("#description").fill("补充：水已经漫到楼道")
    page.locator("#submit").click()
    page.wait_for_url(re.compile(r"/track/[^/]+$"))
    expect_console_error(watched, "net::ERR_FAILED")
    filed = Rest(demo_server, "admin").get("/incidents")["incidents"]
    assert len(filed) == 2 and filed[0]["suspected_duplicate_of"] == filed[1]["public_id"]
    assert filed[0]["description"] == "补充：水已经漫到楼道"


DESCRIPTION = "地下室水管爆裂，手机信号很差"


@pytest.mark.parametrize("how", ["offline", "answers-lost"])
def test_a_report_that_could_not_be_sent_is_kept_and_sent_later(demo_server, open_page, how):
    """Out of signal through every try, the report is kept on the phone and sent under its
    key when the network is back ("offline": the browser goes offline, then online) or when
    /report is next opened ("answers-lost": each try reached the server, only the answers
    were lost): filed once either way, and nothing is left kept."""
    watched = open_page(demo_server, "/report", PHONE, f"resident-unsent-{how}")
    page = watched.page
    if how == "answers-lost":
        lose_answers(page)
    choose_category(page)
    tap_building(watched)
    page.locator("#description").fill(DESCRIPTION)
    if how == "offline":
        page.context.set_offline(True)
    page.locator("#submit").click()
    expect(page.locator("#error-form")).to_contain_text("已保存在本机", timeout=30000)  # 1+2+4+8 s of retries
    admin = Rest(demo_server, "admin")
    assert admin.get("/incidents")["total"] == (0 if how == "offline" else 1)
    assert page.evaluate("JSON.parse(localStorage.getItem('griddispatch.report.unsent')).body.description") == DESCRIPTION
    watched.screenshot("kept")

    if how == "offline":
        page.context.set_offline(False)  # the browser's "online" event sends it
    else:
        page.unroute("**/api/v1/incidents")
        page.goto(f"{demo_server}/report")  # the next visit sends it
    page.wait_for_url(re.compile(r"/track/[^/]+$"))
    listed = admin.get("/incidents")
    assert listed["total"] == 1
    assert listed["incidents"][0]["description"] == DESCRIPTION
    assert page.evaluate("localStorage.getItem('griddispatch.report.unsent')") is None
    expect_console_error(watched, "ERR_INTERNET_DISCONNECTED" if how == "offline" else "net::ERR_FAILED")


def test_a_kept_report_too_old_to_resend_safely_is_not_sent(demo_server, open_page):
    """Past 20 hours the server may have forgotten the report's key, so a try that had got
    through would be filed again: the page says the report never went out and asks for it
    afresh instead of sending it."""
    kept = {"body": {"category": "burst_pipe", "description": DESCRIPTION,
                     "location": {"building_code": DEMO_BUILDING}},
            "key": "kept-21-hours", "at": int((time.time() - 21 * 3600) * 1000)}
    watched = open_page(demo_server, "/report", PHONE, "resident-unsent-expired",
                        storage={"griddispatch.report.unsent": json.dumps(kept)})
    page = watched.page
    expect(page.locator("#unsent")).to_contain_text("一直没能发出")
    assert page.evaluate("localStorage.getItem('griddispatch.report.unsent')") is None
    assert Rest(demo_server, "admin").get("/incidents")["total"] == 0
    assert page.url.endswith("/report")


def test_report_sent_while_the_database_is_down_goes_through_when_it_is_back(postgres_server_url, open_page):
    """A real outage: the database refuses connections, the server answers 503, the form keeps
    trying and is filed once the database is back, with nothing for the resident to do."""
    from tests.conftest import fresh_postgres
    from tests.outage import database_down
    from tests.server import running_server

    url = fresh_postgres(postgres_server_url)
    with running_server(url, "--test-clock", command="demo") as base:
        watched = open_page(base, "/report", PHONE, "resident-database-down")
        page = watched.page
        choose_category(page)
        page.locator("#map path[data-code]").first.wait_for(state="attached")
        with database_down(url):
            tap_building(watched)  # the building's units cannot load now: the page keeps asking
            page.locator("#submit").click()
            expect(page.locator("#submit")).to_have_text("连接不上，正在重试…")
            watched.screenshot("retrying")
        page.wait_for_url(re.compile(r"/track/[^/]+$"), timeout=20000)
        expect_console_error(watched, "503")
        listed = Rest(base, "admin").get("/incidents")
        assert listed["total"] == 1
        # Live push came back with the database: the crew's next step reaches the page.
        incident_id = listed["incidents"][0]["id"]
        Rest(base, crew_members(base, sent_crew(base, incident_id))[0]).act(incident_id, "en_route")
        expect(page.locator("#status")).to_have_text("维修队在路上", timeout=LIVE)


def test_tracking_shows_offline_and_catches_up_when_back(demo_server, open_page):
    answer = report(demo_server)
    watched = open_page(demo_server, f"/track/{answer['tracking_token']}", PHONE, "resident-offline")
    page = watched.page
    link = {"down": False, "open": []}

    def connect_unless_down(socket):
        if link["down"]:
            socket.close()
        else:
            socket.connect_to_server()
            link["open"].append(socket)

    page.route_web_socket("**/socket.io/**", connect_unless_down)
    page.reload()
    expect(timeline_step(page, "dispatched")).to_be_visible()
    expect(page.locator("#offline")).to_have_attribute("data-state", "online")
    link["down"] = True
    for socket in link["open"]:
        socket.close()
    expect(page.locator("#offline")).to_be_visible()
    watched.screenshot("offline")

    crew = Rest(demo_server, crew_members(demo_server, sent_crew(demo_server, answer["id"]))[0])
    crew.act(answer["id"], "en_route")  # while the page is cut off
    link["down"] = False
    expect(page.locator("#offline")).to_be_hidden(timeout=15000)
    expect(timeline_step(page, "en_route")).to_be_visible(timeout=LIVE)
    expect(page.locator("#status")).to_have_text("维修队在路上")


def test_a_503_on_the_tracking_pages_first_read_is_asked_again(demo_server, open_page):
    """Found by a live audit: one 503 on the first read left the tracking page blank."""
    answer = report(demo_server)
    watched = open_page(demo_server, "/static/css/app.css", PHONE, "track-first-read-503")
    failed = fail_once(watched.page, "**/api/v1/track/*")
    watched.page.goto(f"{demo_server}/track/{answer['tracking_token']}")
    expect(watched.page.locator("#status")).not_to_be_empty(timeout=10_000)
    expect(watched.page.locator("#offline")).to_be_hidden(timeout=LIVE)  # connected once read
    assert failed
    expect_console_error(watched, "503")
