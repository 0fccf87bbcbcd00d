"""Live push over Socket.IO: scoped rooms, replay after reconnect, fan-out across processes.

Every server process pushes events from the committed event log, in `seq` order, to its
own clients. Writers (any process: a server, the SLA worker, the CLI) hand what they
committed, after the commit, to the local tailer and, when REDIS_URL is set, to every other
process in a Redis message; a tailer reads the log for whatever it was not handed. Because
appends are serialised until commit (events.lock_event_log), seq order is commit order,
so a client that resumes from the last seq it saw gets exactly what it missed. If Redis is
down, tailers fall back to polling the log: pushes slow down but nothing is lost.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, request
from flask_socketio import SocketIO, join_room
from socketio import packet as socketio_packet
from socketio.exceptions import ConnectionRefusedError as Refused
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.failures import Failures
from dispatch.heap import keep_long_lived
from dispatch.incidents.events import (
    event_from_json,
    event_to_json,
    incident_from_json,
    incident_to_json,
    rooms_of,
)
from dispatch.incidents.merges import originals_of
from dispatch.incidents.models import EventRoom, Incident, IncidentEvent
from dispatch.incidents.views import IncidentViews, resident_event, resident_view
from dispatch.live_signins import SignedIn, SignIns, watch_writes
from dispatch.live_signins import run as check_sign_ins
from dispatch.people.auth import token_digest, user_for_token
from dispatch.people.directory import managed_grids
from dispatch.people.models import Crew, User, directory_revision
from dispatch.people.service import areas_watching
from grids.store import IndexCache
from grids.text import unstorable_in_text

log = logging.getLogger(__name__)

socketio = SocketIO()
CHANNEL = "griddispatch:events"
SIGNINS_CHANNEL = "griddispatch:signins"  # a commit moved sign-ins: look at the sockets now
CREWS_CHANNEL = "griddispatch:crews"  # crews whose status a process without live clients changed
REPLAY_LIMIT = 1000  # beyond this a client is told to reload over REST ("resync")
POLL_SECONDS = 0.5  # how often the log is read when no wake-up arrives (Redis down, say)
BATCH = 500
MESSAGE_LIMIT = 256 * 1024  # a larger commit is announced without its events
OFFERED_LIMIT = 5000  # events committed here, waiting to be pushed, kept in memory at most


class Notifier:
    """Tells every live tailer that events were committed: locally and through Redis."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self._redis = None
        self.local_tailers: list[Tailer] = []
        self.local_signins: list[Callable[[], None]] = []  # wake this process's sign-in look
        # Every commit publishes: during a Redis outage that is a failure per report, while
        # the other processes read the log by polling.
        self.publishing = Failures(log, "live push: publishing to Redis")
        # Said in every Redis message, so a process's tailer can skip its own commits,
        # which it was handed directly.
        self.origin = uuid.uuid4().hex

    def _client(self):
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=0.5,
                                               socket_connect_timeout=0.5)
        return self._redis

    def notify(self, written: list | None = None) -> None:
        for tailer in self.local_tailers:
            tailer.offer(written or [], here=True)
        self._publish(CHANNEL, encode_commit(self.origin, written or []))  # else: the tailers poll

    def signins_moved(self) -> None:
        """A commit revoked a token or changed an account or its grids: every process looks
        at its signed-in sockets now, not at its next look."""
        for wake in self.local_signins:
            wake()
        self._publish(SIGNINS_CHANNEL, self.origin)  # else: the next regular look covers it

    def crews_moved(self, crew_ids: list[int]) -> None:
        """Crews whose status this process changed while serving no live clients (the CLI,
        the SLA worker on its own): the servers push them, each to its own clients."""
        # Else (no Redis, or down): the boards see them at their next REST read.
        self._publish(CREWS_CHANNEL, json.dumps({"origin": self.origin, "crews": crew_ids}))

    def _publish(self, channel: str, message: bytes | str) -> None:
        """Publish to the other processes when Redis is set, counting its failures (an outage
        is logged once, then now and then, and when Redis works again)."""
        if not self.redis_url:
            return
        try:
            self._client().publish(channel, message)
        except Exception as exc:
            self.publishing.failed(exc)
        else:
            self.publishing.succeeded()

    def watch(self, sessions) -> None:
        """Notify after each commit that appended incident events or moved sign-ins."""
        watch_writes(sessions)

        @sa_event.listens_for(sessions, "after_commit")
        def _after_commit(session: Session) -> None:
            written = session.info.pop("events_written", None)
            if session.info.pop("signins_moved", False):
                self.signins_moved()
            if session.info.pop("events_appended", False):
                self.notify(written)
            crews = session.info.pop("crews_changed", {})
            if crews and socketio.server is None:
                self.crews_moved(sorted(crews))
            elif crews:
                now = datetime.now(UTC)
                for crew in crews.values():
                    push_crew(crew, now=now, status_changed=True)

        @sa_event.listens_for(sessions, "after_rollback")
        def _after_rollback(session: Session) -> None:
            session.info.pop("events_appended", None)
            session.info.pop("signins_moved", None)
            session.info.pop("crews_changed", None)


