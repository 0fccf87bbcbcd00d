"""REST helpers for the browser tests: act as any demo account beside the page under test."""

from __future__ import annotations

import json

import requests

from tests.browser import Watched

DEMO_BUILDING = "Br7100440"  # 火瓦巷社区第2网格-1号楼, in the street 320104007


class Rest:
    """A signed-in (or anonymous) client of /api/v1 on a running server."""

    def __init__(self, base: str, username: str | None = None) -> None:
        self.base = f"{base}/api/v1"
        self.headers: dict[str, str] = {}
        if username:
            token = self.call("POST", "/auth/token", status=201,
                              json={"username": username, "password": "demo"})["token"]
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, *, status: int = 200, **kwargs):
        response = requests.request(method, f"{self.base}{path}", headers=self.headers, timeout=30, **kwargs)
        assert response.status_code == status, response.text
        return response.json()

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def act(self, incident_id: int, action: str, **fields) -> dict:
        """Take an action on the incident's current version."""
        version = self.get(f"/incidents/{incident_id}")["version"]
        return self.call("POST", f"/incidents/{incident_id}/actions",
                         json={"action": action, "expected_version": version, **fields})


def report(base: str, category: str = "burst_pipe", building: str = DEMO_BUILDING) -> dict:
    """File a resident's report over REST; returns the answer (crew, manager, tracking_token…)."""
    return Rest(base).call("POST", "/incidents", status=201, json={
        "category": category, "description": "楼道水管爆裂", "location": {"building_code": building}})


def sent_crew(base: str, incident_id: int) -> int:
    """The crew sent to an incident, as staff see it (a resident's answer names it only)."""
    return Rest(base, "admin").get(f"/incidents/{incident_id}")["crew"]["id"]


def crew_members(base: str, crew_id: int) -> list[str]:
    return [m["username"] for m in Rest(base, "admin").get(f"/crews/{crew_id}")["members"]]


def crew_for(base: str, skill: str, street: str) -> dict:
    """The one demo crew with this skill that serves this street (demo streets are dealt out)."""
    crews = Rest(base, "admin").get("/crews")["crews"]
    serving = [c for c in crews if skill in c["skills"] and street in c["service_areas"]]
    assert len(serving) == 1, serving
    return serving[0]


def expect_console_error(watched: Watched, text: str) -> None:
    """An error the test caused on purpose (Chromium logs every 4xx): assert it, then forgive it."""
    assert any(text in error for error in watched.errors), watched.errors
    watched.errors[:] = [error for error in watched.errors if text not in error]


def fail_once(page, pattern: str) -> list[str]:
    """The first request matching `pattern` is answered 503 database_unavailable, as a server
    whose database is restarting answers; the rest go through. The list of failed URLs."""
    failed: list[str] = []

    def route(request_route):
        if failed:
            request_route.continue_()
            return
        failed.append(request_route.request.url)
        request_route.fulfill(status=503, content_type="application/json", headers={"Retry-After": "1"}, body=json.dumps(
            {"error": {"code": "database_unavailable", "message": "the database is not answering", "details": {}}}))

    page.route(pattern, route)
    return failed


def holdable_pushes(page) -> dict:
    """Route the page's Socket.IO through the test and reload it; while the returned
    `{"held": True}`, incident pushes are dropped, so the page stays behind what others do."""
    switch = {"held": False}

    def drop_pushes_while_held(socket):
        server = socket.connect_to_server()
        server.on_message(lambda message: None if switch["held"] and str(message).startswith('42["incident_event"')
                          else socket.send(message))

    page.route_web_socket("**/socket.io/**", drop_pushes_while_held)
    page.reload()
    return switch
