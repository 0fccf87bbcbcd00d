"""The grid manager's console in a real browser against `griddispatch demo --test-clock`."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.browser import (
    TABLET,
    TABLET_PORTRAIT,
    Watched,
    building_in,
    set_clock,
    sign_in_form,
    sign_in_storage,
)
from tests.web_helpers import Rest, expect_console_error, fail_once, holdable_pushes

pytest.importorskip("playwright")
from playwright.sync_api import expect

GRID = "320104006001001"  # manager-<GRID> gets the reports below
OTHER_GRID = "320104006001003"  # same community; its manager is nobody's backup


def report(base: str, building: str, category: str, phone: str) -> dict:
    """A resident's anonymous report at a building."""
    response = requests.post(f"{base}/api/v1/incidents", timeout=10, json={
        "category": category, "description": "楼道里在漏水", "reporter_phone": phone,
        "location": {"building_code": building}})
    assert response.status_code == 201, response.text
    return response.json()


def login(base: str, username: str) -> str:
    return sign_in_storage(base, username)["griddispatch.token"]


def incident(base: str, token: str, public_id: str) -> dict:
    response = requests.get(f"{base}/api/v1/incidents/{public_id}", timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json()


def incident_events_ranking(base: str, token: str, public_id: str, crew_id: int) -> list[str]:
    """The recorded reasons for one crew in the incident's latest crew ranking."""
    response = requests.get(f"{base}/api/v1/incidents/{public_id}/events", timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    ranked = [e["data"]["ranking"] for e in response.json()["events"] if "ranking" in (e.get("data") or {})]
    return next(r["reasons"] for r in ranked[-1] if r["crew_id"] == crew_id)


def after_areas(base: str, token: str, public_id: str) -> list[dict]:
    return [a for a in incident(base, token, public_id)["areas"].values() if a]


def card_selector(public_id: str) -> str:
    return f'ol.queue button.card[data-public-id="{public_id}"]'


def card(watched, public_id: str):
    return watched.page.locator(card_selector(public_id))


def console(open_page, base: str, grid: str, viewport: dict, name: str):
    watched = sign_in_form(open_page(base, "/console", viewport, name), f"manager-{grid}")
    watched.page.evaluate("window.notReloaded = true")
    return watched


def drain_report_opened(open_page, base: str, name: str, phone: str):
    """A console of GRID with a fresh blocked-drain report opened, its crew choice drawn."""
    watched = console(open_page, base, GRID, TABLET, name)
    opened = report(base, building_in(base, GRID, 7), "blocked_drain", phone)
    card(watched, opened["public_id"]).click()
    watched.page.locator("#crew-choice option").first.wait_for(state="attached")
    return watched, opened


def test_new_report_reaches_the_right_console_live_and_is_acted_on(demo_server, open_page):
    mine = console(open_page, demo_server, GRID, TABLET, "console-landscape")
    other = console(open_page, demo_server, OTHER_GRID, TABLET_PORTRAIT, "console-other-grid")
    token = login(demo_server, f"manager-{GRID}")

    started = time.monotonic()
    drain = report(demo_server, building_in(demo_server, GRID, 0), "blocked_drain", "13800000001")
    card(mine, drain["public_id"]).wait_for(timeout=2000)
    assert time.monotonic() - started < 2.0
    assert mine.page.evaluate("window.notReloaded") is True
    mine.screenshot("new-report")

    # The manager of the next grid never sees it, even after the push has long arrived.
    mine.page.wait_for_timeout(1000)
    assert card(other, drain["public_id"]).count() == 0
    other.screenshot("portrait-without-it")

    # Open it: the reporter's whole phone, tap to call.
    card(mine, drain["public_id"]).click()
    phone = mine.page.locator("#reporter-phone")
    phone.wait_for()
    assert phone.get_attribute("href") == "tel:13800000001"

    mine.page.click("button[data-action=acknowledge]")
    mine.page.locator('#detail-status[data-status="acknowledged"]').wait_for()
    assert incident(demo_server, token, drain["public_id"])["status"] == "acknowledged"

    # Why this crew: the ranking reasons from the crew_recommended event.
    recommended = incident(demo_server, token, drain["public_id"])["recommended_crew"]
    why = mine.page.locator(f'.why[data-crew="{recommended["id"]}"]')
    why.wait_for()
    # Shown in the manager's language, the area it serves by name; the recorded reason stays
    # on the item's title.
    served = next(r for r in incident_events_ranking(demo_server, token, drain["public_id"], recommended["id"])
                  if r.startswith("serves "))
    area = next(a for a in after_areas(demo_server, token, drain["public_id"]) if a["code"] == served[7:])
    assert "具备技能：排水疏通" in why.inner_text()
    assert f"服务区域包含 {area['name']}" in why.inner_text()
    assert why.locator('li[title="skill drainage"]').count() == 1
    assert "距离" in why.inner_text() and "away" not in why.inner_text()
    assert "已空闲" in why.inner_text() and "min" not in why.inner_text()
    mine.screenshot("recommendation")
    mine.page.click("#dispatch-recommended")
    mine.page.locator('#detail-status[data-status="dispatched"]').wait_for()
    after = incident(demo_server, token, drain["public_id"])
    assert (after["status"], after["crew"]["id"]) == ("dispatched", recommended["id"])

    # Reassign another report to the next grid, with a reason: it moves between the consoles.
    stray = report(demo_server, building_in(demo_server, GRID, 1), "blocked_drain", "13800000002")
    card(mine, stray["public_id"]).click()
    mine.page.select_option("#reassign-grid", OTHER_GRID)
    mine.page.fill("#reassign-reason", "楼栋实际属于第2网格")
    mine.page.click("button[data-action=reassign]")
    card(other, stray["public_id"]).wait_for(timeout=5000)
    card(mine, stray["public_id"]).wait_for(state="detached", timeout=5000)
    moved = incident(demo_server, login(demo_server, f"manager-{OTHER_GRID}"), stray["public_id"])
    assert moved["areas"]["grid"]["code"] == OTHER_GRID
    other.screenshot("portrait-reassigned")


def test_console_catches_up_after_its_connection_is_cut(demo_server, open_page):
    watched = console(open_page, demo_server, GRID, TABLET, "console-offline")
    banner = watched.page.locator("#offline")
    assert banner.is_hidden()

    watched.page.context.set_offline(True)
    banner.wait_for(state="visible", timeout=5000)
    missed = report(demo_server, building_in(demo_server, GRID, 2), "blocked_drain", "13800000003")
    watched.page.wait_for_timeout(1000)
    assert card(watched, missed["public_id"]).count() == 0
    watched.screenshot("offline")

    watched.page.context.set_offline(False)
    banner.wait_for(state="hidden", timeout=10_000)
    card(watched, missed["public_id"]).wait_for(timeout=5000)
    assert watched.page.evaluate("window.notReloaded") is True
    watched.screenshot("caught-up")

    watched.page.click("#lang")
    watched.page.get_by_text("Grid manager console").wait_for()
    card(watched, missed["public_id"]).click()
    watched.page.locator("#reporter-phone").wait_for()
    assert "console." not in watched.page.inner_text("body")  # every key has its English text
    watched.screenshot("english")


def test_advancing_the_clock_turns_the_card_amber_then_red(demo_server, open_page):
    watched = console(open_page, demo_server, GRID, TABLET_PORTRAIT, "console-sla")
    pipe = report(demo_server, building_in(demo_server, GRID, 3), "burst_pipe", "13800000004")
    pipe_card = card(watched, pipe["public_id"])
    pipe_card.wait_for(timeout=2000)
    assert pipe_card.get_attribute("data-sla") == "green"

    set_clock(demo_server, advance_minutes=4)  # 80 % of the 5 minutes to acknowledge
    watched.page.locator(f'{card_selector(pipe["public_id"])}[data-sla="amber"]').wait_for(timeout=5000)
    watched.screenshot("amber")
    set_clock(demo_server, advance_minutes=2)
    watched.page.locator(f'{card_selector(pipe["public_id"])}[data-sla="red"]').wait_for(timeout=5000)
    pipe_card.click()
    watched.page.locator("#detail .countdown.late").wait_for()
    watched.screenshot("red")
    escalated = incident(demo_server, login(demo_server, f"manager-{GRID}"), pipe["public_id"])
    assert (escalated["sla_state"], escalated["escalation_level"]) == ("red", 1)



def test_stale_version_reloads_and_a_duplicate_is_merged(demo_server, open_page):
    watched = console(open_page, demo_server, GRID, TABLET, "console-merge")
    building = building_in(demo_server, GRID, 4)
    original = report(demo_server, building, "lift_fault", "13800000005")
    duplicate = report(demo_server, building, "lift_fault", "13800000006")
    assert duplicate["suspected_duplicate_of"] == original["public_id"]
    card(watched, duplicate["public_id"]).click()
    suggested = watched.page.locator("#merge-original")
    suggested.wait_for()
    assert suggested.input_value() == original["public_id"]

    # Someone else acts first: the tap meets a stale version, the console reloads and says so.
    watched.page.evaluate("() => { window.realFetch = window.fetch; window.fetch = async (url, init) => {"
                          " window.fetch = window.realFetch; await new Promise((r) => setTimeout(r, 500));"
                          " return window.realFetch(url, init); }; }")
    token = login(demo_server, f"manager-{GRID}")
    version = incident(demo_server, token, duplicate["public_id"])["version"]
    watched.page.click("button[data-action=merge]")
    requests.post(f"{demo_server}/api/v1/incidents/{duplicate['public_id']}/actions", timeout=10,
                  headers={"Authorization": f"Bearer {token}"},
                  json={"action": "acknowledge", "expected_version": version}).raise_for_status()
    watched.page.locator("#notice.warn").wait_for()
    expect_console_error(watched, "409")
    watched.page.locator('#detail-status[data-status="acknowledged"]').wait_for()
    watched.screenshot("stale")

    watched.page.click("button[data-action=merge]")
    card(watched, duplicate["public_id"]).wait_for(state="detached")
    merged = incident(demo_server, token, duplicate["public_id"])
    assert (merged["status"], merged["duplicate_of"]) == ("merged", original["public_id"])


def test_an_action_whose_answer_was_lost_is_retried_and_done_once(demo_server, open_page):
    """The tap reached the server but its answer was lost (a tablet between cells): the console
    asks again with the same key and is answered with the first result, so the manager sees
    it done, not a conflict with their own change."""
    watched = console(open_page, demo_server, GRID, TABLET, "console-lost-answer")
    page = watched.page
    drain = report(demo_server, building_in(demo_server, GRID, 5), "blocked_drain", "13800000007")
    keys = []

    def lose_the_first_answer(route):
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            assert route.fetch().status == 200  # done on the server…
            route.abort()  # …and the answer never arrives
        else:
            route.continue_()

    page.route("**/api/v1/incidents/*/actions", lose_the_first_answer)
    card(watched, drain["public_id"]).click()
    page.locator("#reporter-phone").wait_for()
    page.click("button[data-action=acknowledge]")
    page.get_by_text("连接不上，正在重试…").wait_for()
    page.locator('#detail-status[data-status="acknowledged"]').wait_for()
    expect(page.locator("#notice")).to_have_text("已接单")  # after the live push: the retry's answer
    watched.screenshot("lost-answer-retried")
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    timeline = Rest(demo_server, "admin").get(f"/incidents/{drain['id']}/events")["events"]
    assert [e["type"] for e in timeline].count("acknowledged") == 1
    expect_console_error(watched, "net::ERR_FAILED")


def test_an_incident_moved_away_unheard_says_so_and_leaves_the_queue(demo_server, open_page):
    """The operator moved the incident to another grid while this console heard nothing (its
    pushes held back): the tap is refused 403, said in Chinese, and the card goes."""
    watched = console(open_page, demo_server, GRID, TABLET, "console-moved-away")
    page = watched.page
    pushes = holdable_pushes(page)
    drain = report(demo_server, building_in(demo_server, GRID, 6), "blocked_drain", "13800000008")
    card(watched, drain["public_id"]).click()
    page.locator("#reporter-phone").wait_for()
    pushes["held"] = True
    Rest(demo_server, "operator").act(drain["id"], "reassign", grid_code=OTHER_GRID, reason="楼栋属于第3网格")
    page.wait_for_timeout(300)
    assert card(watched, drain["public_id"]).count() == 1  # it has not heard

    page.click("button[data-action=acknowledge]")
    expect(page.locator("#notice")).to_have_text("该事件已不在您的管辖范围内")
    expect(card(watched, drain["public_id"])).to_have_count(0)
    expect(page.locator("#detail")).to_contain_text("该事件已不在您的待办中")
    watched.screenshot("moved-away")
    expect_console_error(watched, "403")
    # The other codes an action may meet read the same way, the incident's status translated.
    said = page.evaluate("""async () => {
      const { problem } = await import("/static/js/i18n.js");
      return [problem({ status: 409, code: "invalid_transition", message: "cannot verify an incident that is closed",
                        details: { status: "closed" } }),
              problem({ status: 400, code: "some_new_code", message: "as the server said", details: {} }),
              problem(new TypeError("Failed to fetch"))];
    }""")
    assert said == ["该事件当前为「已结案」，不能执行此操作", "as the server said", "网络不通，请稍后再试（不会重复操作）"]


def test_the_crews_to_choose_from_are_read_again_when_an_incident_is_opened(demo_server, open_page):
    """Whether a crew is free changes all day: opening an incident shows the crews as they
    stand now, not as they stood when the console was loaded."""
    watched, _ = drain_report_opened(open_page, demo_server, "console-crew-states", "13800000009")
    page = watched.page
    second = report(demo_server, building_in(demo_server, GRID, 8), "blocked_drain", "13800000010")

    def label(crew_id: int) -> str:
        return page.locator(f'#crew-choice option[value="{crew_id}"]').inner_text()

    admin = Rest(demo_server, "admin")
    # A crew of another street: no push tells this console of it, only the read does.
    working_here = {c["id"] for c in admin.get(f"/crews?area={GRID}")["crews"]}
    free = next(c for c in admin.get("/crews")["crews"] if c["status"] == "available"
                and c["id"] not in working_here and "空闲" in label(c["id"]))
    admin.call("POST", f"/crews/{free['id']}/status", json={"status": "off"})
    page.wait_for_timeout(500)
    expect(page.locator(f'#crew-choice option[value="{free["id"]}"]')).to_contain_text("空闲")
    card(watched, second["public_id"]).click()
    expect(page.locator(f'#crew-choice option[value="{free["id"]}"]')).to_contain_text("休息")


def test_a_crew_working_in_my_grid_going_off_duty_shows_at_once(demo_server, open_page):
    """Crews serving my grids push their status to my console: the choice of another crew in
    the open incident says 休息 without anything being reopened."""
    watched, _ = drain_report_opened(open_page, demo_server, "console-crew-live", "13800000009")
    page = watched.page
    admin = Rest(demo_server, "admin")
    # Crews without the drainage skill are listed by status, not by rank: one serving the grid
    # from its street, one from the whole district.
    working_here = [c for c in admin.get(f"/crews?area={GRID}")["crews"] if "drainage" not in c["skills"]]
    for crew in (next(c for c in working_here if "320104" not in c["service_areas"]),
                 next(c for c in working_here if "320104" in c["service_areas"])):
        option = page.locator(f'#crew-choice option[value="{crew["id"]}"]')
        expect(option).to_contain_text("空闲")
        admin.call("POST", f"/crews/{crew['id']}/status", json={"status": "off"})
        expect(option).to_contain_text("休息")
    watched.screenshot("crew-off-live")


def test_refused_choices_are_said_in_the_managers_words(demo_server, open_page):
    """A field the server refuses reads as the console's own sentence, not the server's
    English: a crew gone off duty unheard, an unknown or the same incident to merge into."""
    watched, first = drain_report_opened(open_page, demo_server, "console-field-errors", "13800000011")
    page = watched.page
    admin = Rest(demo_server, "admin")
    working_here = {c["id"] for c in admin.get(f"/crews?area={GRID}")["crews"]}
    far = next(c for c in admin.get("/crews")["crews"]
               if c["status"] == "available" and c["id"] not in working_here)
    admin.call("POST", f"/crews/{far['id']}/status", json={"status": "off"})  # unheard here
    notice = page.locator("#notice")

    page.select_option("#crew-choice", str(far["id"]))
    page.click('[data-action="dispatch-other"]')
    expect(notice).to_have_text(f"{far['name']}已下班休息，请选择其他维修队")
    expect_console_error(watched, "409")
    page.fill("#merge-original", "QH-NOPE")
    page.click('[data-action="merge"]')
    expect(notice).to_have_text("找不到这个原事件编号")
    page.fill("#merge-original", first["public_id"])
    page.click('[data-action="merge"]')
    expect(notice).to_have_text("不能把事件合并到它自己")
    expect_console_error(watched, "422")
    page.click("#lang")
    page.fill("#merge-original", "QH-NOPE")
    page.click('[data-action="merge"]')
    expect(notice).to_have_text("Nothing found for this original incident number")
    expect_console_error(watched, "422")
    assert incident(demo_server, login(demo_server, f"manager-{GRID}"), first["public_id"])["status"] == "assigned"


MARKUP = '<img src=x onerror="window.injected = 1">'


def test_words_and_names_with_markup_are_shown_as_text(demo_server, open_page):
    """Found by a browser audit: the map marker's tooltip put the category name in as HTML
    (Leaflet takes a string as HTML), and the markup ran. A report's words, an admin's
    category name: data, shown as text wherever they appear."""
    Rest(demo_server, "admin").call("PATCH", "/categories/blocked_drain",
                                    json={"name_zh": "下水道" + MARKUP, "name_en": "Drain" + MARKUP})
    drain = requests.post(f"{demo_server}/api/v1/incidents", timeout=10, json={
        "category": "blocked_drain", "description": MARKUP + "\n第二行", "address": "302室" + MARKUP,
        "location": {"building_code": building_in(demo_server, GRID, 6)}}).json()
    watched = console(open_page, demo_server, GRID, TABLET, "console-markup")
    page = watched.page
    card(watched, drain["public_id"]).click()
    expect(page.locator("#detail dd.description")).to_have_text(MARKUP + "\n第二行")
    expect(page.locator("#detail")).to_contain_text("302室" + MARKUP)  # the address, beside the building
    page.locator(f'[data-incident="{drain["public_id"]}"]').hover()
    expect(page.locator(".leaflet-tooltip")).to_contain_text("下水道" + MARKUP)
    expect(card(watched, drain["public_id"])).to_contain_text("下水道" + MARKUP)
    assert page.evaluate("window.injected") is None
    assert page.locator("img[src=x]").count() == 0


def test_a_board_signed_in_in_another_tab_leaves_the_console_its_own(demo_server, open_page):
    """Found by a browser audit: every app kept one stored token and read it on each request,
    so a committee member signing in to /board in a second tab made the console's next tap go
    out as the committee member: 403, and the incident dropped from the manager's queue."""
    watched, drain = drain_report_opened(open_page, demo_server, "console-two-tabs", "13800000011")
    board = Watched(watched.page.context.new_page(), demo_server, "board-two-tabs")
    board.page.goto(f"{demo_server}/board")
    sign_in_form(board, "committee")
    page = watched.page
    page.bring_to_front()
    page.click("button[data-action=acknowledge]")
    expect(page.locator("#notice")).to_contain_text("已接单")
    expect(card(watched, drain["public_id"])).to_have_count(1)
    acknowledged = Rest(demo_server, "admin").get(f"/incidents/{drain['id']}")
    assert acknowledged["times"]["acknowledged_at"] and acknowledged["manager"]["id"] == \
        Rest(demo_server, f"manager-{GRID}").get("/auth/me")["id"]
    board.check()


def test_countdowns_run_on_the_servers_clock_when_the_tablet_runs_ahead(demo_server, open_page):
    """Found by a browser audit: the console took the server's time only as a lower bound,
    right for a tablet whose clock is behind; one that runs ahead showed each deadline that
    much early (4:56 left of 15 minutes on a tablet 10 minutes fast)."""
    set_clock(demo_server, "2026-11-02T10:00:00+08:00")  # weeks behind this machine's clock
    watched = console(open_page, demo_server, GRID, TABLET, "console-tablet-ahead")
    pipe = report(demo_server, building_in(demo_server, GRID, 3), "burst_pipe", "13800000012")
    card(watched, pipe["public_id"]).click()
    left = watched.page.locator("#detail .countdown[data-due]").first
    expect(left).to_have_text(re.compile(r"^0[45]:\d\d$"))  # 5 minutes to acknowledge


def test_a_503_on_the_first_read_is_asked_again(demo_server, open_page):
    """Found by a live audit: one 503 on the queue's first read showed "queue empty" for good."""
    waiting = report(demo_server, building_in(demo_server, GRID, 3), "blocked_drain", "13800000009")
    watched = open_page(demo_server, "/static/css/app.css", TABLET, "console-first-read-503",
                        storage=sign_in_storage(demo_server, f"manager-{GRID}"))
    failed = fail_once(watched.page, "**/api/v1/incidents?status=*")
    watched.page.goto(f"{demo_server}/console")
    card(watched, waiting["public_id"]).wait_for(timeout=10_000)
    watched.page.locator("body[data-ready=true]").wait_for(timeout=10_000)
    expect(watched.page.locator("#offline")).to_be_hidden()
    assert failed
    expect_console_error(watched, "503")


@pytest.mark.parametrize("stored", ["99999", "-1"])
def test_a_stored_seq_the_server_never_gave_is_dropped(demo_server, open_page, stored):
    """Found by a live audit: a `since` beyond the server's (a database restored behind an
    open tab) was kept after the server's resync, so every later event was dropped as seen;
    one it cannot read was refused again and again, with no banner."""
    watched = console(open_page, demo_server, GRID, TABLET, f"console-since-{stored}")
    watched.page.locator("body[data-ready=true]").wait_for(timeout=10_000)
    me = Rest(demo_server, f"manager-{GRID}").get("/auth/me")["id"]
    watched.page.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [f"griddispatch.console.since.{me}", stored])
    watched.page.reload()
    watched.page.locator("body[data-ready=true]").wait_for(timeout=10_000)
    expect(watched.page.locator("#offline")).to_be_hidden(timeout=5000)
    new = report(demo_server, building_in(demo_server, GRID, 4), "blocked_drain", "13800000010")
    card(watched, new["public_id"]).wait_for(timeout=5000)


def test_opening_an_incident_shows_none_of_the_one_before_and_a_503_is_said(demo_server, open_page):
    """Found by a live audit: the incident opened before's crew ranking and reasons showed
    until the new one's arrived, and a 503 on opening one was an uncaught error, unsaid."""
    first = report(demo_server, building_in(demo_server, GRID, 5), "blocked_drain", "13800000011")
    second = report(demo_server, building_in(demo_server, GRID, 6), "blocked_drain", "13800000012")
    watched = console(open_page, demo_server, GRID, TABLET, "console-open-another")
    page = watched.page
    card(watched, first["public_id"]).click()
    expect(page.locator(".why .reasons").first).to_be_visible(timeout=5000)
    failed = fail_once(page, f"**/api/v1/incidents/{second['id']}/events")
    card(watched, second["public_id"]).click()
    expect(page.locator("#notice")).to_be_visible(timeout=5000)
    assert "database" not in page.locator("#notice").inner_text()  # said in the manager's words
    expect(page.locator(".why .reasons")).to_have_count(0)  # none of the first one's
    assert failed
    expect_console_error(watched, "503")
