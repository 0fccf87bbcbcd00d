"""The crew's phone app in a real browser: sign in, assignments arriving live, one-tap actions."""

from __future__ import annotations

import pytest

from tests.browser import PHONE, sign_in_storage
from tests.web_helpers import (
    DEMO_BUILDING,
    Rest,
    crew_for,
    crew_members,
    expect_console_error,
    fail_once,
    holdable_pushes,
    report,
    sent_crew,
)

pytest.importorskip("playwright")
from playwright.sync_api import expect

LIVE = 5000  # ms a live change may take to reach the page
STREET = "320104007"  # the street of DEMO_BUILDING


@pytest.fixture
def plumbers(demo_server):
    """The plumbing crew that a burst pipe at DEMO_BUILDING is dispatched to, and its members."""
    crew = crew_for(demo_server, "plumbing", STREET)
    return crew, crew_members(demo_server, crew["id"])


def card(page, incident_id: int):
    return page.locator(f'#jobs li[data-id="{incident_id}"]')


def test_crew_member_sees_a_new_assignment_live_and_works_it(demo_server, open_page, plumbers):
    crew, members = plumbers
    watched = open_page(demo_server, "/crew", PHONE, "crew-work")
    page = watched.page
    watched.screenshot("1-sign-in")
    page.locator("#username").fill(members[0])
    page.locator("#password").fill("demo")
    page.locator("#signin button[type=submit]").click()
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#who")).to_contain_text(crew["name"])
    page.evaluate("window.notReloaded = true")

    answer = report(demo_server)
    assert answer["crew"] == {"name": crew["name"]} and sent_crew(demo_server, answer["id"]) == crew["id"]
    job = card(page, answer["id"])
    expect(job).to_be_visible(timeout=LIVE)
    expect(job.locator(".where")).to_contain_text(answer["areas"]["building"]["name"])
    expect(page.locator("#notice")).to_contain_text("新任务")
    expect(job.locator('[data-action="on_site"]')).to_be_enabled()
    expect(job.locator('[data-action="resolve"]')).to_be_disabled()
    assert page.evaluate("window.notReloaded") is True
    job.locator(".show-map").click()
    expect(job.locator(".job-map path").first).to_be_attached()
    watched.screenshot("2-new-job")

    admin = Rest(demo_server, "admin")
    for action, status in (("en_route", "en_route"), ("on_site", "on_site"), ("resolve", "resolved")):
        job.locator(f'[data-action="{action}"]').click()
        expect(job).to_have_attribute("data-status", status)
        assert admin.get(f"/incidents/{answer['id']}")["status"] == status
        watched.screenshot(f"3-{status}")
    expect(job.locator(".actions button:enabled")).to_have_count(0)


def test_a_stale_card_says_so_and_reloads(demo_server, open_page, plumbers):
    _crew, members = plumbers
    answer = report(demo_server)
    watched = open_page(demo_server, "/crew", PHONE, "crew-stale", storage=sign_in_storage(demo_server, members[0]))
    page = watched.page
    # Hold back the live push so the card stays behind what a team-mate did meanwhile.
    pushes = holdable_pushes(page)
    job = card(page, answer["id"])
    expect(job).to_have_attribute("data-status", "dispatched")
    pushes["held"] = True
    Rest(demo_server, members[1]).act(answer["id"], "en_route")
    page.wait_for_timeout(500)
    expect(job).to_have_attribute("data-status", "dispatched")

    job.locator('[data-action="on_site"]').click()
    expect(job.locator(".message")).to_contain_text("刚被别人更新过")
    expect(job).to_have_attribute("data-status", "en_route")
    expect(job.locator('[data-action="en_route"]')).to_be_disabled()
    watched.screenshot("stale")
    expect_console_error(watched, "status of 409")
    pushes["held"] = False
    job.locator('[data-action="on_site"]').click()
    expect(job).to_have_attribute("data-status", "on_site")
    assert Rest(demo_server, "admin").get(f"/incidents/{answer['id']}")["status"] == "on_site"


def test_position_sharing_posts_the_position(demo_server, open_page, plumbers):
    crew, members = plumbers
    watched = open_page(demo_server, "/crew", PHONE, "crew-position", storage=sign_in_storage(demo_server, members[0]))
    page = watched.page
    page.context.grant_permissions(["geolocation"], origin=demo_server)
    page.context.set_geolocation({"longitude": 118.7861, "latitude": 32.0342})
    share = page.locator("#share")
    expect(share).not_to_be_checked()  # off until the member turns it on
    share.check()
    expect(page.locator("#share-status")).to_contain_text("位置已发送")
    watched.screenshot("sharing")
    position = Rest(demo_server, "admin").get(f"/crews/{crew['id']}")["position"]
    assert (round(position["lon"], 4), round(position["lat"], 4)) == (118.7861, 32.0342)


