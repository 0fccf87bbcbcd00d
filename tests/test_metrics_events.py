"""The metrics agree with the event log: ~30 incidents driven through the API over several
days, then every table recomputed here straight from the events and compared."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dispatch.incidents.models import Incident, IncidentEvent
from dispatch.metrics import histogram, service
from dispatch.metrics.models import PHASES, MetricFact, MetricRollup
from dispatch.metrics.record import rebuild
from tests.geodata import G1, G3
from tests.world import B1_POINT, B3_POINT, G2_POINT

SHANGHAI = ZoneInfo("Asia/Shanghai")
CATEGORIES = ["burst_pipe", "no_water", "power_cut", "neighbour_dispute", "noise"]
CREW_FOR = {"burst_pipe": "A", "no_water": "B", "power_cut": "E"}
GROUPS = ["grid", "community", "street", "district", "crew", "manager", "category"]


def ok(response) -> dict:
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def next_action(incident: dict, rng: random.Random) -> tuple[str, dict] | None:
    """The next step of a plausible lifecycle from where the incident stands."""
    status, times = incident["status"], incident["times"]
    if status in ("assigned", "dispatched", "en_route", "on_site") and not times["acknowledged_at"]:
        return "acknowledge", {}
    if status == "acknowledged":
        crew = CREW_FOR.get(incident["category"])
        if crew == "B" and incident["areas"]["street"]["code"] != "320104002":
            crew = "A"  # B serves that street only; A the whole district
        return ("dispatch", {"crew": crew}) if crew else ("on_site", {})
    return {
        "dispatched": ("en_route", {}) if rng.random() < 0.5 else ("on_site", {}),
        "en_route": ("on_site", {}),
        "on_site": ("resolve", {}),
        "resolved": ("rework", {"reason": "没修好"}) if rng.random() < 0.25 else ("verify", {}),
        "verified": ("close", {}),
    }.get(status)


def sign_in_again(world, signed_in: datetime) -> datetime:
    """Tokens last 12 hours and the clock runs on: sign in afresh every 10."""
    if world.clock.now() - signed_in < timedelta(hours=10):
        return signed_in
    world.tokens.clear()
    return world.clock.now()


def drive(world) -> None:
    """About 30 incidents at random but reproducible times, some stopping part way."""
    rng = random.Random(20261201)
    world.clock.set(datetime(2026, 11, 28, 21, 0, tzinfo=SHANGHAI))
    first, signed_in = None, world.clock.now()
    world.tokens.clear()
    for number in range(30):
        signed_in = sign_in_again(world, signed_in)
        category = rng.choice(CATEGORIES)
        report = ok(world.report(category=category, point=rng.choice([B1_POINT, G2_POINT, B3_POINT])))
        first = first or report
        incident = report
        if number == 7:
            ok(world.act("admin", incident, "merge", duplicate_of=first["public_id"]))
            continue
        if number == 11:
            ok(world.act("admin", incident, "cancel", reason="误报"))
            continue
        if number == 5 and incident["status"] == "assigned":
            incident = ok(world.act("admin", incident, "reassign", grid_code=G3 if
                                    incident["areas"]["grid"]["code"] != G3 else G1, reason="划错网格"))
        for _ in range(rng.randint(0, 9)):
            step = next_action(incident, rng)
            if step is None:
                break
            world.clock.advance(rng.choice([1, 2, 3, 4, 6, 9, 15, 25, 40, 70, 130, 300]))
            action, params = step
            signed_in = sign_in_again(world, signed_in)
            if "crew" in params:
                params = {"crew_id": world.crews[params["crew"]]}
            incident = ok(world.act("admin", incident, action, **params))
        if incident["status"] in ("resolved", "verified", "closed") and rng.random() < 0.6:
            track = f"/api/v1/track/{report['tracking_token']}/rating"
            ok(world.client.post(track, json={"rating": rng.choice([1, 3, 4, 5, 5])}))
        world.clock.advance(rng.choice([7, 30, 95, 240, 600]))
    world.tokens.clear()  # the tests that read the tables sign in at the clock's end


def ended(at: datetime, start: datetime, due: str | None) -> tuple[int, bool | None]:
    """A phase's whole seconds and whether it beat the deadline in force then."""
    return (at - start).total_seconds() // 1, None if due is None else at <= datetime.fromisoformat(due)


def from_log(session) -> list[dict]:
    """Each incident's metrics, worked out from its events alone (grouping from its row)."""
    events = defaultdict(list)
    for event in session.scalars(select(IncidentEvent).order_by(IncidentEvent.seq)):
        events[event.incident_id].append(event)
    out = []
    for incident in session.scalars(select(Incident)):
        if incident.status == "merged":
            continue
        dues: dict[str, str] = {}
        first: dict[str, datetime] = {}
        done: dict[str, tuple[int, bool | None]] = {}
        reported = resolved = None
        for event in events[incident.id]:
            dues.update({k: v for k, v in event.data.items() if k.endswith("_due")})
            at = event.at
            if event.type == "reported":
                reported = event.at
            elif event.type == "acknowledged" and "acknowledge" not in first:
                first["acknowledge"] = event.at
                done["acknowledge"] = ended(at, reported, dues.get("acknowledge_due"))
            elif event.type == "on_site" and "arrive" not in first:
                first["arrive"] = event.at
                done["arrive"] = ended(at, reported, dues.get("arrive_due"))
            elif event.type == "resolved":
                resolved = event.at
                done["resolve"] = ended(at, reported, dues.get("resolve_due"))
                done.pop("verify", None)
            elif event.type == "rework":
                resolved = None
                done.pop("resolve", None)
                done.pop("verify", None)
            elif event.type == "verified" and resolved is not None:
                done["verify"] = ended(at, resolved, dues.get("verify_due"))
        reworked = any(e.type == "rework" for e in events[incident.id])
        out.append({
            "grid": incident.grid_code, "community": incident.community_code,
            "street": incident.street_code, "district": incident.district_code,
            "crew": incident.crew_id or 0, "manager": incident.manager_id or 0,
            "category": incident.category_code, "day": reported.astimezone(SHANGHAI).date().isoformat(),
            "done": done, "closed": incident.status == "closed", "reworked": reworked,
            "resolved_ever": any(e.type == "resolved" for e in events[incident.id]),
            "rating": incident.rating,
        })
    return out


