"""An operator taking phone calls in /report, in a real browser: the caller's name and phone,
what to read back to the caller, then an empty form for the next call."""

from __future__ import annotations

import re

import pytest
import requests

from tests.browser import DESKTOP, sign_in_storage
from tests.web_helpers import DEMO_BUILDING, Rest, expect_console_error

pytest.importorskip("playwright")
from playwright.sync_api import expect

CALLER = {"name": "王先生", "phone": "13912345678"}
CREW_TEXT = {  # what the result says of the crew: sent, recommended, none free
    "zh-CN": ("已派出：{name}", "推荐：{name}", "暂无空闲维修队：已上报升级"),
    "en": ("Sent: {name}", "Recommended: {name}", "No crew free now: escalated"),
}


def crew_text(incident: dict, language: str = "zh-CN") -> str:
    sent, recommended, none = CREW_TEXT[language]
    if incident["crew"]:
        return sent.format(name=incident["crew"]["name"])
    if incident["recommended_crew"]:
        return recommended.format(name=incident["recommended_crew"]["name"])
    return none


def fill_call(page, *, category: str, building_index: int = 0) -> str:
    """Category, a building from the list, a description; returns the building's name."""
    page.locator(f'#categories [data-code="{category}"]').click()
    page.locator('.modes [data-mode="list"]').click()
    building = page.locator("#buildings button").nth(building_index)
    building.wait_for()
    name = building.inner_text()
    building.click()
    expect(page.locator("#place")).to_contain_text(name)
    page.locator("#description").fill("来电：楼道水管爆裂，水流不止")
    return name


def filed_incident(page, base: str) -> dict:
    """The incident behind the result shown, as an admin sees it (found by its tracking link)."""
    link = page.locator("#call-tracking").get_attribute("href")
    token = re.search(r"/track/([^/]+)$", link).group(1)
    tracked = Rest(base).get(f"/track/{token}")
    return Rest(base, "admin").get(f"/incidents/{tracked['id']}")


def test_an_operator_files_calls_one_after_another(demo_server, open_page):
    operator = Rest(demo_server, "operator").get("/auth/me")
    watched = open_page(demo_server, "/report", DESKTOP, "call-taking",
                        storage=sign_in_storage(demo_server, "operator"))
    page = watched.page
    expect(page.locator("header h1")).to_have_text("来电登记")
    expect(page.locator("#call-taker")).to_contain_text(operator["display_name"])
    expect(page.locator("label[for=phone]")).to_have_text("来电号码（可选）")

    # First call: a burst pipe, with the caller's name and phone.
    building = fill_call(page, category="burst_pipe")
    page.locator("#caller-name").fill(CALLER["name"])
    page.locator("#phone").fill(CALLER["phone"])
    page.locator("#submit").click()
    expect(page.locator("#call-result")).to_be_visible()
    expect(page.locator("#report")).to_be_hidden()
    watched.screenshot("1-filed")
    first = filed_incident(page, demo_server)
    assert first["channel"] == "operator"
    assert first["reporter"] == CALLER  # stored whole; an admin sees it whole
    assert first["areas"]["building"]["name"] == building
    expect(page.locator("#call-number")).to_have_text(first["public_id"])
    expect(page.locator("#call-place")).to_contain_text(building)
    manager = first["manager"]
    assert manager["phone"] is None  # the demo's managers have none: the name alone
    expect(page.locator("#call-manager")).to_have_text(manager["display_name"])
    assert first["crew"], first  # a burst pipe is urgent: a crew is sent at once
    expect(page.locator("#call-crew")).to_have_text(crew_text(first))
    expect(page.locator("#call-duplicate")).to_be_hidden()
    assert page.url.endswith("/report")  # the operator stays for the next call

    # Next call: an empty form, a new Idempotency-Key; the same pipe again is a second report,
    # shown as a likely duplicate of the first.
    page.locator("#next-call").click()
    expect(page.locator("#report")).to_be_visible()
    expect(page.locator("#call-result")).to_be_hidden()
    for field in ("#description", "#caller-name", "#phone"):
        expect(page.locator(field)).to_have_value("")
    expect(page.locator('#categories [aria-pressed="true"]')).to_have_count(0)
    expect(page.locator("#place")).to_have_text("尚未选择地点")
    page.locator("#submit").click()  # nothing chosen: refused on the page's fields, nothing filed
    expect(page.locator("#error-category")).not_to_be_empty()
    expect(page.locator("#call-result")).to_be_hidden()
    expect_console_error(watched, "400")

    # With a phone on record, the operator is shown it, to call the manager if need be.
    Rest(demo_server, "admin").call("PATCH", f"/people/{manager['id']}", json={"phone": "13800000001"})
    fill_call(page, category="burst_pipe")
    page.locator("#submit").click()
    expect(page.locator("#call-result")).to_be_visible()
    second = filed_incident(page, demo_server)
    assert second["manager"]["id"] == manager["id"]
    expect(page.locator("#call-manager")).to_have_text(f"{manager['display_name']}（13800000001）")
    assert second["id"] != first["id"]
    assert second["reporter"] == {"name": None, "phone": None}  # nothing left from the last call
    expect(page.locator("#call-number")).to_have_text(second["public_id"])
    expect(page.locator("#call-duplicate")).to_contain_text(first["public_id"])
    expect(page.locator("#call-crew")).to_have_text(crew_text(second))
    watched.screenshot("2-duplicate")

    # In English too, the result as well as the form.
    page.locator("#lang").click()
    expect(page.locator("header h1")).to_have_text("Take a call")
    expect(page.locator("#call-crew")).to_have_text(crew_text(second, "en"))
    expect(page.locator("#call-duplicate")).to_contain_text(f"Possibly the same as {first['public_id']}")