def test_a_tap_during_a_database_outage_is_retried_then_explained(postgres_server_url, open_page):
    """A real outage on PostgreSQL: the tap is tried again by itself while the server answers
    503, the member is then told in Chinese (not the server's English) that nothing can be
    done just now, and the same tap works once the database is back."""
    from tests.conftest import fresh_postgres
    from tests.outage import database_down
    from tests.server import running_server

    url = fresh_postgres(postgres_server_url)
    with running_server(url, "--test-clock", command="demo") as base:
        answer = report(base)
        members = crew_members(base, sent_crew(base, answer["id"]))
        watched = open_page(base, "/crew", PHONE, "crew-database-down", storage=sign_in_storage(base, members[0]))
        page = watched.page
        job = card(page, answer["id"])
        expect(job).to_have_attribute("data-status", "dispatched")
        with database_down(url):
            job.locator('[data-action="en_route"]').click()
            expect(job.locator(".message")).to_have_text("连接不上，正在重试…")
            expect(job.locator('[data-action="en_route"]')).to_be_disabled()
            # Five tries, 1 + 2 + 4 + 8 s apart, each a real 503 from the server.
            expect(job.locator(".message")).to_contain_text("服务器暂时无法处理", timeout=30000)
            watched.screenshot("database-down")
            assert "database" not in job.locator(".message").inner_text()
            expect(job).to_have_attribute("data-status", "dispatched")
        expect_console_error(watched, "503")
        job.locator('[data-action="en_route"]').click()
        expect(job).to_have_attribute("data-status", "en_route")
        timeline = Rest(base, "admin").get(f"/incidents/{answer['id']}/events")["events"]
        assert [e["type"] for e in timeline].count("en_route") == 1


def test_a_long_unbroken_word_does_not_widen_the_phone_page(demo_server, open_page, plumbers):
    """Found by a browser audit: a pasted link in a description made the page 5,000 px wide
    on a phone, with the action buttons off screen. Line breaks the resident typed are kept."""
    _, members = plumbers
    answer = Rest(demo_server).call("POST", "/incidents", status=201, json={
        "category": "burst_pipe", "description": "https://example.com/" + "W" * 300 + "\n第二行",
        "location": {"building_code": DEMO_BUILDING}})
    watched = open_page(demo_server, "/crew", PHONE, "crew-long-word")
    page = watched.page
    page.locator("#username").fill(members[0])
    page.locator("#password").fill("demo")
    page.locator("#signin button[type=submit]").click()
    job = card(page, answer["id"])
    expect(job).to_be_visible(timeout=LIVE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = job.locator('[data-action="resolve"]').bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"]
    assert "\n" in job.locator(".description").inner_text()
    watched.screenshot("long-word")


def test_the_jobs_show_when_websockets_are_blocked_and_the_first_read_fails(demo_server, open_page, plumbers):
    """Found by a live audit: on a network that drops websockets the list stayed empty (it was
    read only once the live connection let the app in) with no banner, and a 503 on the
    first read left it empty for good."""
    crew, members = plumbers
    answer = report(demo_server)
    assert sent_crew(demo_server, answer["id"]) == crew["id"]
    watched = open_page(demo_server, "/static/css/app.css", PHONE, "crew-no-websocket",
                        storage=sign_in_storage(demo_server, members[0]))
    page = watched.page
    page.route_web_socket("**/socket.io/**", lambda ws: ws.close())
    failed = fail_once(page, "**/api/v1/incidents?mine=*")
    page.goto(f"{demo_server}/crew")
    expect(page.locator("#offline")).to_be_visible(timeout=10000)  # told after 5 s without an answer
    expect(card(page, answer["id"])).to_be_visible(timeout=10000)
    assert failed
    watched.screenshot("jobs-without-live")
    expect_console_error(watched, "503")


def test_a_tap_on_a_job_cancelled_meanwhile_says_so(demo_server, open_page, plumbers):
    """Found by a live audit: the card vanished without a word (the reason was written into
    the card just removed)."""
    _crew, members = plumbers
    answer = report(demo_server)
    watched = open_page(demo_server, "/crew", PHONE, "crew-gone", storage=sign_in_storage(demo_server, members[0]))
    page = watched.page
    pushes = holdable_pushes(page)
    job = card(page, answer["id"])
    expect(job).to_have_attribute("data-status", "dispatched")
    where = job.locator(".where").inner_text()
    pushes["held"] = True
    Rest(demo_server, "operator").act(answer["id"], "cancel", reason="居民已自行修好")
    job.locator('[data-action="en_route"]').click()
    expect(job).to_have_count(0)
    expect(page.locator("#notice")).to_contain_text(f"{where} 的任务已撤销或交给了别人")
    expect_console_error(watched, "status of 409")
