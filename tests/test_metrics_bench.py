"""The benchmark writes what the event path would: replaying its events gives its facts and rollups."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from dispatch.bench import metrics as bench
from dispatch.incidents.events import project
from dispatch.incidents.models import Incident, IncidentEvent
from dispatch.metrics.models import MetricFact, MetricRollup
from dispatch.metrics.record import rebuild


def snapshot(session):
    return (sorted(tuple(r) for r in session.execute(select(*MetricRollup.__table__.columns))),
            sorted(tuple(r) for r in session.execute(select(*MetricFact.__table__.columns))))


def test_bench_rows_match_the_event_path(db):
    tree = bench.load_world(db)
    took = bench.load(db, tree, 400, events_every=1, seed=7)
    assert took["events"] > 400 * 5
    with db.session() as session:
        written = snapshot(session)
        statuses = dict(session.execute(select(MetricFact.status, func.count()).group_by(MetricFact.status)).all())
        assert {"closed", "verified", "assigned"} <= set(statuses)
        assert session.scalar(select(func.count()).where(MetricFact.rework_count > 0)) > 5
        assert rebuild(session, ZoneInfo(bench.TZ_NAME)) == 400
        assert snapshot(session) == written
        # The incident rows are the projection of the events too.
        for incident in session.scalars(select(Incident).where(Incident.id % 37 == 0)):
            events = session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident.id)
                                     .order_by(IncidentEvent.seq))
            replayed = project(events)
            assert (replayed.rework_count or 0) == incident.rework_count  # 0 is the column default
            for column in ("status", "version", "acknowledged_at", "on_site_at", "resolved_at",
                           "verified_at", "closed_at", "verify_due", "rating", "crew_id", "manager_id",
                           "grid_code", "updated_at"):
                assert getattr(replayed, column) == getattr(incident, column), (incident.id, column)


def test_board_queries_and_baseline_agree(db):
    tree = bench.load_world(db)
    bench.load(db, tree, 300, events_every=1, seed=8)
    figures = bench.measure(db, [q for q in bench.board_queries(tree.streets[0]) if q.baseline],
                            tree.streets[0], repeats=1, baseline_repeats=1)
    assert figures and all(f["baseline_p50_ms"] > 0 for f in figures.values())