def test_the_callers_open_reports_show_as_the_number_is_typed(demo_server, open_page):
    """A second call about the same problem is answered with the first report's number: the
    number's open reports (however it was written when filed) appear as it is typed; ended
    ones do not; the next call starts without them."""
    operator = Rest(demo_server, "operator")
    call = {"category": "no_water", "description": "整栋楼停水", "location": {"building_code": DEMO_BUILDING}}
    open_one = operator.call("POST", "/incidents", status=201, json={**call, "reporter_phone": "+86 139 5555 0101"})
    ended = operator.call("POST", "/incidents", status=201,
                          json={**call, "category": "rubbish", "reporter_phone": "13955550101"})
    Rest(demo_server, "admin").act(ended["id"], "cancel", reason="来电人说已清运")

    watched = open_page(demo_server, "/report", DESKTOP, "caller-reports",
                        storage=sign_in_storage(demo_server, "operator"))
    page = watched.page
    history = page.locator("#caller-reports")
    page.locator("#phone").press_sequentially("139-5555-0101")  # as a caller reads it out
    expect(history).to_be_visible()
    expect(page.locator("#caller-reports-title")).to_contain_text("此号码有 1 件未结报告")
    items = page.locator("#caller-reports-list li")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text(open_one["public_id"])
    expect(items.first).to_contain_text(open_one["category_name"]["zh"])
    expect(items.first).not_to_contain_text(ended["public_id"])
    watched.screenshot("open-reports")

    page.locator("#lang").click()
    expect(page.locator("#caller-reports-title")).to_contain_text("Open reports from this number: 1.")
    expect(items.first).to_contain_text(open_one["category_name"]["en"])
    page.locator("#lang").click()

    with page.expect_response(lambda r: "phone=13955550199" in r.url):
        page.locator("#phone").fill("13955550199")  # another caller: nothing on record
    expect(history).to_be_hidden()
    page.locator("#phone").fill("13955550101")
    expect(items).to_have_count(1)
    fill_call(page, category="lift_fault")
    page.locator("#submit").click()
    expect(page.locator("#call-result")).to_be_visible()
    page.locator("#next-call").click()
    expect(page.locator("#phone")).to_have_value("")
    expect(history).to_be_hidden()
    with page.expect_response(lambda r: "phone=013955550101" in r.url):
        page.locator("#phone").fill("013955550101")  # a typo finds nothing
    expect(history).to_be_hidden()
    page.locator("#phone").fill("0086 139 5555 0101")  # the call just filed is on record now
    expect(page.locator("#caller-reports-title")).to_contain_text("此号码有 2 件未结报告")