UNREADABLE = "_unreadable_packet"
# Event names python-socketio keeps for itself, which it would still pass, sent by a client as
# an event, to the handler of that name.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "__disconnect_final"})


class ClientPacket(socketio_packet.Packet):
    """Socket.IO packets as this server reads them. A packet no client of ours sends is made
    harmless before python-socketio acts on it: a connect whose auth is unreadable is refused
    (`invalid_packet`), anything else is ignored. Unchecked, a frame of bad or too deeply
    nested JSON, or an event that is not [name, ...], logged a traceback and left the client
    waiting; and an event named "connect" or "disconnect" ran those handlers again, joining
    the rooms of another token or ending the sign-in checks of a socket that stayed."""

    def __init__(self, *args, encoded_packet=None, **kwargs) -> None:
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)
        if encoded_packet is not None and not encoded_packet:
            # An empty frame ("4" on the wire) is never decoded: it stood as an event with
            # no data at all, and python-socketio logged a traceback for each one.
            self.packet_type, self.data, self.id = socketio_packet.EVENT, [UNREADABLE], None

    def decode(self, encoded_packet):
        try:
            attachments = super().decode(encoded_packet)
            problem = self._problem()
        except (ValueError, TypeError, IndexError, RecursionError):  # bad JSON is a ValueError
            attachments, problem = 0, "not a Socket.IO packet this server reads"
        if problem is None:
            return attachments
        if self.packet_type == socketio_packet.CONNECT:
            self.data = {UNREADABLE: problem}
        else:  # an event nobody handles
            self.packet_type, self.data, self.id = socketio_packet.EVENT, [UNREADABLE], None
        return 0

    def _problem(self) -> str | None:
        kind, data = self.packet_type, self.data
        if kind == socketio_packet.CONNECT:
            return None if data is None or isinstance(data, dict) else "the auth must be an object"
        if kind == socketio_packet.EVENT:
            if isinstance(data, list) and data and isinstance(data[0], str) and data[0] not in RESERVED_EVENTS:
                return None
            return "an event must be [name, ...] with a name of its own"
        if kind in (socketio_packet.DISCONNECT, socketio_packet.ACK):
            return None
        return "this server reads no binary packets, and no connect errors from clients"


def refuse(code: str, message: str) -> Refused:
    """A refused connection; the client's connect_error gets {"message", "data": {"code"}}."""
    return Refused(message, {"code": code})


def rooms_for_user(session: Session, user: User) -> set[str]:
    """The rooms a signed-in user may join (SPEC §7); clients never choose their own."""
    if user.role == "admin":
        return {"all"}
    if user.role == "operator":
        return {f"area:{user.scope_area_code}"} if user.scope_area_code else {"all"}
    if user.role == "committee":
        return {f"area:{user.scope_area_code}"} if user.scope_area_code else set()
    if user.role == "grid_manager":
        return {f"area:{code}" for code in managed_grids(session, user.id)} | {f"manager:{user.id}"}
    if user.role == "crew":
        return {f"crew:{user.crew_id}"} if user.crew_id else set()
    # A resident: its reports, and each original one was merged into (as `rooms_for_tracking`).
    own = session.scalars(select(Incident).where(Incident.reporter_user_id == user.id)).all()
    return {f"incident:{i.id}" for incident in own for i in (incident, *originals_of(session, incident))}


def rooms_for_tracking(session: Session, token: str) -> set[str]:
    """A reporter follows its incident, and the original if it was merged into one."""
    incident = session.scalar(select(Incident).where(Incident.tracking_hash == token_digest(token)))
    if incident is None:
        raise refuse("unknown_tracking_token", "no report has this tracking token")
    # Each original along the chain: a socket that joined one at its merge (`_pushes`)
    # hears the same after a reconnect.
    return {f"incident:{i.id}" for i in (incident, *originals_of(session, incident))}


