"""A sign-in that ends while a staff app is open (revoked elsewhere, run out, disabled): the app
asks for it again over itself, keeps what is on screen and what was typed, does the tap that
met the dead token once signed in, and resumes live push from the last event it saw.

In a real browser against `griddispatch demo --test-clock`. Two servers: one that checks its
live sockets' sign-ins every half second, and at once when told of a change such as a
revocation over REST (the live path tells the app first); one that in effect never looks
unless told: there the token is revoked in the database behind the server's back, and a tap is
what finds the sign-in ended."""

from __future__ import annotations

import pytest
import requests

from tests.browser import DESKTOP, PHONE, TABLET, building_in, demo, sign_in_form, sign_in_storage
from tests.web_helpers import Rest, crew_for, crew_members, expect_console_error, report

pytest.importorskip("playwright")
from playwright.sync_api import expect

GRID = "320104006001001"  # manager-<GRID> gets the reports below
STREET = "320104007"  # the street of the demo building a burst pipe is reported at
REASON = "居民来电说已自行清理"


@pytest.fixture
def watchful_server(tmp_path):
    with demo(tmp_path, {"GRIDDISPATCH_LIVE_SIGNIN_CHECK_SECONDS": "0.5"}) as base:
        yield base


@pytest.fixture
def quiet_server(tmp_path):
    with demo(tmp_path, {"GRIDDISPATCH_LIVE_SIGNIN_CHECK_SECONDS": "3600"}) as base:
        yield base


def resident_report(base: str, index: int, phone: str) -> dict:
    return Rest(base).call("POST", "/incidents", status=201, json={
        "category": "rubbish", "description": "楼下垃圾堆了三天", "reporter_phone": phone,
        "location": {"building_code": building_in(base, GRID, index)}})


def revoke(page, base: str) -> None:
    """Sign the page's token out from elsewhere (another device, an admin's cleanup)."""
    token = page.evaluate("localStorage.getItem('griddispatch.token')")
    requests.delete(f"{base}/api/v1/auth/token", timeout=10,
                    headers={"Authorization": f"Bearer {token}"}).raise_for_status()