def test_a_sign_in_that_runs_out_mid_call_loses_nothing(demo_server, open_page):
    """The operator's token is revoked (or expires) while a call is being typed: submitting
    asks for a sign-in above the form, keeps what was typed, and files it once signed in."""
    storage = sign_in_storage(demo_server, "operator")
    watched = open_page(demo_server, "/report", DESKTOP, "call-signed-out", storage=storage)
    page = watched.page
    expect(page.locator("header h1")).to_have_text("来电登记")
    requests.delete(f"{demo_server}/api/v1/auth/token", timeout=10,
                    headers={"Authorization": f"Bearer {storage['griddispatch.token']}"}).raise_for_status()
    building = fill_call(page, category="blocked_drain")
    page.locator("#caller-name").fill("李女士")
    page.locator("#phone").fill("13955550202")
    page.locator("#submit").click()

    signin = page.locator("form#signin")
    expect(signin).to_be_visible()
    expect(signin.locator("[role=alert]")).to_contain_text("登录已失效")  # revoked, as the server says
    expect(signin.locator("[role=alert]")).to_contain_text("已填内容不会丢失")
    expect(page.locator("#call-result")).to_be_hidden()
    expect(page.locator("#caller-name")).to_have_value("李女士")
    expect(page.locator("#place")).to_contain_text(building)
    watched.screenshot("sign-in-again")
    page.fill("form#signin input[name=username]", "operator")
    page.fill("form#signin input[name=password]", "demo")
    page.click("form#signin button[type=submit]")

    expect(page.locator("#call-result")).to_be_visible()
    expect(signin).to_be_hidden()
    filed = filed_incident(page, demo_server)
    assert filed["reporter"] == {"name": "李女士", "phone": "13955550202"}
    assert filed["category"] == "blocked_drain" and filed["channel"] == "operator"
    assert filed["areas"]["building"]["name"] == building
    listed = Rest(demo_server, "admin").get("/incidents?phone=13955550202")
    assert listed["total"] == 1  # filed once
    expect_console_error(watched, "401")  # the refused report, and the stale sign-in checked and dropped