class Tailer:
    """Pushes every committed event to its rooms, in seq order. Commits are handed to it
    (`offer`): its own process's right after the commit, other processes' in their Redis
    message. It reads the log for anything not handed over: a commit announced without its
    events, a gap in the seqs, or when nothing was said for a while."""

    def __init__(self, app: Flask) -> None:
        import gevent.event
        import gevent.lock

        self.app = app
        self.db = app.extensions["griddispatch.db"]
        self.wakeup = gevent.event.Event()
        # Held while pushing a batch, and while a new client joins its rooms and gets its
        # replay: so the seam between replay and live has no gap and no duplicate.
        self.gate = gevent.lock.BoundedSemaphore(1)
        with self.db.reading() as session:
            self.cursor = session.scalar(select(IncidentEvent.seq).order_by(IncidentEvent.seq.desc()).limit(1)) or 0
        # Committed and handed over, not yet pushed, by seq: (rooms, event, incident, here).
        self.offered: dict[int, tuple[list[str], IncidentEvent, Incident, bool]] = {}
        self.look_in_log = True  # the log may hold events nobody offered

    def offer(self, written: list, *, here: bool) -> None:
        """Events just committed, with their rooms and incident: by this process (`here`), or
        by another one that said so through Redis."""
        for event, rooms, incident in written:
            self.offered[event.seq] = (rooms, event, incident, here)
        if len(self.offered) > OFFERED_LIMIT:  # far behind: the log has every one of them
            self.offered.clear()
            self.look_in_log = True
        self.wakeup.set()

    def committed_elsewhere(self) -> None:
        """Another process committed events without handing them over: read the log."""
        self.look_in_log = True
        self.wakeup.set()

    def run(self) -> None:
        poll = float(self.app.config.get("LIVE_POLL_SECONDS", POLL_SECONDS))
        failures = Failures(log, "live push: reading the event log")
        while True:
            if not self.wakeup.wait(timeout=poll):
                self.look_in_log = True  # nothing said for a while (Redis down, say): look anyway
            self.wakeup.clear()
            try:
                with self.gate:
                    self.drain()
                failures.succeeded()
            except Exception as exc:  # a database hiccup must not end live push for good
                self.look_in_log = True
                failures.failed(exc)

    def drain(self) -> None:
        """Push every committed event after the cursor, in seq order: what was handed over
        from memory while it follows on from the cursor, the rest from the log. A seq missing
        below an offered one was committed without being handed over, or never will be (its
        transaction rolled back): the offered event is committed, so every seq below it is
        settled (events.lock_event_log), and the log read steps over the hole."""
        while True:
            batch = self._offered_batch()
            if not batch:
                if not (self.look_in_log or self.offered):
                    return
                self.look_in_log = False
                batch = self._read_batch()
                if not batch:
                    return
            # Emitting may wait on a slow socket: no database transaction is open here,
            # so no other greenlet of this process ever waits on a lock held across it.
            for seq, pushes in batch:
                self.cursor = seq  # first: an event is pushed once, even if pushing it fails
                for rooms, body, besides in pushes:
                    try:
                        socketio.server.emit("incident_event", body, to=rooms, namespace="/",
                                             skip_sid=_members(besides) or None, ignore_queue=True)
                    except Exception:  # one client's broken socket must not hold up the rest
                        log.exception("live push: emitting seq %s to %s failed", seq, rooms)

    def _offered_batch(self) -> list[tuple[int, list[tuple[list[str], dict[str, Any]]]]]:
        """The offered events that follow on from the cursor without a gap, ready to push."""
        for seq in [seq for seq in self.offered if seq <= self.cursor]:
            del self.offered[seq]  # already pushed from the log
        run = []
        while self.cursor + len(run) + 1 in self.offered:
            seq = self.cursor + len(run) + 1
            run.append((seq, self.offered.pop(seq)))
        if not run:
            return []
        with self.db.reading() as session:
            # Another process's commit may follow a change of areas or people there.
            payloads = Payloads(session, self.app, current=all(here for _, (*_, here) in run))
            return [(seq, _pushes(payloads, rooms, event, incident))
                    for seq, (rooms, event, incident, _) in run]

    def _read_batch(self) -> list[tuple[int, list[tuple[list[str], dict[str, Any]]]]]:
        """The next events after the cursor from the log, with a payload for each kind of room
        that is listening; those that were handed over come from what was offered.

        Only events some client of this process may see are loaded and serialised: with
        several processes each one reads every commit, and most events have no listener here.
        """
        with self.db.reading() as session:
            seqs = session.scalars(select(IncidentEvent.seq).where(IncidentEvent.seq > self.cursor)
                                   .order_by(IncidentEvent.seq).limit(BATCH)).all()
            mine = {seq: self.offered.pop(seq) for seq in seqs if seq in self.offered}
            listening = _anyone_listening()
            others = [seq for seq in seqs if seq not in mine]
            rooms = _rooms_by_seq(session, others) if others and listening else {}
            joining = _joining(session, others) if others and listening else set()
            rooms = {seq: names for seq, names in rooms.items() if _listening(names) or seq in joining}
            events = session.scalars(select(IncidentEvent).where(IncidentEvent.seq.in_(sorted(rooms)))
                                     .order_by(IncidentEvent.seq)).all() if rooms else []
            by_seq = {event.seq: event for event in events}
            payloads = Payloads(session, self.app) if listening and (events or mine) else None
            batch = []
            for seq in seqs:
                if seq in mine:
                    names, event, incident, _ = mine[seq]
                    pushes = _pushes(payloads, names, event, incident) if payloads else []
                elif seq in by_seq:
                    pushes = _pushes(payloads, rooms[seq], by_seq[seq])
                else:
                    pushes = []
                batch.append((seq, pushes))
            return batch

    def replay(self, sid: str, rooms: set[str], since: int | None, *, resident: bool) -> None:
        """Send this client every event after `since` it may see, then release the gate."""
        try:
            # The socket is this process's own: nothing for the other processes (or Redis).
            for name, body in self._replay_messages(rooms, since, resident=resident):
                socketio.server.emit(name, body, to=sid, namespace="/", ignore_queue=True)
        except Exception:
            log.exception("live push: replay failed for %s", sid)
            socketio.server.emit("resync", {"seq": self.cursor, "reason": "replay failed"}, to=sid,
                                 namespace="/", ignore_queue=True)
        finally:
            self.gate.release()

    def _replay_messages(self, rooms: set[str], since: int | None, *, resident: bool) -> list[tuple[str, dict]]:
        """What a (re)connecting client is sent before live events: replay, or resync."""
        if since is None:
            return [("replayed", {"until": self.cursor, "count": 0})]
        if since > self.cursor:
            return [("resync", {"seq": self.cursor, "reason": "unknown seq"})]
        with self.db.reading() as session:
            seqs = session.scalars(
                select(EventRoom.seq).where(EventRoom.room.in_(sorted(rooms)), EventRoom.seq > since,
                                            EventRoom.seq <= self.cursor)
                .distinct().order_by(EventRoom.seq).limit(REPLAY_LIMIT + 1)
            ).all()
            if len(seqs) > REPLAY_LIMIT:
                return [("resync", {"seq": self.cursor, "reason": "too many events missed"})]
            payloads = Payloads(session, self.app)
            events = session.scalars(select(IncidentEvent).where(IncidentEvent.seq.in_(seqs))
                                     .order_by(IncidentEvent.seq)).all()
            messages = [("incident_event", payloads.resident(e) if resident else payloads.replayed(e, rooms))
                        for e in events]
        return [*messages, ("replayed", {"until": self.cursor, "count": len(messages)})]


