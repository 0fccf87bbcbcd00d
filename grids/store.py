"""Tables of the area tree, portable across SQLite and PostgreSQL.

Geometries are stored as WKB in EPSG:4326 with their bounding box in plain float
columns, so a bbox filter is an ordinary indexed range query on either database and
no spatial extension is needed. Point lookups never hit these tables: they run on the
in-memory index (grids.index), rebuilt whenever `area_revision` moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from grids.index import AreaIndex

# Constraint names fixed so Alembic migrations name the same things on every database.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator):
    """An aware UTC datetime on every database (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base shared by every griddispatch table (one MetaData, one migration history)."""

    metadata = metadata


class Area(Base):
    """One node of the tree: district, street, community, grid, building or unit."""

    __tablename__ = "areas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16), index=True)
    parent_code: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("areas.code"), index=True
    )
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    geom_wkb: Mapped[bytes] = mapped_column(LargeBinary)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_areas_bbox", "level", "min_lon", "max_lon", "min_lat", "max_lat"),)

    @property
    def geometry(self) -> shapely.Geometry:
        return shapely.from_wkb(self.geom_wkb)


class AreaRevision(Base):
    """A single counter bumped by every change to the areas, so each process knows when to
    rebuild its in-memory index (the CLI, another server worker and the SLA worker all
    write to the same database)."""

    __tablename__ = "area_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


@dataclass
class NewArea:
    """An area ready to be written: validated, in EPSG:4326."""

    code: str
    name: str
    level: str
    parent_code: str | None
    geometry: shapely.Geometry
    properties: dict[str, Any] = field(default_factory=dict)


def current_revision(session: Session) -> int:
    """The area revision now committed (0 for a new database)."""
    return session.scalar(select(AreaRevision.revision).where(AreaRevision.id == 1)) or 0


def bump_revision(session: Session) -> None:
    """Mark the areas as changed, inside the caller's transaction."""
    changed = session.execute(
        update(AreaRevision).where(AreaRevision.id == 1).values(revision=AreaRevision.revision + 1)
    ).rowcount
    if not changed:
        session.execute(insert(AreaRevision).values(id=1, revision=1))


def _no_areas(session: Session) -> bool:
    return session.scalar(select(Area.id).limit(1)) is None


def existing_codes(session: Session, codes: Iterable[str]) -> set[str]:
    """Which of these codes are already stored."""
    wanted = list(dict.fromkeys(codes))
    found: set[str] = set()
    if _no_areas(session):  # the first import into a new database asks nothing more
        return found
    # Chunked so a million-code import never builds one enormous IN list.
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        found.update(session.scalars(select(Area.code).where(Area.code.in_(chunk))))
    return found


def areas_by_code(session: Session, codes: Iterable[str]) -> dict[str, Area]:
    """Stored areas for these codes (missing codes are simply absent)."""
    wanted = list(dict.fromkeys(codes))
    found: dict[str, Area] = {}
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        for area in session.scalars(select(Area).where(Area.code.in_(chunk))):
            found[area.code] = area
    return found


def add_areas(
    session: Session, areas: Sequence[NewArea], *, batch_size: int = 20000, progress=None
) -> None:
    """Insert areas, parents before children, inside the caller's transaction."""
    now = datetime.now(UTC)
    geoms = np.array([a.geometry for a in areas], dtype=object)
    wkbs = shapely.to_wkb(geoms) if len(areas) else []
    bounds = (shapely.bounds(geoms) if len(areas) else np.empty((0, 4))).tolist()
    insert_rows = _area_inserter(session, now)
    for start in range(0, len(areas), batch_size):
        insert_rows([
            (a.code, a.name, a.level, a.parent_code, a.properties, wkbs[i], *bounds[i])
            for i, a in enumerate(areas[start : start + batch_size], start)
        ])
        if progress is not None:
            progress(min(batch_size, len(areas) - start))
    if areas:
        bump_revision(session)


_AREA_COLUMNS = ("code", "name", "level", "parent_code", "properties", "geom_wkb",
                 "min_lon", "min_lat", "max_lon", "max_lat")


def _area_inserter(session: Session, now: datetime):
    """A function inserting rows of _AREA_COLUMNS values straight through the driver.

    A million-area import spent most of its time in SQLAlchemy turning each row's
    parameters into driver values one by one. Here the statement is compiled once, each
    column's bind processor (JSON, binary) is looked up once, and the driver's
    executemany gets the finished rows.
    """
    connection = session.connection()
    dialect = connection.dialect
    table = Area.__table__
    keys = [*_AREA_COLUMNS, "updated_at"]
    compiled = table.insert().compile(dialect=dialect, column_keys=keys)
    steps = []
    for k, name in enumerate(_AREA_COLUMNS):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            steps.append((k, _skip_empty(process) if name == "properties" else process))
    stamp = table.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
    updated_at = stamp(now) if stamp else now
    if compiled.positional:
        order = [keys.index(key) for key in compiled.positiontup]
        as_given = order == list(range(len(keys)))

        def finish(values: list):
            return tuple(values) if as_given else tuple(values[i] for i in order)
    else:
        def finish(values: list):
            return dict(zip(keys, values))

    def insert_rows(rows: list[tuple]) -> None:
        finished = []
        for row in rows:
            values = [*row, updated_at]
            for k, process in steps:
                values[k] = process(values[k])
            finished.append(finish(values))
        connection.exec_driver_sql(compiled.string, finished)

    return insert_rows


def _skip_empty(process):
    """Most areas have no properties: serialise the empty dict once."""
    empty = process({})
    return lambda value: process(value) if value else empty


def load_index(session: Session) -> AreaIndex:
    """Build the in-memory locate index from every stored area."""
    rows = session.execute(
        select(Area.code, Area.level, Area.parent_code, Area.geom_wkb)
    ).all()
    if not rows:
        return AreaIndex.from_arrays([], [], [], np.array([], dtype=object))
    codes, levels, parents, wkbs = zip(*rows)
    geometries = shapely.from_wkb(np.array(wkbs, dtype=object))
    return AreaIndex.from_arrays(list(codes), list(levels), list(parents), geometries)


def count_by_level(session: Session) -> dict[str, int]:
    """How many areas each level holds."""
    return dict(session.execute(select(Area.level, func.count()).group_by(Area.level)).all())


def query_areas(
    session: Session,
    *,
    level: str | None = None,
    parent: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    name_contains: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Area], int]:
    """A page of areas matching the filters, in code order, and the total count."""
    query = select(Area)
    if level:
        query = query.where(Area.level == level)
    if parent:
        query = query.where(Area.parent_code == parent)
    if name_contains:
        query = query.where(Area.name.contains(name_contains, autoescape=True))
    if bbox:
        min_lon, min_lat, max_lon, max_lat = bbox
        query = query.where(
            Area.max_lon >= min_lon,
            Area.min_lon <= max_lon,
            Area.max_lat >= min_lat,
            Area.min_lat <= max_lat,
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Area.code).limit(limit).offset(offset)).all()
    return list(page), total


class IndexCache:
    """The locate index of one process, rebuilt when another process changes the areas.

    Each lookup reads the one-row revision counter (an indexed primary-key read); only
    when it moved is the index rebuilt, so every server worker, the CLI and the SLA
    worker see an import as soon as it commits.
    """

    def __init__(self) -> None:
        self.revision = -1
        self.index: AreaIndex | None = None
        self.names: dict[str, str] = {}
        self._lock = threading.Lock()
        self.on_load: Callable[[], None] | None = None  # called after each (re)build

    def get(self, session: Session, revision: int | None = None) -> AreaIndex:
        """The index for the areas committed now (or as of `revision`, read by the caller)."""
        if revision is None:
            revision = current_revision(session)
        if self.index is None or revision != self.revision:
            with self._lock:
                if self.index is None or revision != self.revision:
                    self.index = load_index(session)
                    self.names = dict(session.execute(select(Area.code, Area.name)).all())
                    self.revision = revision
                    if self.on_load is not None:
                        self.on_load()
        return self.index
