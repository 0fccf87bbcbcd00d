"""The board's tables: response times per phase and rates, per group and time bucket.

Counters and sums come from the rollups. Percentiles are nearest-rank (see histogram):
exact from the facts when the selection holds at most EXACT_LIMIT incidents, otherwise
estimated from the rollups' histograms, and the answer says which.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session

from dispatch.errors import bad_field
from dispatch.incidents.models import Category
from dispatch.metrics import histogram
from dispatch.metrics.models import PHASES, MetricFact, MetricRollup
from dispatch.people import fields
from dispatch.people.directory import managed_grids
from dispatch.people.models import Crew, User
from grids.store import Area

GROUPS = {"grid": "grid_code", "level": "grid_code", "community": "community_code",
          "street": "street_code", "district": "district_code", "crew": "crew_id",
          "manager": "manager_id", "category": "category_code"}
BUCKETS = ("day", "week", "month")
FORMATS = ("json", "csv")
READERS = ("committee", "operator", "admin", "grid_manager")
AREA_COLUMNS = ("grid_code", "community_code", "street_code", "district_code")
EXACT_LIMIT = 10_000
DEFAULT_DAYS = 30
PERCENTS = (50, 90)


@dataclass(frozen=True)
class Query:
    """One table's parameters, checked."""

    group_by: str
    start: date  # local dates, both included
    end: date
    bucket: str | None = None
    area: str | None = None
    category: str | None = None
    phases: tuple[str, ...] = PHASES
    min_sample: int = 5
    format: str = "json"

    @property
    def column(self) -> str:
        return GROUPS[self.group_by]

    @property
    def kind(self) -> str:
        """The kind of rollup cells the table reads (see metrics.models)."""
        return self.group_by if self.group_by in ("crew", "manager") else "area"