def revoke_unannounced(page, tmp_path) -> None:
    """Revoke the page's token in the demo's database behind the server's back (an admin's
    SQL, a restored backup): no process is told, so on `quiet_server` only a tap finds the
    sign-in ended. A revocation over REST wakes the server's look at once."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, update

    from dispatch.people.auth import token_digest
    from dispatch.people.models import ApiToken

    token = page.evaluate("localStorage.getItem('griddispatch.token')")
    engine = create_engine(f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    with engine.begin() as connection:
        done = connection.execute(update(ApiToken).where(ApiToken.token_hash == token_digest(token))
                                  .values(revoked_at=datetime.now(UTC)))
        assert done.rowcount == 1
    engine.dispose()


def sign_in_again(watched, password: str = "demo") -> None:
    page = watched.page
    signin = page.locator("form#signin")
    page.fill("form#signin input[name=password]", password)
    page.click("form#signin button[type=submit]")
    expect(signin).to_be_hidden()


def console_with_reason_typed(open_page, base: str, name: str):
    """A console with a report opened and a cancel reason typed, not yet sent."""
    watched = sign_in_form(open_page(base, "/console", TABLET, name), f"manager-{GRID}")
    page = watched.page
    page.evaluate("window.notReloaded = true")
    opened = resident_report(base, 3, "13800000031")
    page.locator(f'ol.queue button.card[data-public-id="{opened["public_id"]}"]').click()
    page.locator("#cancel-reason").fill(REASON)
    return watched, opened


def cancel_tapped_signed_out(open_page, base: str, name: str, tmp_path):
    """`console_with_reason_typed`, its sign-in revoked unannounced, then the cancel tapped."""
    watched, opened = console_with_reason_typed(open_page, base, name)
    revoke_unannounced(watched.page, tmp_path)
    watched.page.click("button[data-action=cancel]")
    return watched, opened


def test_the_console_hears_its_sign_in_ended_and_carries_on_after_signing_in(watchful_server, open_page):
    base = watchful_server
    watched, opened = console_with_reason_typed(open_page, base, "console-signed-out-live")
    page = watched.page
    revoke(page, base)

    signin = page.locator("form#signin")
    expect(signin).to_be_visible(timeout=10_000)  # told by live push, before any tap
    expect(signin.locator("[role=alert]")).to_contain_text("登录已失效")
    expect(signin.locator("[role=alert]")).to_contain_text("页面上的内容都已保留")
    expect(signin.locator("input[name=username]")).to_have_value(f"manager-{GRID}")
    expect(page.locator("#workspace")).to_be_visible()
    expect(page.locator("#cancel-reason")).to_have_value(REASON)
    banner = page.locator("#offline")  # says why live push stopped: not "reconnecting"
    expect(banner).to_have_attribute("data-state", "signed_out")
    expect(banner).to_have_text("已退出登录：重新登录后恢复实时更新。")
    missed = resident_report(base, 4, "13800000032")  # while the console is signed out
    watched.screenshot("sign-in-again")

    sign_in_again(watched)
    expect(banner).to_be_hidden(timeout=10_000)
    expect(page.locator(f'ol.queue button.card[data-public-id="{missed["public_id"]}"]')).to_be_visible(timeout=10_000)
    page.click("button[data-action=cancel]")
    expect(page.locator("#notice")).to_contain_text("取消", timeout=10_000)
    cancelled = Rest(base, "admin").get(f"/incidents/{opened['id']}")
    assert cancelled["status"] == "cancelled"
    assert page.evaluate("window.notReloaded") is True  # the console was never reloaded


def test_a_tap_that_meets_an_ended_sign_in_is_done_once_signed_in_again(quiet_server, open_page, tmp_path):
    base = quiet_server
    watched, opened = cancel_tapped_signed_out(open_page, base, "console-signed-out-tap", tmp_path)
    page = watched.page
    sent: list[str] = []  # what the page says over new websockets (Socket.IO's connect has the token)
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))

    signin = page.locator("form#signin")
    expect(signin).to_be_visible()
    expect(signin.locator("[role=alert]")).to_contain_text("登录已失效")
    expect(page.locator("#cancel-reason")).to_have_value(REASON)
    admin = Rest(base, "admin")
    assert admin.get(f"/incidents/{opened['id']}")["status"] != "cancelled"  # nothing done yet

    sign_in_again(watched)
    expect(page.locator("#notice")).to_contain_text("取消", timeout=10_000)
    timeline = admin.get(f"/incidents/{opened['id']}/events")["events"]
    cancels = [e for e in timeline if e["type"] == "cancelled"]
    assert len(cancels) == 1 and cancels[0]["data"]["reason"] == REASON  # the tap, done once
    assert page.evaluate("window.notReloaded") is True
    # Live push connected again with the new sign-in: the old socket, still open, would be
    # ended by the server's next look and the manager asked to sign in once more.
    fresh = page.evaluate("localStorage.getItem('griddispatch.token')")
    for _ in range(100):
        if any(fresh in frame for frame in sent):
            break
        page.wait_for_timeout(100)
    assert any(fresh in frame for frame in sent), sent
    expect_console_error(watched, "401")  # the refused tap


def test_someone_else_signing_in_gets_the_console_afresh(quiet_server, open_page, tmp_path):
    base = quiet_server
    watched, _opened = cancel_tapped_signed_out(open_page, base, "console-signed-out-other", tmp_path)
    page = watched.page
    expect(page.locator("form#signin")).to_be_visible()
    other = "manager-320104006001003"
    page.fill("form#signin input[name=username]", other)
    page.fill("form#signin input[name=password]", "demo")
    page.click("form#signin button[type=submit]")
    page.wait_for_function("window.notReloaded === undefined")  # reloaded: the first one's screen is gone
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.evaluate("JSON.parse(localStorage.getItem('griddispatch.user')).username") == other
    expect_console_error(watched, "401")


def test_the_crew_app_signs_in_again_and_the_tap_goes_through(quiet_server, open_page, tmp_path):
    base = quiet_server
    crew = crew_for(base, "plumbing", STREET)
    member = crew_members(base, crew["id"])[0]
    answer = report(base)  # a burst pipe: this crew is sent at once
    watched = open_page(base, "/crew", PHONE, "crew-signed-out", storage=sign_in_storage(base, member))
    page = watched.page
    job = page.locator(f'#jobs li[data-id="{answer["id"]}"]')
    expect(job).to_have_attribute("data-status", "dispatched")
    page.evaluate("window.notReloaded = true")
    revoke_unannounced(page, tmp_path)

    job.locator('[data-action="en_route"]').click()
    expect(page.locator("form#signin")).to_be_visible()
    expect(page.locator("form#signin input[name=username]")).to_have_value(member)
    watched.screenshot("sign-in-again")
    sign_in_again(watched)
    expect(job).to_have_attribute("data-status", "en_route")
    assert Rest(base, "admin").get(f"/incidents/{answer['id']}")["status"] == "en_route"
    assert page.evaluate("window.notReloaded") is True
    expect_console_error(watched, "401")


def test_the_board_hears_its_sign_in_ended_and_catches_up_after_signing_in(watchful_server, open_page):
    base = watchful_server
    watched = sign_in_form(open_page(base, "/board", DESKTOP, "board-signed-out"), "committee")
    page = watched.page
    page.evaluate("window.notReloaded = true")
    revoke(page, base)
    expect(page.locator("form#signin")).to_be_visible(timeout=10_000)
    expect(page.locator("#board")).to_be_visible()
    missed = resident_report(base, 5, "13800000033")
    sign_in_again(watched)
    expect(page.locator(f'path[data-incident="{missed["public_id"]}"]')).to_be_attached(timeout=10_000)
    expect(page.locator("#count-open")).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True


def test_a_console_whose_grids_change_reloads_keeping_the_open_incident_and_the_typed_reason(
        watchful_server, open_page):
    """An admin gives the manager another grid while a cancel reason is half typed: live push
    says the rooms changed, the console reloads into its new grids (its queue and map were the
    old ones') with the incident still open and the reason as typed."""
    base = watchful_server
    watched, opened = console_with_reason_typed(open_page, base, "console-rooms-changed")
    page = watched.page
    admin = Rest(base, "admin")
    people = admin.get("/people", params={"role": "grid_manager"})["people"]
    manager = next(p for p in people if p["username"] == f"manager-{GRID}")
    other = next(g["grid_code"] for p in people for g in p["grids"] if g["grid_code"] != GRID)
    admin.call("PUT", f"/people/{manager['id']}/grids",
               json=[*manager["grids"], {"grid_code": other, "kind": "backup"}])

    page.wait_for_function("window.notReloaded === undefined", timeout=15_000)  # reloaded
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(page.locator("#detail h2 small")).to_have_text(opened["public_id"])
    expect(page.locator("#cancel-reason")).to_have_value(REASON)
    assert page.evaluate("sessionStorage.getItem('griddispatch.console.draft')") is None  # used once
    page.click("button[data-action=cancel]")
    expect(page.locator("#notice")).to_contain_text("取消", timeout=10_000)
    assert Rest(base, "admin").get(f"/incidents/{opened['id']}")["status"] == "cancelled"


def test_the_board_keeps_its_filters_over_a_reload_and_a_scope_change(watchful_server, open_page):
    """The board's filters live in its address: a link (or F5) opens it filtered, the form
    judges what the address asks (an area it does not offer, a date that is no date, are
    left as they were), and the reload into new rooms when the scope widens keeps them."""
    base = watchful_server
    grid_street = GRID[:9]
    watched = sign_in_form(open_page(
        base, "/board?category=rubbish&area=999999&from=2026-02-30", DESKTOP, "board-filters"),
        f"committee-{grid_street}")
    page = watched.page
    form = page.locator("form#filters")
    expect(form.locator("select[name=category]")).to_have_value("rubbish")
    expect(form.locator("select[name=area]")).to_have_value("")  # not an area of this board
    default_from = form.locator("input[name=from]").input_value()
    assert default_from and default_from != "2026-02-30"

    rubbish = resident_report(base, 4, "13800000041")
    noise = Rest(base).call("POST", "/incidents", status=201, json={
        "category": "noise", "location": {"building_code": building_in(base, GRID, 4)}})
    expect(page.locator(f'path[data-incident="{rubbish["public_id"]}"]')).to_be_attached(timeout=10_000)
    expect(page.locator("#count-open")).to_have_text("1")  # the noise is filtered out
    assert page.locator(f'path[data-incident="{noise["public_id"]}"]').count() == 0

    form.locator("select[name=area]").select_option(GRID)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(f"{base}/board?from={default_from}&to="
                             f"{form.locator('input[name=to]').input_value()}&area={GRID}&category=rubbish")

    page.evaluate("window.notReloaded = true")
    admin = Rest(base, "admin")
    member = next(p for p in admin.get("/people", params={"role": "committee"})["people"]
                  if p["username"] == f"committee-{grid_street}")
    district = admin.get("/areas", params={"level": "district", "limit": 1})["features"][0]["properties"]["code"]
    admin.call("PATCH", f"/people/{member['id']}", json={"scope_area_code": district})

    page.wait_for_function("window.notReloaded === undefined", timeout=15_000)  # reloaded
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(page.locator("#who")).to_contain_text("秦淮区")
    expect(form.locator("select[name=area]")).to_have_value(GRID)
    expect(form.locator("select[name=category]")).to_have_value("rubbish")
    expect(page.locator("#count-open")).to_have_text("1")
    expect(page.locator(f'path[data-incident="{rubbish["public_id"]}"]')).to_be_attached()
    assert page.locator(f'path[data-incident="{noise["public_id"]}"]').count() == 0


def test_a_crew_member_moved_to_another_crew_keeps_sharing_the_position(watchful_server, open_page):
    """Position sharing is off until the member turns it on, and a new page starts it off. The
    reload the app does by itself when an admin moves the member to another crew keeps it on:
    the position goes to the new crew at once."""
    base = watchful_server
    admin = Rest(base, "admin")
    crews = admin.get("/crews")["crews"]
    old, new = crews[0], crews[1]
    username = crew_members(base, old["id"])[0]
    watched = open_page(base, "/crew", PHONE, "crew-moved", storage=sign_in_storage(base, username))
    page = watched.page
    page.context.grant_permissions(["geolocation"], origin=base)
    page.context.set_geolocation({"longitude": 118.7861, "latitude": 32.0342})
    expect(page.locator("#who")).to_contain_text(old["name"])
    page.locator("#share").check()
    expect(page.locator("#share-status")).to_contain_text("位置已发送")

    page.evaluate("window.notReloaded = true")
    member = next(p for p in admin.get("/people", params={"role": "crew"})["people"] if p["username"] == username)
    admin.call("PATCH", f"/people/{member['id']}", json={"crew_id": new["id"]})

    page.wait_for_function("window.notReloaded === undefined", timeout=15_000)  # reloaded
    expect(page.locator("#who")).to_contain_text(new["name"], timeout=15_000)
    expect(page.locator("#share")).to_be_checked()
    expect(page.locator("#share-status")).to_contain_text("位置已发送", timeout=10_000)
    position = admin.get(f"/crews/{new['id']}")["position"]
    assert (round(position["lon"], 4), round(position["lat"], 4)) == (118.7861, 32.0342)
    assert page.evaluate("sessionStorage.getItem('griddispatch.crew.sharing')") is None  # used once

    page.reload()  # a new page of the member's own: sharing starts off again
    expect(page.locator("#who")).to_contain_text(new["name"])
    expect(page.locator("#share")).not_to_be_checked()


def test_the_sign_in_form_says_so_when_failures_have_slowed_it_down(quiet_server, open_page):
    """Ten wrong passwords for one account: the next try, the right password too, is refused
    for a while, and the form says so in the user's words rather than "wrong password"."""
    base = quiet_server
    watched = open_page(base, "/console", TABLET, "sign-in-slowed")
    page = watched.page
    alert = page.locator("form#signin [role=alert]")

    def try_password(password: str, status: int) -> None:
        page.fill("form#signin input[name=username]", f"manager-{GRID}")
        page.fill("form#signin input[name=password]", password)
        with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/token")) as answer:
            page.click("form#signin button[type=submit]")
        assert answer.value.status == status

    for _ in range(10):
        try_password("not-demo", 401)
        expect(alert).to_have_text("用户名或密码错误")
    try_password("demo", 429)
    expect(alert).to_have_text("登录失败次数过多，请稍后再试（最多 15 分钟）")
    expect(page.locator("form#signin")).to_be_visible()
    watched.screenshot("sign-in-slowed")
    expect_console_error(watched, "401")
    expect_console_error(watched, "429")