def _pushes(payloads: Payloads, rooms: list[str], event: IncidentEvent,
            incident: Incident | None = None) -> list[tuple[list[str], dict[str, Any]]]:
    """What to push of one event, in seq order as the batch is made ready (under the gate)."""
    # Who follows an incident other than through its rooms, as a reconnect would put them:
    # a duplicate's reporters follow the original from its merge on (`rooms_for_tracking`),
    # a resident account a report it files while connected (`rooms_for_user`). They join
    # before this event, and any later one, is pushed.
    if event.type == "merged":
        _join_all(f"incident:{event.incident_id}", f"incident:{event.data['duplicate_of_id']}")
    elif event.type == "reported" and event.data.get("reporter_user_id"):
        _join_all(f"reporter:{event.data['reporter_user_id']}", f"incident:{event.incident_id}")
    return payloads.pushes(_listening(rooms), event, incident)


def _joining(session: Session, seqs: list[int]) -> set[int]:
    """Of these seqs, the events of incidents whose room a client here joins within them: a
    report a resident account connected here files, the original a followed report is merged
    into (`_pushes` joins them). Until then those rooms have nobody in them here, so their
    events would be passed over as unheard (found by a live audit: filed through another
    process without Redis, nothing of a resident's report was pushed to it)."""
    followed = {str(room) for room, clients in _rooms_here().items()
                if clients and str(room).startswith(("reporter:", "incident:"))}
    if not followed:
        return set()
    joined = set()
    for incident_id, type_, data in session.execute(  # in seq order: a chain of merges is followed
            select(IncidentEvent.incident_id, IncidentEvent.type, IncidentEvent.data)
            .where(IncidentEvent.seq.in_(seqs), IncidentEvent.type.in_(("reported", "merged")))
            .order_by(IncidentEvent.seq)):
        if type_ == "reported" and f"reporter:{data.get('reporter_user_id')}" in followed:
            joined.add(incident_id)
            followed.add(f"incident:{incident_id}")
        elif type_ == "merged" and f"incident:{incident_id}" in followed:
            joined.add(data["duplicate_of_id"])
            followed.add(f"incident:{data['duplicate_of_id']}")
    if not joined:
        return set()
    return set(session.scalars(select(IncidentEvent.seq).where(
        IncidentEvent.seq.in_(seqs), IncidentEvent.incident_id.in_(joined))))


