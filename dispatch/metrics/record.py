"""Keeping the facts and rollups in step with the event log.

Definitions (the same ones tests recompute from the events themselves):
- reported: the `reported` event; an incident belongs to the local day it was reported on,
  in the grid, category, crew and manager it has now (a reassignment moves it).
- acknowledge and arrive: the first `acknowledged` / `on_site` event; a later one (after a
  reassignment or a rework) does not move them.
- resolve: the resolution that stands, i.e. the last `resolved` event not followed by a
  `rework`. Rework takes the resolution (and its verification) back: the phase counts again
  only when the incident is resolved again, and then from the report to that final fix.
- verify: from the standing resolution to the `verified` event that follows it.
- on time: the phase ended at or before the deadline the incident carried then.
Merged duplicates are left out: their original carries the work.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from sqlalchemy import and_, bindparam, delete, insert, or_, select, text, tuple_, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from dispatch.incidents.models import Incident, IncidentEvent
from dispatch.metrics import histogram
from dispatch.metrics.models import COUNTERS, KEY, PHASES, MetricFact, MetricRollup

SECOND = timedelta(seconds=1)
# Where each phase starts and ends on the projection, and the deadline it is held to.
PHASE_TIMES = {
    "acknowledge": ("created_at", "acknowledged_at", "acknowledge_due"),
    "arrive": ("created_at", "on_site_at", "arrive_due"),
    "resolve": ("created_at", "resolved_at", "resolve_due"),
    "verify": ("resolved_at", "verified_at", "verify_due"),
}
FIRST_ONLY = ("acknowledge", "arrive")


def metrics_tz() -> tzinfo:
    """The local time zone days and months are counted in (GRIDDISPATCH_TZ)."""
    name = (current_app.config["GRIDDISPATCH_TZ"] if has_app_context()
            else os.environ.get("GRIDDISPATCH_TZ") or "Asia/Shanghai")  # unset or empty: as the app
    return ZoneInfo(name)


def update_fact(fact: Any, incident: Incident, tz: tzinfo) -> None:
    """Bring a fact up to date with the incident's projection just after one event."""
    fact.day = incident.created_at.astimezone(tz).date()
    for level in ("grid", "community", "street", "district"):
        setattr(fact, f"{level}_code", getattr(incident, f"{level}_code") or "")
    fact.category_code = incident.category_code
    fact.crew_id = incident.crew_id or 0
    fact.manager_id = incident.manager_id or 0
    fact.status = incident.status
    for phase, (start, end, deadline) in PHASE_TIMES.items():
        if phase in FIRST_ONLY and getattr(fact, f"{phase}_s") is not None:
            continue
        began, ended, due = (getattr(incident, name) for name in (start, end, deadline))
        done = began is not None and ended is not None
        setattr(fact, f"{phase}_s", (ended - began) // SECOND if done else None)
        setattr(fact, f"{phase}_on_time", ended <= due if done and due is not None else None)
    fact.resolved_ever = bool(fact.resolved_ever) or incident.resolved_at is not None
    fact.rework_count = incident.rework_count or 0
    fact.rating = incident.rating


@dataclass(frozen=True)
class Contribution:
    """What one fact adds to the rollup cells it falls in."""

    day: date
    key: tuple[str, str, int, int]  # grid, category, crew, manager
    chain: tuple[str, str, str]  # community, street, district
    counters: tuple[int, ...]  # in the order of COUNTERS
    histogram: tuple[int, ...]  # one index per finished phase


def contribution(fact: Any) -> Contribution | None:
    if fact.status == "merged":
        return None
    verified = fact.verify_s is not None
    counters = [1, int(fact.status == "closed"), int(bool(fact.resolved_ever)),
                int(fact.rework_count > 0), int(fact.rating is not None),
                int(fact.rating is not None and fact.rating >= 4),
                int(verified and fact.rework_count == 0)]
    indexes = []
    for number, phase in enumerate(PHASES):
        seconds, on_time = getattr(fact, f"{phase}_s"), getattr(fact, f"{phase}_on_time")
        counters += [int(seconds is not None), seconds or 0, int(on_time is not None), int(bool(on_time))]
        if seconds is not None:
            indexes.append(number * histogram.BINS + histogram.bin_of(seconds))
    return Contribution(
        day=fact.day, key=(fact.grid_code, fact.category_code, fact.crew_id, fact.manager_id),
        chain=(fact.community_code, fact.street_code, fact.district_code),
        counters=tuple(counters), histogram=tuple(indexes))


def cells(part: Contribution) -> list[tuple]:
    """The keys of the cells a contribution falls in: per kind, its day's, ISO week's and month's."""
    grid, category, crew, manager = part.key
    by_kind = {"area": (grid, category, 0, 0), "crew": (grid, category, crew, 0),
               "manager": (grid, category, 0, manager)}
    monday = part.day - timedelta(days=part.day.weekday())
    return [(kind, span, period, *key) for kind, key in by_kind.items()
            for span, period in (("D", part.day), ("W", monday), ("M", part.day.replace(day=1)))]


def _move(session: Session, parts: list[tuple[Contribution, int]]) -> None:
    """Add (sign 1) or take away (sign -1) contributions: one read for all the changed cells,
    then at most one batched insert, update and delete.

    Runs while the event log's lock is held (at commit), so reading and rewriting a cell
    cannot interleave with another transaction's. Core statements, not ORM objects: a new
    report changes nine cells of some thirty columns each, and the ORM's bookkeeping of
    those attribute changes cost more than the database work.
    """
    changes: dict[tuple, tuple[Contribution, list[int], Counter[int]]] = {}
    for part, sign in parts:
        for key in cells(part):
            _, deltas, hist = changes.setdefault(key, (part, [0] * len(COUNTERS), Counter()))
            for k, value in enumerate(part.counters):
                deltas[k] += sign * value
            hist.update({index: sign for index in part.histogram})
    changes = {key: change for key, change in changes.items() if any(change[1]) or any(change[2].values())}
    if not changes:
        return  # e.g. a new manager leaves the area and crew cells as they were
    connection = session.connection()
    if all(min(deltas) >= 0 and not any(hist.values()) for _, deltas, hist in changes.values()):
        # Only counters going up (a new report, say): one upsert adds them, nothing read first.
        rows = [_new_cell(key, part, dict(zip(COUNTERS, deltas)))
                for key, (part, deltas, _) in sorted(changes.items())]
        if connection.dialect.name == "postgresql":
            connection.execute(_upsert_postgresql(), {"cells": json.dumps(rows, default=date.isoformat)})
        else:
            connection.execute(_upsert_sqlite(), rows)
        return
    if connection.dialect.name == "postgresql":
        rows = connection.execute(_read_row_values(), {"cells": json.dumps(
            [dict(zip(KEY, key)) for key in changes], default=date.isoformat)})
    else:
        rows = connection.execute(_statements(len(changes))[0], {
            f"c{i}_{k}": v for i, key in enumerate(changes) for k, v in zip(KEY, key)})
    existing = {tuple(row[:len(KEY)]): row[len(KEY):] for row in rows}
    inserts, updates, gone = [], [], []
    for key, (part, deltas, hist) in changes.items():
        old = existing.get(key)
        counts = Counter(histogram.decode(old[-1])) if old is not None else Counter()
        counts.update(hist)
        totals = deltas if old is None else [a + b for a, b in zip(old, deltas)]
        values = {**dict(zip(COUNTERS, totals)), "histogram": histogram.encode(counts)}
        if values["n"] == 0:
            if old is not None:
                gone.append(key)
        elif old is None:
            inserts.append(_new_cell(key, part, values))
        else:
            updates.append({**{f"c0_{k}": v for k, v in zip(KEY, key)}, **values})
    if inserts:
        connection.execute(_insert(), inserts)
    if updates:
        connection.execute(_statements(1)[1], updates)
    if gone:
        connection.execute(_statements(len(gone))[2],
                           {f"c{i}_{k}": v for i, key in enumerate(gone) for k, v in zip(KEY, key)})


def _new_cell(key: tuple, part: Contribution, values: dict[str, Any]) -> dict[str, Any]:
    """A cell's row: its key, the area chain above its grid, and these values."""
    return {**dict(zip(KEY, key)), "community_code": part.chain[0], "street_code": part.chain[1],
            "district_code": part.chain[2], **values}


@functools.lru_cache(maxsize=64)
def _statements(n: int):
    """Read, update and delete statements for n cells, built once per n.

    The cells are matched as an OR of full-key equalities: SQLite searches the primary
    key for each (a row-value IN list would scan the whole table).
    """
    table = MetricRollup.__table__
    match = or_(*(and_(*(table.c[k] == bindparam(f"c{i}_{k}") for k in KEY)) for i in range(n)))
    read = select(*(table.c[k] for k in KEY), *(table.c[c] for c in COUNTERS),
                  table.c.histogram).where(match)
    write = update(table).where(match).values({c: bindparam(c) for c in (*COUNTERS, "histogram")})
    return read, write, delete(table).where(match)


_CELL_COLUMNS = (*KEY, "community_code", "street_code", "district_code", *COUNTERS)
_CELL_TYPES = {"period": "date", "crew_id": "integer", "manager_id": "integer",
               **{c: "bigint" for c in COUNTERS}}  # the rest are varchar


def _cells_parameter(columns):
    """PostgreSQL: the `cells` JSON parameter unpacked into rows of these columns."""
    record = ", ".join(f"{c} {_CELL_TYPES.get(c, 'varchar')}" for c in columns)
    return text(f"json_to_recordset(CAST(:cells AS json)) AS cell({record})")


@functools.lru_cache(maxsize=1)
def _read_row_values():
    """The cells' read on PostgreSQL: their keys as one JSON parameter unpacked into rows,
    matched on the primary key. psycopg parses a statement's text once and caches it only
    for at most 50 parameters; nine cells of seven key columns each took a parse per report."""
    table = MetricRollup.__table__
    wanted = select(text("*")).select_from(_cells_parameter(KEY))
    return select(*(table.c[k] for k in KEY), *(table.c[c] for c in COUNTERS), table.c.histogram
                  ).where(tuple_(*(table.c[k] for k in KEY)).in_(wanted.scalar_subquery()))


def _add_counters(statement):
    table = MetricRollup.__table__
    return statement.on_conflict_do_update(
        index_elements=[table.c[k] for k in KEY],
        set_={c: table.c[c] + statement.excluded[c] for c in COUNTERS})


@functools.lru_cache(maxsize=1)
def _upsert_postgresql():
    """New cells inserted, existing ones' counters added to (histograms untouched), with the
    cells as one JSON parameter (see _read_row_values)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    cells = select(*(text(f"cell.{c}") for c in _CELL_COLUMNS), text("''::bytea")).select_from(
        _cells_parameter(_CELL_COLUMNS))
    table = MetricRollup.__table__
    return _add_counters(pg_insert(table).from_select([*_CELL_COLUMNS, "histogram"], cells))


@functools.lru_cache(maxsize=1)
def _upsert_sqlite():
    """One cell inserted, or its counters added to; run once per cell (executemany)."""
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    table = MetricRollup.__table__
    return _add_counters(sqlite_insert(table).values(
        {**{c: bindparam(c) for c in _CELL_COLUMNS}, "histogram": b""}))


@functools.lru_cache(maxsize=1)
def _insert():
    return insert(MetricRollup.__table__)


def record(session: Session, incident: Incident, event: IncidentEvent) -> None:
    """Move the incident's fact by one event (called by events.append); its rollup cells
    move once per transaction, at commit, however many events the transaction appended."""
    pending = session.info.setdefault("metrics_pending", {})
    if incident.id in pending:
        fact = pending[incident.id][1]
    else:
        # A new incident has no fact yet: no need to ask the database.
        fact = None if event.type == "reported" else session.get(MetricFact, incident.id)
        before = contribution(fact) if fact is not None else None
        if fact is None:
            fact = MetricFact(incident_id=incident.id, resolved_ever=False)
            session.add(fact)
        pending[incident.id] = (before, fact)
    update_fact(fact, incident, metrics_tz())


@sa_event.listens_for(Session, "before_commit")
def _move_pending(session: Session) -> None:
    """Take each touched incident's old contribution out of its cells and put the new one in."""
    pending = session.info.pop("metrics_pending", None)
    if not pending:
        return
    parts = []
    for before, fact in pending.values():
        after = contribution(fact)
        if before != after:
            parts += [(part, sign) for part, sign in ((before, -1), (after, 1)) if part is not None]
    if parts:
        _move(session, parts)


@sa_event.listens_for(Session, "after_soft_rollback")
def _forget_pending(session: Session, _previous) -> None:
    session.info.pop("metrics_pending", None)


def rollup_rows(facts: Iterable[Any]) -> list[dict[str, Any]]:
    """The rollup cells of a set of facts, summed in memory (rebuilds and the benchmark)."""
    sums: dict[tuple, list[int]] = {}
    chains: dict[tuple, tuple[str, str, str]] = {}
    hists: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for fact in facts:
        part = contribution(fact)
        if part is None:
            continue
        for key in cells(part):
            total = sums.get(key)
            if total is None:
                sums[key] = list(part.counters)
                chains[key] = part.chain
            else:
                for k, value in enumerate(part.counters):
                    total[k] += value
            hist = hists[key]
            for index in part.histogram:
                hist[index] += 1
    return [{**dict(zip(KEY, key)), "community_code": chains[key][0],
             "street_code": chains[key][1], "district_code": chains[key][2],
             "histogram": histogram.encode(hists[key]), **dict(zip(COUNTERS, total))}
            for key, total in sums.items()]


def fact_row(fact: Any) -> dict[str, Any]:
    return {column.key: getattr(fact, column.key) for column in MetricFact.__table__.columns}


def replay(events: Iterable[IncidentEvent], tz: tzinfo) -> list[MetricFact]:
    """The facts the event path produces for these events (ordered by incident, then seq)."""
    from dispatch.incidents.events import apply

    facts = []
    for incident_id, timeline in groupby(events, key=lambda e: e.incident_id):
        incident, fact = Incident(id=incident_id), MetricFact(incident_id=incident_id, resolved_ever=False)
        for event in timeline:
            apply(incident, event)
            update_fact(fact, incident, tz)
        facts.append(fact)
    return facts


def rebuild(session: Session, tz: tzinfo | None = None) -> int:
    """Recompute every fact and rollup from the event log; returns how many incidents."""
    events = session.scalars(select(IncidentEvent).order_by(IncidentEvent.incident_id, IncidentEvent.seq))
    facts = replay(events, tz or metrics_tz())
    session.execute(delete(MetricRollup))
    session.execute(delete(MetricFact))
    if facts:
        session.execute(insert(MetricFact), [fact_row(f) for f in facts])
        session.execute(insert(MetricRollup), rollup_rows(facts))
    return len(facts)