def nearest(values: list[int], percent: int) -> int | None:
    values = sorted(values)
    return values[math.ceil(percent * len(values) / 100) - 1] if values else None


def expected_tables(facts: list[dict], group_by: str, bucket: str | None):
    groups = defaultdict(list)
    for fact in facts:
        groups[(fact[group_by], fact["day"] if bucket else None)].append(fact)
    times, rates = {}, {}
    for key, members in groups.items():
        phases = {}
        for phase in PHASES:
            values = [f["done"][phase][0] for f in members if phase in f["done"]]
            phases[phase] = {"count": len(values),
                             "mean_s": round(sum(values) / len(values), 1) if values else None,
                             "p50_s": nearest(values, 50), "p90_s": nearest(values, 90)}
        times[key] = {"count": len(members), "phases": phases}

        def share(part, whole):
            return round(part / whole, 4) if whole else None

        resolved = sum(f["resolved_ever"] for f in members)
        rated = [f["rating"] for f in members if f["rating"] is not None]
        rates[key] = {
            "count": len(members),
            "closure_rate": share(sum(f["closed"] for f in members), len(members)),
            "rework_rate": share(sum(f["reworked"] for f in members), resolved),
            "satisfaction": share(sum(r >= 4 for r in rated), len(rated)),
            "first_time_fix": share(sum("verify" in f["done"] and not f["reworked"] for f in members), resolved),
            **{f"on_time_{p}": share(sum(f["done"][p][1] is True for f in members if p in f["done"]),
                                     sum(f["done"][p][1] is not None for f in members if p in f["done"]))
               for p in PHASES},
        }
    return times, rates


@pytest.fixture
def driven(world):
    drive(world)
    return world


def table(world, kind, **params):
    return ok(world.client.get(f"/api/v1/metrics/{kind}", headers=world.headers("admin"),
                               query_string={"from": "2026-11-20", "to": "2026-12-31", **params}))


def test_tables_agree_with_the_event_log(driven):
    world = driven
    with world.app.extensions["griddispatch.db"].session() as session:
        facts = from_log(session)
    assert len(facts) == 29 and len({f["day"] for f in facts}) >= 3
    assert any(f["reworked"] for f in facts) and any("verify" in f["done"] for f in facts)
    for group_by in GROUPS:
        for bucket in (None, "day"):
            params = {"group_by": group_by, **({"bucket": bucket} if bucket else {})}
            times, rates = expected_tables(facts, group_by, bucket)
            got = table(world, "response-times", **params)
            assert got["percentiles"]["method"] == "exact"
            assert {(r["group"], r["bucket"]): {"count": r["count"], "phases": r["phases"]}
                    for r in got["rows"]} == times, params
            got = table(world, "rates", min_sample=0, **params)
            assert {(r["group"], r["bucket"]): {k: v for k, v in r.items()
                                                if k not in ("group", "bucket", "name", "hidden")}
                    for r in got["rows"]} == rates, params


def test_histogram_percentiles_are_within_the_stated_error(driven, monkeypatch):
    world = driven
    exact = table(world, "response-times", group_by="street")
    monkeypatch.setattr(service, "EXACT_LIMIT", 0)
    estimated = table(world, "response-times", group_by="street")
    assert estimated["percentiles"] == {**exact["percentiles"], "method": "histogram",
                                        "max_relative_error": 0.0247}
    for want, got in zip(exact["rows"], estimated["rows"]):
        for phase in PHASES:
            a, b = want["phases"][phase], got["phases"][phase]
            assert (a["count"], a["mean_s"]) == (b["count"], b["mean_s"])
            for p in ("p50_s", "p90_s"):
                if a[p] is None:
                    assert b[p] is None
                elif a[p] < 1:
                    assert b[p] == 0
                else:
                    assert abs(b[p] - a[p]) <= a[p] * histogram.MAX_RELATIVE_ERROR + 0.05


def test_rollups_equal_a_rebuild_from_the_log(driven):
    def snapshot(session):
        return (sorted(tuple(r) for r in session.execute(select(*MetricRollup.__table__.columns))),
                sorted(tuple(r) for r in session.execute(select(*MetricFact.__table__.columns))))

    with driven.app.extensions["griddispatch.db"].session() as session:
        live = snapshot(session)
        assert rebuild(session) == 30
        assert snapshot(session) == live
    assert {r[0] for r in live[0]} == {"area", "crew", "manager"} and {r[1] for r in live[0]} == {"D", "W", "M"}
    assert G1 in {r[3] for r in live[0]}
