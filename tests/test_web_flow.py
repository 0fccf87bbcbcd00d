"""The whole story in real browsers, every app at once: a resident taps a building to report
a burst pipe, the right manager's console shows it live, the manager acknowledges, the crew
works it on its phone, the manager verifies, the resident followed every step live and rates
it, and the committee's board moved; a second manager never saw any of it."""

from __future__ import annotations

import time

import pytest

from tests.browser import DESKTOP, PHONE, TABLET, set_clock, sign_in_form
from tests.test_web_resident import choose_category, tap_building, timeline_step
from tests.web_helpers import Rest, crew_members

pytest.importorskip("playwright")
from playwright.sync_api import expect

LIVE = 5000


def counter(board, name: str) -> int:
    return int(board.page.text_content(f"#count-{name}"))


def test_burst_pipe_from_report_to_rating_across_every_app(demo_server, open_page):
    base = demo_server
    admin = Rest(base, "admin")

    # The resident picks the place on the phone first; that building decides whose console.
    resident = open_page(base, "/report", PHONE, "flow-resident")
    choose_category(resident.page)
    building = tap_building(resident)
    grid = admin.get(f"/areas/{building}")["properties"]["parent_code"]
    grids = [f["id"] for f in admin.get("/areas?level=grid&limit=100")["features"]]
    elsewhere = next(g for g in grids if g[:12] != grid[:12])  # a grid of another community

    console = sign_in_form(open_page(base, "/console", TABLET, "flow-console"), f"manager-{grid}")
    other = sign_in_form(open_page(base, "/console", TABLET, "flow-other-console"), f"manager-{elsewhere}")
    board = sign_in_form(open_page(base, "/board", DESKTOP, "flow-board"), "committee")
    open_before = counter(board, "open")
    for page in (console.page, other.page):
        page.evaluate("window.notReloaded = true")

    resident.page.locator("#description").fill("楼道水管爆裂，水流不止")
    reported_at = time.monotonic()
    resident.page.locator("#submit").click()
    resident.page.wait_for_url("**/track/*")
    token = resident.page.url.rsplit("/", 1)[1]
    resident.page.evaluate("window.notReloaded = true")
    incident = Rest(base).get(f"/track/{token}")

    card = console.page.locator(f'ol.queue button.card[data-public-id="{incident["public_id"]}"]')
    card.wait_for(timeout=2000)
    assert time.monotonic() - reported_at < 2.0 + 1.0  # the page's own navigation is in there too
    console.screenshot("1-new-report")
    expect(board.page.locator("#count-open")).to_have_text(str(open_before + 1), timeout=LIVE)

    # The manager acknowledges on the tablet; the urgent repair was already dispatched, and
    # the console says which crew and why.
    card.click()
    console.page.click("button[data-action=acknowledge]")
    console.page.locator('#detail-status[data-status="dispatched"]').wait_for(timeout=LIVE)
    assert admin.get(f"/incidents/{incident['public_id']}")["times"]["acknowledged_at"]
    expect(timeline_step(resident.page, "acknowledged")).to_be_visible(timeout=LIVE)

    # The crew member works it on the phone.
    crew_id = admin.get(f"/incidents/{incident['public_id']}")["crew"]["id"]
    member = crew_members(base, crew_id)[0]
    crew = open_page(base, "/crew", PHONE, "flow-crew")
    crew.page.locator("#username").fill(member)
    crew.page.locator("#password").fill("demo")
    crew.page.locator("#signin button[type=submit]").click()
    job = crew.page.locator(f'#jobs li[data-id="{incident["id"]}"]')
    job.wait_for(timeout=LIVE)
    for action, event_type in (("en_route", "en_route"), ("on_site", "on_site"), ("resolve", "resolved")):
        set_clock(base, advance_minutes=3)
        job.locator(f'[data-action="{action}"]').click()
        expect(timeline_step(resident.page, event_type)).to_be_visible(timeout=LIVE)
    crew.screenshot("resolved")

    # The manager verifies; the resident's page showed every step without a reload.
    console.page.locator(f'ol.queue button.card[data-public-id="{incident["public_id"]}"]').click()
    console.page.click("button[data-action=verify]")
    expect(timeline_step(resident.page, "verified")).to_be_visible(timeout=LIVE)
    for step in ("reported", "assigned", "dispatched", "acknowledged", "en_route", "on_site", "resolved", "verified"):
        expect(timeline_step(resident.page, step)).to_be_visible()
    assert resident.page.evaluate("window.notReloaded") is True
    resident.page.locator('.stars input[value="5"]').check()
    resident.page.locator("#rate-submit").click()
    expect(resident.page.locator("#rated-text")).to_contain_text("5")
    assert Rest(base).get(f"/track/{token}")["rating"] == 5
    resident.screenshot("rated")

    # The board moved: nothing open any more, one resolved today.
    expect(board.page.locator("#count-open")).to_have_text(str(open_before), timeout=LIVE)
    expect(board.page.locator("#count-resolved")).not_to_have_text("0", timeout=LIVE)
    board.screenshot("after")

    # And the manager of a grid in another community never saw it.
    assert other.page.locator(f'button.card[data-public-id="{incident["public_id"]}"]').count() == 0
    assert console.page.evaluate("window.notReloaded") and other.page.evaluate("window.notReloaded")
