"""Admin writes sent at once to two server processes on PostgreSQL (SQLite has one writer).

Found by a people audit: each of these checked, then wrote, so two at once both passed the
check. Then one failed on the unique index (a 500), or both won: three accounts told apart
only by capitals, a manager holding the grids of two requests that each meant to be all.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.server import running_server
from tests.web_helpers import Rest


def _at_once(bases: tuple[str, str], headers: dict, requests_: list[tuple[str, str, object]]) -> list:
    def send(k: int):
        method, path, body = requests_[k]
        return requests.request(method, f"{bases[k % 2]}/api/v1{path}", json=body, headers=headers, timeout=60)
    with ThreadPoolExecutor(len(requests_)) as pool:
        return list(pool.map(send, range(len(requests_))))


def _one_won(responses, code: str) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (len(responses) - 1), [r.text for r in responses]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {code}


def test_admin_writes_at_once_on_two_processes(postgres_server_url):
    from tests.conftest import fresh_postgres

    url = fresh_postgres(postgres_server_url)
    with running_server(url, command="demo") as first, running_server(url) as second:
        bases, admin = (first, second), Rest(first, "admin")
        people = admin.get("/people")["people"]
        manager = next(p for p in people if p["username"] == "manager-320104006001001")
        desk_holder = next(p for p in people if p["username"].startswith("desk-"))

        names = ["Racer", "racer", "RACER", "rAcer"] * 2
        _one_won(_at_once(bases, admin.headers, [
            ("POST", "/people", {"username": n, "role": "operator", "password": "long-enough-pw",
                                 "scope_area_code": "320104"}) for n in names]), "username_taken")
        assert sum(p["username"].lower() == "racer" for p in admin.get("/people")["people"]) == 1

        crews = ["Équipe", "équipe", "ÉQUIPE", "Équipe"] * 2
        _one_won(_at_once(bases, admin.headers, [("POST", "/crews", {"name": n}) for n in crews]),
                 "crew_name_taken")

        desk = {"user_id": desk_holder["id"], "community_code": "320104007003"}
        _one_won(_at_once(bases, admin.headers, [("POST", "/duty-desks", desk)] * 8), "already_on_desk")

        grids = ["320104006001001", "320104006001002", "320104006001003", "320104006001004"]
        answers = _at_once(bases, admin.headers, [
            ("PUT", f"/people/{manager['id']}/grids", [{"grid_code": g}]) for g in grids])
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        held = admin.get(f"/people/{manager['id']}")["grids"]
        assert len(held) == 1, held  # one request's whole list, not a mix of several

        # Rule changes that move open incidents (a category's crew rules and minutes, the
        # calendar) beside account edits: each takes the writers' lock before it writes or
        # reads the rules (found by a review: taken after its own write, a deadlock with any
        # other admin write, a 503 on PostgreSQL; read before, a "before" that was stale).
        answers = _at_once(bases, admin.headers, [
            ("PATCH", "/categories/noise", {"needs_crew": True, "skill": "plumbing"}),
            ("PATCH", f"/people/{desk_holder['id']}", {"display_name": "值班台一"}),
            ("PATCH", "/categories/noise", {"needs_crew": False}),
            ("PUT", "/calendar/2026-12-05", {"kind": "workday", "name": "调休"}),
            ("PATCH", "/categories/noise", {"acknowledge_minutes": 45}),
            ("PATCH", f"/people/{manager['id']}", {"display_name": "网格员一"}),
            ("DELETE", "/calendar/2026-12-05", None),
            ("PATCH", f"/people/{desk_holder['id']}", {"display_name": "值班台二"}),
        ])
        assert all(r.status_code < 500 for r in answers), [r.text for r in answers]