def test_a_call_kept_through_a_reload_and_a_lapsed_sign_in_is_filed_once_signed_in(demo_server, open_page):
    """The network fails through every try, so the call is kept in the browser; by the time
    the screen is reloaded the operator's sign-in has lapsed: the screen asks for a sign-in
    and then files the kept call (not an anonymous resident's report, not twice)."""
    storage = sign_in_storage(demo_server, "operator")
    watched = open_page(demo_server, "/report", DESKTOP, "call-kept", storage=storage)
    page = watched.page
    expect(page.locator("header h1")).to_have_text("来电登记")
    page.route("**/api/v1/incidents", lambda route: route.abort() if route.request.method == "POST"
               else route.continue_())
    building = fill_call(page, category="street_light")
    page.locator("#phone").fill("13955550303")
    page.locator("#submit").click()
    expect(page.locator("#error-form")).to_contain_text("已保存在本机", timeout=30000)  # 1+2+4+8 s of retries
    requests.delete(f"{demo_server}/api/v1/auth/token", timeout=10,
                    headers={"Authorization": f"Bearer {storage['griddispatch.token']}"}).raise_for_status()
    page.unroute("**/api/v1/incidents")
    page.reload()

    signin = page.locator("form#signin")
    expect(signin.locator("[role=alert]")).to_contain_text("登录已失效")  # revoked, as the server says
    expect(signin.locator("[role=alert]")).to_contain_text("已填内容不会丢失")
    expect(page.locator("#submit")).to_be_disabled()
    admin = Rest(demo_server, "admin")
    assert admin.get("/incidents?phone=13955550303")["total"] == 0
    page.fill("form#signin input[name=username]", "operator")
    page.fill("form#signin input[name=password]", "demo")
    page.click("form#signin button[type=submit]")
    expect(page.locator("#call-result")).to_be_visible()
    filed = filed_incident(page, demo_server)
    assert filed["channel"] == "operator" and filed["category"] == "street_light"
    assert filed["reporter"]["phone"] == "13955550303"
    assert filed["areas"]["building"]["name"] == building
    assert admin.get("/incidents?phone=13955550303")["total"] == 1
    assert page.evaluate("localStorage.getItem('griddispatch.report.unsent')") is None
    expect_console_error(watched, "401")
    expect_console_error(watched, "net::ERR_FAILED")


def test_a_resident_gets_no_call_taking_form(demo_server, open_page):
    """Signed in as someone who takes no calls (a committee member), or not at all, /report
    stays the resident's form."""
    for storage in (None, sign_in_storage(demo_server, "committee")):
        page = open_page(demo_server, "/report", DESKTOP, storage=storage).page
        expect(page.locator("header h1")).to_have_text("我要报事")
        expect(page.locator("#caller-name")).to_be_hidden()
        expect(page.locator("#call-taker")).to_be_hidden()


def test_an_operator_signs_in_to_take_calls(demo_server, open_page):
    """/report?call (linked from / and printed by `griddispatch demo`) asks for an operator's
    sign-in first; another role is refused."""
    from tests.server import running_server

    running_server.last_output.seek(0)
    assert f"{demo_server}/report?call" in running_server.last_output.read()
    watched = open_page(demo_server, "/", DESKTOP, "call-sign-in")
    page = watched.page
    page.locator('a[href="/report?call"]').click()
    signin = page.locator("form#signin")
    expect(signin).to_be_visible()
    expect(page.locator("#report")).to_be_hidden()
    for username, refused in (("committee", True), ("operator", False)):
        page.fill("form#signin input[name=username]", username)
        page.fill("form#signin input[name=password]", "demo")
        page.click("form#signin button[type=submit]")
        if refused:
            expect(signin.locator("[role=alert]")).to_have_text("此账号不能使用本页面")
    expect(signin).to_be_hidden()
    expect(page.locator("header h1")).to_have_text("来电登记")
    expect(page.locator("#field-reporter_name")).to_be_visible()
    page.locator("#map path[data-code]").first.wait_for(state="attached")  # the map drew once shown
    watched.screenshot("signed-in")


def test_the_board_leads_an_operator_to_the_calls(demo_server, open_page):
    """Operators watch the board between calls: it links them to the call-taking screen,
    already signed in; a committee member's board has no such link."""
    committee = open_page(demo_server, "/board", DESKTOP, storage=sign_in_storage(demo_server, "committee")).page
    expect(committee.locator("#who")).not_to_be_empty()  # signed in and the role looked at
    expect(committee.locator("#take-calls")).to_be_hidden()

    watched = open_page(demo_server, "/board", DESKTOP, "board-operator", storage=sign_in_storage(demo_server, "operator"))
    page = watched.page
    expect(page.locator("#who")).not_to_be_empty()
    watched.screenshot("board")
    page.locator("#take-calls").click()
    page.wait_for_url("**/report?call")
    expect(page.locator("header h1")).to_have_text("来电登记")
    expect(page.locator("form#signin")).to_be_hidden()
    expect(page.locator("#report")).to_be_visible()