def reporter_rooms(signed_in: SignedIn | None, resident: bool) -> set[str]:
    """A resident account's own room: nothing is pushed to it, it only finds its sockets."""
    return {f"reporter:{signed_in.user_id}"} if signed_in is not None and resident else set()


def _members(rooms: list[str]) -> list[str]:
    """This process's sockets in any of these rooms."""
    if not rooms:
        return []
    manager = socketio.server.manager
    return list({sid for room in rooms for sid, _eio_sid in manager.get_participants("/", room)})


def _join_all(members_of: str, room: str) -> None:
    """This process's sockets in `members_of` join `room` too."""
    for sid, _eio_sid in list(socketio.server.manager.get_participants("/", members_of)):
        socketio.server.enter_room(sid, room, namespace="/")


def _rooms_here() -> dict:
    """Room → its clients in this process (none where Socket.IO is not served)."""
    return socketio.server.manager.rooms.get("/", {}) if socketio.server else {}


def _anyone_listening() -> bool:
    return any(_rooms_here().values())


def _listening(rooms) -> list[str]:
    """The rooms that have a client connected to this process: nobody else needs a payload."""
    namespace = _rooms_here()
    return [room for room in rooms if namespace.get(room)]


def _rooms_by_seq(session: Session, seqs: list[int]) -> dict[int, list[str]]:
    rooms: dict[int, list[str]] = {}
    for seq, room in session.execute(select(EventRoom.seq, EventRoom.room).where(EventRoom.seq.in_(seqs))):
        rooms.setdefault(seq, []).append(room)
    return rooms


def _split(rooms) -> tuple[list[str], list[str]]:
    staff = [r for r in rooms if not r.startswith("incident:")]
    residents = [r for r in rooms if r.startswith("incident:")]
    return staff, residents


class Payloads:
    """What is pushed: the event and the incident's current projection, for staff or a reporter.

    Phones are masked in every push; the assigned manager reads the whole number over REST.
    An incident's view is built once per batch, however many of its events the batch holds.
    Staff who could see the incident before a change but not now (the old grid of a
    reassignment, the old crew of a redispatch) get `gone`: that it left them, not where it
    went, who has it now or how it stands, which REST no longer shows them either.
    """

    def __init__(self, session: Session, app: Flask, *, current: bool = False) -> None:
        """`current`: what is pushed was just committed by this process, whose request or
        tick checked the area index and roster then; they need not be checked again."""
        self.session = session
        index = app.extensions["griddispatch.index"]
        rosters = app.extensions["griddispatch.roster"]
        if not current or index.index is None:
            index.get(session)
        roster = rosters.roster if current and rosters.roster is not None else rosters.get(session)
        self.views = IncidentViews(session, None, index.names, roster)
        self._incidents: dict[tuple[int, bool], dict[str, Any]] = {}

    def pushes(self, rooms: list[str], event: IncidentEvent, incident: Incident | None = None
               ) -> list[tuple[list[str], dict[str, Any], list[str]]]:
        """(rooms, payload, rooms whose clients it skips) for the staff rooms that see the
        incident now, the staff rooms it has just left, and the reporters' rooms among `rooms`."""
        incident = incident or self.session.get(Incident, event.incident_id)
        staff, residents = _split(rooms)
        seeing = rooms_of(incident)
        still = [room for room in staff if room in seeing]
        left = [room for room in staff if room not in seeing]
        out = []
        if still:
            out.append((still, self.staff(event, incident), []))
        if left:  # a client in a room that still sees it gets the full push only
            out.append((left, self.gone(event, incident), still))
        if residents:
            out.append((residents, self.resident(event, incident), []))
        return out

    def _incident(self, incident: Incident, *, resident: bool) -> dict[str, Any]:
        key = (incident.id, resident)
        if key not in self._incidents:
            self._incidents[key] = (resident_view(self.views, incident) if resident
                                    else self.views.incident(incident))
        return self._incidents[key]

    def staff(self, event: IncidentEvent, incident: Incident | None = None) -> dict[str, Any]:
        incident = incident or self.session.get(Incident, event.incident_id)
        body = self.views.event(event, incident)
        body["incident"] = self._incident(incident, resident=False)
        return body

    def gone(self, event: IncidentEvent, incident: Incident) -> dict[str, Any]:
        body = self.views.event(event, incident)
        return {**{key: body[key] for key in ("seq", "incident_id", "public_id", "type", "at", "version")},
                "actor": {"role": body["actor"]["role"]}, "data": {},
                "incident": {"id": incident.id, "public_id": incident.public_id,
                             "version": incident.version, "in_scope": False}}

    def replayed(self, event: IncidentEvent, rooms: set[str]) -> dict[str, Any]:
        """A staff client's replay: the event as pushed, or `gone` if the incident has left
        every room the client is in since."""
        incident = self.session.get(Incident, event.incident_id)
        return self.staff(event, incident) if rooms & rooms_of(incident) else self.gone(event, incident)

    def resident(self, event: IncidentEvent, incident: Incident | None = None) -> dict[str, Any]:
        incident = incident or self.session.get(Incident, event.incident_id)
        body = resident_event(self.views.event(event, incident))
        body["incident"] = self._incident(incident, resident=True)
        return body


