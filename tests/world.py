"""A small staffed world on the hand-made tree (tests/geodata.py), for incident tests.

Managers: m1 (primary of G1), m1b (backup of G1), m2 (G2), m3 (G3); desk staffs the duty
desk of community 320104001001. Crews: plumbers A (serve the district, parked at B1)
and B (serve street 320104002, parked at B3); electricians E (district). The clock starts
on Tuesday 2026-12-01 10:00 in Shanghai: everybody on weekly hours is on duty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from dispatch.clock import ManualClock
from dispatch.incidents.categories import seed_categories
from dispatch.people.auth import hash_password
from dispatch.people.models import Crew, DutyDesk, GridAssignment, User
from grids.io import import_file
from tests.geodata import G1, G2, G3, at, tree_file

SHANGHAI = ZoneInfo("Asia/Shanghai")
TUESDAY_10 = datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI)
PASSWORD = "secret-pw"
B1_POINT = at(0.3, 0.3)  # inside unit B1-1 of building B1 (grid G1)
B3_POINT = at(2.7, 0.7)  # inside building B3 (grid G3)
G2_POINT = at(1.5, 0.5)  # open ground in grid G2


@dataclass
class World:
    app: object
    client: object
    clock: ManualClock
    users: dict[str, int] = field(default_factory=dict)
    crews: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        if username not in self.tokens:
            response = self.client.post("/api/v1/auth/token",
                                        json={"username": username, "password": PASSWORD})
            assert response.status_code == 201, response.get_json()
            self.tokens[username] = response.get_json()["token"]
        return self.tokens[username]

    def headers(self, username: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"} if username else {}

    def report(self, *, category: str = "burst_pipe", point=B1_POINT, as_user: str | None = None,
               key: str | None = None, **extra):
        body = {"category": category, "description": "水管爆了", "location":
                {"lon": point[0], "lat": point[1]}, **extra}
        headers = self.headers(as_user)
        if key:
            headers["Idempotency-Key"] = key
        return self.client.post("/api/v1/incidents", json=body, headers=headers)

    def act(self, username: str | None, incident: dict, action: str, *, key: str | None = None, **params):
        headers = self.headers(username)
        if key:
            headers["Idempotency-Key"] = key
        return self.client.post(f"/api/v1/incidents/{incident['id']}/actions",
                                json={"action": action, "expected_version": incident["version"], **params},
                                headers=headers)

    def get(self, username: str, incident: dict) -> dict:
        response = self.client.get(f"/api/v1/incidents/{incident['id']}", headers=self.headers(username))
        assert response.status_code == 200, response.get_json()
        return response.get_json()


def build_world(app, tmp_path) -> World:
    """Load the tree, categories, people and crews into the app's database."""
    clock = app.extensions["griddispatch.clock"]
    clock.set(TUESDAY_10)
    world = World(app=app, client=app.test_client(), clock=clock)
    hashed = hash_password(PASSWORD)
    now = clock.now()
    with app.extensions["griddispatch.db"].session() as s:
        import_file(s, tree_file(tmp_path))
        seed_categories(s)
        crews = {
            "A": Crew(name="plumbers A", skills=["plumbing", "general"], service_areas=["320104"],
                      status="available", lon=B1_POINT[0], lat=B1_POINT[1], idle_since=now),
            "B": Crew(name="plumbers B", skills=["plumbing"], service_areas=["320104002"],
                      status="available", lon=B3_POINT[0], lat=B3_POINT[1], idle_since=now),
            "E": Crew(name="electricians E", skills=["electrical"], service_areas=["320104"],
                      status="available", lon=B1_POINT[0], lat=B1_POINT[1], idle_since=now),
        }
        s.add_all(crews.values())
        s.flush()
        people = [
            ("admin", "admin", None, None), ("operator", "operator", "320104", None),
            ("committee-s1", "committee", "320104001", None), ("committee-d", "committee", "320104", None),
            ("m1", "grid_manager", None, None), ("m1b", "grid_manager", None, None),
            ("m2", "grid_manager", None, None), ("m3", "grid_manager", None, None),
            ("desk", "grid_manager", None, None), ("resident", "resident", None, None),
            ("crew-a", "crew", None, "A"), ("crew-b", "crew", None, "B"), ("crew-e", "crew", None, "E"),
        ]
        for username, role, scope, crew in people:
            user = User(username=username, display_name=username.upper(), role=role,
                        password_hash=hashed, scope_area_code=scope, phone="13800000000",
                        crew_id=crews[crew].id if crew else None, active=True, created_at=now)
            s.add(user)
            s.flush()
            world.users[username] = user.id
        s.add_all([
            GridAssignment(user_id=world.users["m1"], grid_code=G1, kind="primary"),
            GridAssignment(user_id=world.users["m1b"], grid_code=G1, kind="backup"),
            GridAssignment(user_id=world.users["m2"], grid_code=G2, kind="primary"),
            GridAssignment(user_id=world.users["m3"], grid_code=G3, kind="primary"),
            DutyDesk(user_id=world.users["desk"], community_code="320104001001"),
        ])
        world.crews = {name: crew.id for name, crew in crews.items()}
    return world
