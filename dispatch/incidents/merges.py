"""Chains of merges: a report merged into one that was later merged itself."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.orm import Session

from dispatch.incidents.models import Incident


def originals_of(db: Session, incident: Incident) -> Iterator[Incident]:
    """The incidents a merged report was merged into, in turn: its original, that one's
    original if it was merged too, and so on (an original is never merged into its own
    duplicate, so the chain ends). Nothing for a report that was not merged."""
    while incident.status == "merged" and incident.duplicate_of_id:
        incident = db.get(Incident, incident.duplicate_of_id)
        yield incident


def original_of(db: Session, incident: Incident) -> Incident:
    """The incident a merged report's work goes on in: the last along its chain of merges."""
    *_, last = (incident, *originals_of(db, incident))
    return last