def encode_commit(origin: str, written: list) -> bytes:
    """A commit as announced through Redis: who made it, and its events with their rooms and
    incident, so other processes push them without reading the log (a large commit is
    announced without them: they read it)."""
    incidents = {str(incident.id): incident_to_json(incident) for _, _, incident in written}
    events = [{**event_to_json(event), "rooms": rooms} for event, rooms, _ in written]
    body = json.dumps({"origin": origin, "incidents": incidents, "events": events},
                      ensure_ascii=False).encode()
    return body if len(body) <= MESSAGE_LIMIT else json.dumps({"origin": origin}).encode()


def decode_commit(message: bytes) -> tuple[str | None, list]:
    """(origin, [(event, rooms, incident)]) of a commit announced through Redis; no events
    when the message carries none (or is not one of ours)."""
    try:
        body = json.loads(message)
        incidents = {int(key): incident_from_json(columns)
                     for key, columns in body.get("incidents", {}).items()}
        written = [(event_from_json({k: v for k, v in fields.items() if k != "rooms"}),
                    fields["rooms"], incidents[fields["incident_id"]]) for fields in body.get("events", [])]
        return body.get("origin"), written
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, []


def _listen_to_redis(redis_url: str, tailer: Tailer, origin: str,
                     running: Callable[[], bool] = lambda: True,
                     signins_moved: Callable[[], None] = lambda: None,
                     crews_moved: Callable[[list[int]], None] = lambda ids: None) -> None:
    """Hand the tailer every commit another process announces through Redis (its own it was
    handed directly), or send it to the log when the message does not carry the events;
    reconnect with back-off. A server listens for its whole life; `running` lets a test end
    the loop (it is asked after each loss of the connection)."""
    import gevent
    import redis

    delay = 0.5
    failures = Failures(log, "live push: listening to Redis")
    while running():
        try:
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANNEL, SIGNINS_CHANNEL, CREWS_CHANNEL)
            delay = 0.5
            failures.succeeded()
            tailer.committed_elsewhere()  # anything committed while we were away is read now
            for message in pubsub.listen():
                if not message or message.get("type") != "message":
                    continue
                channel = message.get("channel")
                channel = channel.decode() if isinstance(channel, bytes) else channel
                if channel == SIGNINS_CHANNEL:
                    if message["data"] not in (origin, origin.encode()):
                        signins_moved()
                    continue
                if channel == CREWS_CHANNEL:
                    crew_ids = _crew_ids(message["data"], origin)
                    if crew_ids:
                        crews_moved(crew_ids)
                    continue
                sender, written = decode_commit(message["data"])
                if sender == origin:
                    continue
                if written:
                    tailer.offer(written, here=False)
                else:
                    tailer.committed_elsewhere()
        except Exception as exc:
            failures.failed(exc)
            gevent.sleep(delay)
            delay = min(delay * 2, 5.0)


def _crew_ids(message: bytes, origin: str) -> list[int]:
    """The crews another process says it changed; none for our own message or a bad one."""
    try:
        body = json.loads(message)
        if body.get("origin") == origin:
            return []
        return [crew_id for crew_id in body.get("crews", []) if isinstance(crew_id, int)]
    except (ValueError, TypeError, AttributeError):
        return []


def _push_crews_read(app: Flask, crew_ids: list[int]) -> None:
    """Push these crews as they stand now to this process's clients only (every server got
    the message: through the queue, each client would get it once per server)."""
    try:
        with app.extensions["griddispatch.db"].reading() as session:
            crews = session.scalars(select(Crew).where(Crew.id.in_(crew_ids))).all()
            now = datetime.now(UTC)
            for crew in crews:
                push_crew(crew, now=now, status_changed=True, here_only=True)
    except Exception:  # a database hiccup: the boards see it at their next read
        log.exception("live push: pushing crews %s changed elsewhere failed", crew_ids)