def _choice(args: Mapping[str, str], name: str, allowed, default: str | None) -> str | None:
    value = args.get(name) or default
    if value is not None and value not in allowed:
        raise bad_field(name, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _date(args: Mapping[str, str], name: str, default: date) -> date:
    raw = args.get(name)
    if not raw:
        return default
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        raise bad_field(name, f"must be a local date YYYY-MM-DD, got {raw!r}") from None
    return fields.within_years(name, parsed)


def parse_query(args: Mapping[str, str], *, today: date) -> Query:
    """A Query from request arguments; a 400 naming the field for anything wrong."""
    group_by = _choice(args, "group_by", tuple(GROUPS), None)
    if group_by is None:
        raise bad_field("group_by", f"is required: one of {', '.join(GROUPS)}")
    end = _date(args, "to", today)
    start = _date(args, "from", end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise bad_field("from", f"{start} is after to ({end})")
    # Each phase once: a phase asked twice would be summed twice (and a thousand times, more
    # columns than the database can select).
    phases = tuple(dict.fromkeys(p for p in (args.get("phase") or ",".join(PHASES)).split(",") if p))
    for phase in phases:
        if phase not in PHASES:
            raise bad_field("phase", f"must be among {', '.join(PHASES)}, got {phase!r}")
    raw_min = args.get("min_sample") or "5"
    if not (raw_min.isascii() and raw_min.isdigit()) or len(raw_min) > 7 or int(raw_min) > 1_000_000:
        raise bad_field("min_sample", f"must be a whole number up to 1000000, got {raw_min!r}")
    return Query(group_by=group_by, start=start, end=end, bucket=_choice(args, "bucket", BUCKETS, None),
                 area=args.get("area") or None, category=args.get("category") or None,
                 phases=phases or PHASES, min_sample=int(raw_min),
                 format=_choice(args, "format", FORMATS, "json"))


# -- which rows --------------------------------------------------------------------------

def scope(session: Session, user: User, table) -> ColumnElement[bool] | None:
    """The caller's reach (SPEC §7) on a facts or rollups table; None means everything.
    A grid manager's metrics are those of its grids."""
    if user.role in ("admin", "operator") and not user.scope_area_code:
        return None
    if user.role in ("operator", "committee"):
        return in_area(table, user.scope_area_code) if user.scope_area_code else false()
    if user.role == "grid_manager":
        return table.grid_code.in_(managed_grids(session, user.id))
    return false()


def in_area(table, code: str) -> ColumnElement[bool]:
    return or_(*(getattr(table, column) == code for column in AREA_COLUMNS))


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def spans(start: date, end: date, allowed: str = "MWD") -> list[tuple[str, date, date]]:
    """Cover the days start..end with the fewest cells: whole months, then whole ISO weeks,
    then days. Each part is (span, first period, last period), periods being cell starts."""
    if start > end:
        return []
    one = timedelta(days=1)
    if "M" in allowed:
        first = start if start.day == 1 else _next_month(start)
        after = end + one if (end + one).day == 1 else end.replace(day=1)  # after the last whole month
        rest = allowed.replace("M", "")
        if first < after:
            return [*spans(start, first - one, rest), ("M", first, (after - one).replace(day=1)),
                    *spans(after, end, rest)]
        return spans(start, end, rest)
    if "W" in allowed:
        first = start + timedelta(days=(7 - start.weekday()) % 7)
        after = end + one - timedelta(days=(end + one).weekday())  # the Monday after the last whole week
        if first < after:
            return [*spans(start, first - one, "D"), ("W", first, after - timedelta(days=7)),
                    *spans(after, end, "D")]
    return [("D", start, end)]


def periods(query: Query) -> list[ColumnElement[bool]]:
    """One condition per part of the range, each a range of the rollups' primary key."""
    allowed = {"day": "D", "week": "WD", "month": "MD"}.get(query.bucket or "", "MWD")
    return [and_(MetricRollup.kind == query.kind, MetricRollup.span == span,
                 MetricRollup.period.between(first, last))
            for span, first, last in spans(query.start, query.end, allowed)]


def filters(session: Session, user: User, query: Query, table) -> list[ColumnElement[bool]]:
    out = [f for f in (scope(session, user, table),) if f is not None]
    if query.area:
        out.append(in_area(table, query.area))
    if query.category:
        out.append(table.category_code == query.category)
    return out


def bucket_of(day: date, bucket: str | None) -> str | None:
    if bucket == "day":
        return day.isoformat()
    if bucket == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if bucket == "month":
        return day.strftime("%Y-%m")
    return None


# -- sums ------------------------------------------------------------------------------

def _sums(session: Session, user: User, query: Query, names: list[str]) -> dict[tuple, dict[str, int]]:
    """Summed rollup counters per (group, bucket)."""
    group = getattr(MetricRollup, query.column)
    keys = [group] + ([MetricRollup.period] if query.bucket else [])
    where = filters(session, user, query, MetricRollup)
    out: dict[tuple, dict[str, int]] = {}
    for part in periods(query):
        statement = select(*keys, *(func.sum(getattr(MetricRollup, n)) for n in names)).where(
            part, *where).group_by(*keys)
        for row in session.connection().execute(statement):
            key = (row[0], bucket_of(row[1], query.bucket) if query.bucket else None)
            total = out.setdefault(key, dict.fromkeys(names, 0))
            for name, value in zip(names, row[len(keys):]):
                total[name] += int(value or 0)
    return out


def _labels(session: Session, group_by: str, values) -> dict[Any, str | None]:
    values = [v for v in values if v not in ("", 0)]
    if not values:
        return {}
    if group_by == "crew":
        rows = session.execute(select(Crew.id, Crew.name).where(Crew.id.in_(values)))
    elif group_by == "manager":
        rows = session.execute(select(User.id, User.display_name).where(User.id.in_(values)))
    elif group_by == "category":
        rows = session.execute(select(Category.code, Category.name_zh).where(Category.code.in_(values)))
    else:
        rows = session.execute(select(Area.code, Area.name).where(Area.code.in_(values)))
    return dict(rows.all())


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _meta(query: Query, tz_name: str) -> dict[str, Any]:
    return {"group_by": query.group_by, "bucket": query.bucket, "from": query.start.isoformat(),
            "to": query.end.isoformat(), "timezone": tz_name, "area": query.area,
            "category": query.category}


# -- response times --------------------------------------------------------------------

def _exact(session: Session, user: User, query: Query) -> dict[tuple, list[list[int]]]:
    """Sorted durations per (group, bucket) and phase, from the facts."""
    group = getattr(MetricFact, query.column)
    statement = select(group, MetricFact.day, *(getattr(MetricFact, f"{p}_s") for p in query.phases)).where(
        MetricFact.day.between(query.start, query.end), MetricFact.status != "merged",
        *filters(session, user, query, MetricFact))
    out: dict[tuple, list[list[int]]] = {}
    for row in session.connection().execute(statement):
        lists = out.setdefault((row[0], bucket_of(row[1], query.bucket)), [[] for _ in query.phases])
        for values, seconds in zip(lists, row[2:]):
            if seconds is not None:
                values.append(seconds)
    for lists in out.values():
        for values in lists:
            values.sort()
    return out


def _estimated(session: Session, user: User, query: Query, keys: list[tuple]):
    """Dense histograms per (group, bucket): an array (key, phase, bin)."""
    position = {key: k for k, key in enumerate(keys)}
    group = getattr(MetricRollup, query.column)
    where = filters(session, user, query, MetricRollup)
    groups, blobs = [], []
    for part in periods(query):
        if query.bucket:
            rows = session.connection().execute(
                select(group, MetricRollup.period, MetricRollup.histogram).where(part, *where)).all()
            buckets = {period: bucket_of(period, query.bucket) for period in {row[1] for row in rows}}
            groups += [position[(value, buckets[period])] for value, period, _ in rows]
        else:
            rows = session.connection().execute(select(group, MetricRollup.histogram).where(part, *where)).all()
            groups += [position[(value, None)] for value, _ in rows]
        blobs += [row[-1] for row in rows]
    return histogram.dense(groups, blobs, len(keys), len(PHASES))


def response_times(session: Session, user: User, query: Query, *, tz_name: str) -> dict[str, Any]:
    """Count, mean, p50 and p90 (seconds) of each phase per group and bucket."""
    names = ["n"] + [f"{p}_{part}" for p in query.phases for part in ("n", "sum")]
    sums = _sums(session, user, query, names)
    keys = sorted(sums, key=_order)
    exact = sum(s["n"] for s in sums.values()) <= EXACT_LIMIT
    durations = _exact(session, user, query) if exact else None
    dense = None if exact else _estimated(session, user, query, keys)
    labels = _labels(session, query.group_by, {k[0] for k in keys})
    rows = []
    for k, key in enumerate(keys):
        phases = {}
        for p, phase in enumerate(query.phases):
            count, total = sums[key][f"{phase}_n"], sums[key][f"{phase}_sum"]
            if exact:
                values = durations.get(key, [[]] * len(query.phases))[p]
                p50, p90 = (histogram.nearest_rank(values, q) for q in PERCENTS)
            else:
                counts = dense[k, PHASES.index(phase)]
                p50, p90 = (histogram.estimate(counts, q) for q in PERCENTS)
            phases[phase] = {"count": count, "mean_s": round(total / count, 1) if count else None,
                             "p50_s": p50, "p90_s": p90}
        rows.append({"group": key[0], "name": labels.get(key[0]), "bucket": key[1],
                     "count": sums[key]["n"], "phases": phases})
    return {**_meta(query, tz_name), "phases": list(query.phases), "rows": rows, "percentiles": {
        "definition": "nearest rank: the ceil(p*n/100)-th smallest duration",
        "method": "exact" if exact else "histogram",
        "max_relative_error": 0 if exact else round(histogram.MAX_RELATIVE_ERROR, 4)}}


def response_times_csv(table: dict[str, Any]) -> str:
    header = ["group", "name", "bucket", "phase", "count", "mean_s", "p50_s", "p90_s"]
    rows = [[row["group"], row["name"], row["bucket"], phase, *values.values()]
            for row in table["rows"] for phase, values in row["phases"].items()]
    return to_csv(header, rows)


# -- rates -------------------------------------------------------------------------------

RATE_COUNTERS = ["n", "closed", "resolved", "reworked", "rated", "satisfied", "first_fix"] + [
    f"{p}_{part}" for p in PHASES for part in ("due_n", "on_time")]
RATES = ("closure_rate", "rework_rate", "satisfaction", "first_time_fix") + tuple(
    f"on_time_{p}" for p in PHASES)


def rates(session: Session, user: User, query: Query, *, tz_name: str) -> dict[str, Any]:
    """按时处置率 per phase, 结案率, 返工率, 满意率 and first-time fix per group and bucket;
    groups with fewer than min_sample reports are hidden (counted, values null)."""
    sums = _sums(session, user, query, RATE_COUNTERS)
    keys = sorted(sums, key=_order)
    labels = _labels(session, query.group_by, {k[0] for k in keys})
    rows, hidden = [], 0
    for key in keys:
        s = sums[key]
        row = {"group": key[0], "name": labels.get(key[0]), "bucket": key[1], "count": s["n"],
               "hidden": s["n"] < query.min_sample}
        values = {
            "closure_rate": _rate(s["closed"], s["n"]),
            "rework_rate": _rate(s["reworked"], s["resolved"]),
            "satisfaction": _rate(s["satisfied"], s["rated"]),
            "first_time_fix": _rate(s["first_fix"], s["resolved"]),
            **{f"on_time_{p}": _rate(s[f"{p}_on_time"], s[f"{p}_due_n"]) for p in PHASES},
        }
        hidden += row["hidden"]
        rows.append({**row, **(dict.fromkeys(values) if row["hidden"] else values)})
    return {**_meta(query, tz_name), "min_sample": query.min_sample, "hidden": hidden, "rows": rows}


def rates_csv(table: dict[str, Any]) -> str:
    header = ["group", "name", "bucket", "count", "hidden", *RATES]
    return to_csv(header, [[row[c] for c in header] for row in table["rows"]])


# A spreadsheet runs a cell that starts with one of these as a formula: names are data
# (an admin types crew and category names), so such a text cell is kept as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    """CSV for a spreadsheet: a byte-order mark first, so Excel reads the Chinese names as
    UTF-8, and no cell it would run as a formula. Every text cell is quoted: a spreadsheet
    set to split on ";" (the German or French default) would split an unquoted "x;=1+1"
    there and run the rest (found by an SLA audit)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def _order(key: tuple) -> tuple:
    group = key[0] if isinstance(key[0], str) else f"{key[0]:012d}"  # crew and manager ids by number
    return (group, key[1] or "")