def attach(app: Flask) -> SocketIO:
    """Serve Socket.IO on this app (gevent), with its log tailer and, if configured, Redis."""
    import gevent
    import gevent.event

    redis_url = app.config.get("REDIS_URL")
    notifier = app.extensions["griddispatch.notifier"]
    queue = {}
    if redis_url:
        import socketio as python_socketio

        # Crew pushes reach the other processes through python-socketio's Redis manager.
        # Built here rather than from `message_queue` to bound its Redis calls as ours are,
        # and to log through the notifier's run of failures: the manager itself logs two
        # errors for every emit it cannot publish (a Redis outage would flood the log).
        queue["client_manager"] = python_socketio.RedisManager(
            redis_url, channel="flask-socketio", logger=_QueueLog(notifier.publishing),
            redis_options={"socket_timeout": 0.5, "socket_connect_timeout": 0.5})
    socketio.init_app(app, async_mode="gevent", **queue, serializer=ClientPacket,
                      cors_allowed_origins=app.config.get("LIVE_CORS_ORIGINS", []),
                      logger=False, engineio_logger=False)
    global _areas, _db
    _areas = app.extensions["griddispatch.index"]
    _db = app.extensions["griddispatch.db"]
    with app.extensions["griddispatch.db"].reading() as session:
        _areas.get(session)  # loaded now: a crew's push may come before any report needs it
    tailer = Tailer(app)
    app.extensions["griddispatch.tailer"] = tailer
    notifier.local_tailers.append(tailer)
    signins = SignIns(rooms_for_user)
    _register_handlers(app, tailer, signins)
    gevent.spawn(tailer.run)
    look_now = gevent.event.Event()
    notifier.local_signins.append(look_now.set)
    gevent.spawn(check_sign_ins, signins, db=app.extensions["griddispatch.db"],
                 clock=app.extensions["griddispatch.clock"], end=_end_session,
                 every=float(app.config["LIVE_SIGNIN_CHECK_SECONDS"]), wakeup=look_now)
    if redis_url:
        gevent.spawn(_listen_to_redis, redis_url, tailer, notifier.origin, signins_moved=look_now.set,
                     crews_moved=lambda ids: gevent.spawn(_push_crews_read, app, ids))
    keep_long_lived(app)  # a server lives long: its index and caches leave the collector's way
    return socketio


class _QueueLog(logging.LoggerAdapter):
    """The log of python-socketio's Redis manager: its failures to publish are counted in the
    notifier's run of publishing failures (logged once, then now and then, and when Redis
    works again); everything else it says is passed on."""

    def __init__(self, publishing: Failures) -> None:
        super().__init__(logging.getLogger("socketio.server"), {})
        self.publishing = publishing

    def error(self, msg, *args, **kwargs) -> None:
        if str(msg).startswith("Cannot publish to redis"):
            if "giving up" in str(msg):  # after its retry: one failure per emit
                reason = (kwargs.get("extra") or {}).get("redis_exception") or str(msg)
                self.publishing.failed(ConnectionError(reason))
            return
        super().error(msg, *args, **kwargs)


def _since(auth: dict) -> int | None:
    since = auth.get("since")
    if since is None:
        return None
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise refuse("invalid_since", "since must be a seq (an integer ≥ 0)")
    return since


def _auth_text(auth: dict, key: str) -> str:
    """A token of the connect's auth as text; refused when no token could be it (a NUL or a
    lone surrogate cannot be hashed, and it must not leave the client waiting)."""
    value = auth[key]
    if not isinstance(value, str):
        raise refuse("invalid_token", f"{key} must be a string")
    found = unstorable_in_text(value, key)
    if found is not None:
        raise refuse("invalid_token", f"{key} {found[1]}")
    return value


def _end_session(sid: str, message: str, data: dict) -> None:
    """Tell one of this process's sockets why, then disconnect it (not through Redis: the
    socket is here, and the message must reach it while Redis is down too)."""
    socketio.server.emit(message, data, to=sid, namespace="/", ignore_queue=True)
    socketio.server.disconnect(sid, namespace="/", ignore_queue=True)


def _register_handlers(app: Flask, tailer: Tailer, signins: SignIns) -> None:
    db = app.extensions["griddispatch.db"]
    clock = app.extensions["griddispatch.clock"]

    @socketio.on("connect")
    def connect(auth):
        auth = auth if isinstance(auth, dict) else {}
        if UNREADABLE in auth:
            raise refuse("invalid_packet", auth[UNREADABLE])
        since = _since(auth)
        with db.reading() as session:
            if auth.get("token"):
                from dispatch.errors import ApiError

                try:
                    user, token = user_for_token(session, token=_auth_text(auth, "token"), now=clock.now())
                except ApiError as exc:
                    raise refuse(exc.code, exc.message) from None
                revision = directory_revision(session)  # read first: a move after it is seen
                rooms, resident = rooms_for_user(session, user), user.role == "resident"
                signed_in = SignedIn(token.token_hash, user.id, frozenset(rooms), revision, resident)
            elif auth.get("tracking_token"):
                rooms, resident = rooms_for_tracking(session, _auth_text(auth, "tracking_token")), True
                signed_in = None
            else:
                raise refuse("authentication_required", "connect with auth {token} or {tracking_token}")
        tailer.gate.acquire()
        try:
            # Crew pushes only, never replayed: the serving rooms stay out of the replay; and a
            # resident account's own room, where the reports it files later find it.
            for room in rooms | serving_rooms(rooms) | reporter_rooms(signed_in, resident):
                join_room(room)
        except BaseException:
            tailer.gate.release()
            raise
        # After this handler returns the connection is accepted; the replay follows it and
        # releases the gate, so live events for these rooms wait until it is done.
        socketio.start_background_task(tailer.replay, request.sid, rooms, since, resident=resident)
        if signed_in is not None:  # once in: a refused connect has no disconnect to forget it by
            signins.joined(request.sid, signed_in)
        return True

    @socketio.on("disconnect")
    def disconnect(*_reason):
        signins.left(request.sid)


CREW_PUSH_SECONDS = 10.0  # a crew's position is pushed at most this often; status changes always
_last_position_push: dict[int, float] = {}
_held_positions: set[int] = set()  # crews with a position held back by the throttle, to push at its end
_areas: IndexCache | None = None  # this server's area index, for the rooms above a service area
_db = None  # this server's database, for a crew pushed after its throttle's window


def crew_rooms(crew) -> set[str]:
    """Everyone who may watch a crew: its members, admins, the rooms of the areas at or above
    its service areas (a district's board sees a crew that serves one of its streets, as it
    sees that street's incidents) and the `serving:` room of each service area, which the
    clients of every area under it join (a street's board and a grid's manager see a
    district-wide crew). `service.serves`, behind GET /crews?area=, is the same rule."""
    watching = areas_watching(crew, _areas.index.chain_of)  # attach() loaded the index
    return ({"all", f"crew:{crew.id}"} | {f"area:{code}" for code in watching}
            | {f"serving:{code}" for code in crew.service_areas or ()})


def serving_rooms(rooms: set[str]) -> set[str]:
    """The `serving:` rooms of the areas above each of these area rooms: there a client
    hears of the crews whose service area covers its own from above."""
    above: set[str] = set()
    for room in rooms:
        if room.startswith("area:"):
            code = room.removeprefix("area:")
            try:
                chain = _areas.index.chain_of(code)
            except KeyError:  # an area no longer on the map
                continue
            above.update(f"serving:{c}" for c in chain.values() if c and c != code)
    return above


def heard_in(crew) -> set[str]:
    """The rooms a crew's pushes reach now (none in a process without live clients): an
    edit of its service areas tells those it leaves too (`push_crew(also=...)`)."""
    return crew_rooms(crew) if socketio.server is not None else set()


def push_crew(crew, *, now, status_changed: bool, also: set[str] = frozenset(), here_only: bool = False) -> bool:
    """Push a crew's status and position to the rooms that may see it, and to rooms `also`
    (through Redis if set, unless `here_only`)."""
    if socketio.server is None:
        return False  # this process serves no live clients (the CLI, a test client)
    if not status_changed:
        last = _last_position_push.get(crew.id, float("-inf"))
        wait = last + CREW_PUSH_SECONDS - now.timestamp()
        if wait > 0:
            # Held back, not dropped: the crew is pushed as it then stands when the window
            # ends (found by a live audit: a crew that stopped moving showed where it had been).
            if crew.id not in _held_positions:
                _held_positions.add(crew.id)
                socketio.start_background_task(_push_held, crew.id, wait)
            return False
        _last_position_push[crew.id] = now.timestamp()
    _held_positions.discard(crew.id)  # this push is newer than any held back
    body = {"crew_id": crew.id, "name": crew.name, "status": crew.status,
            "lon": crew.lon, "lat": crew.lat, "at": now.isoformat()}
    rooms = sorted(crew_rooms(crew) | also)
    if here_only:
        socketio.server.emit("crew", body, to=rooms, namespace="/", ignore_queue=True)
    else:
        socketio.emit("crew", body, to=rooms, namespace="/")
    return True


def _push_held(crew_id: int, wait: float) -> None:
    """Push a crew whose position was held back, if no newer push went out meanwhile: read
    afresh, not as it was held, since another process may have changed its status since."""
    socketio.sleep(min(wait, CREW_PUSH_SECONDS))
    if crew_id not in _held_positions:
        return
    _held_positions.discard(crew_id)
    try:
        with _db.reading() as session:
            crew = session.get(Crew, crew_id)
            if crew is not None and crew.position_at is not None:
                _last_position_push[crew_id] = crew.position_at.timestamp()  # the window starts again
                push_crew(crew, now=crew.position_at, status_changed=True)
    except Exception:  # a database hiccup: the crew's next position is pushed as usual
        log.exception("live push: pushing crew %s's held position failed", crew_id)
