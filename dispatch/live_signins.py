"""Live sessions end when their sign-in does, and follow their user's rooms.

A socket is let in once, when it connects. Without a second look, a tablet whose token was
then revoked (signed out elsewhere, or by an admin) or ran out, or whose account was
disabled, would go on receiving every event of its grids; and a manager moved off a grid
would go on hearing of it. So each server process looks again at its signed-in sockets every
few seconds, in one statement for all of them, whichever process or CLI made the change,
and at once after a commit that revokes a token or changes an account or its grids (in
another process, when it says so through Redis):

- a socket whose sign-in has ended is told why (`signed_out`, with the code a refused
  connect would get) and disconnected;
- a socket whose rooms are no longer its user's (the directory moved: grids, role, scope,
  crew) is told so (`rooms_changed`) and disconnected, to connect again into the rooms it
  now has (a staff account made a resident too). Residents' rooms are their own reports,
  not the directory's, and stay as joined.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.failures import Failures
from dispatch.people.auth import why_refused
from dispatch.people.models import ApiToken, User, directory_revision

log = logging.getLogger(__name__)

# Sockets per step of a look: token hashes per statement, and sockets judged between two
# yields to the pushes. This bounds how long a look holds the pushes up at a time (a few
# ms on 2 cores), however many sockets there are.
CHUNK = 100


@dataclass(frozen=True)
class SignedIn:
    """What a signed-in socket was let in with."""

    token_hash: str
    user_id: int
    rooms: frozenset[str]
    revision: int  # the directory revision its rooms were worked out at
    resident: bool = False  # let in as a resident: its rooms are its own reports


class SignIns:
    """The signed-in sockets of this process, and the look that ends or moves them."""

    def __init__(self, rooms_for: Callable[[Session, User], set[str]]) -> None:
        self.rooms_for = rooms_for
        self.sockets: dict[str, SignedIn] = {}

    def joined(self, sid: str, signed_in: SignedIn) -> None:
        self.sockets[sid] = signed_in

    def left(self, sid: str) -> None:
        self.sockets.pop(sid, None)

    def check(self, session: Session, now, *, pause: Callable[[], None] = lambda: None,
              ) -> list[tuple[str, str, dict]]:
        """(sid, message, {code, message}) for each socket to be told and disconnected.

        `pause` runs between the steps of CHUNK sockets (the server yields to its pushes there)."""
        watched = dict(self.sockets)
        if not watched:
            return []
        revision = directory_revision(session)
        # Columns, not objects: half as long as loading the tokens and users whole.
        found = {}
        hashes = sorted({s.token_hash for s in watched.values()})
        for start in range(0, len(hashes), CHUNK):
            if start:
                pause()
            statement = (select(ApiToken.token_hash, ApiToken.revoked_at, ApiToken.expires_at,
                                User.id.label("user_id"), User.active)
                         .outerjoin(User, User.id == ApiToken.user_id)
                         .where(ApiToken.token_hash.in_(hashes[start:start + CHUNK])))
            found.update((row.token_hash, row) for row in session.execute(statement))
        ended, moved = [], []
        for n, (sid, signed_in) in enumerate(watched.items()):
            if n and not n % CHUNK:
                pause()
            row = found.get(signed_in.token_hash)
            refusal = why_refused(row, row if row is not None and row.user_id is not None else None, now)
            if refusal is not None:
                ended.append((sid, "signed_out", {"code": refusal.code, "message": refusal.message}))
            elif signed_in.revision != revision:
                moved.append((sid, signed_in))
        if moved:
            ended += self._rooms_changed(session, moved, revision)
        return ended

    def _rooms_changed(self, session: Session, moved: list[tuple[str, SignedIn]],
                       revision: int) -> list[tuple[str, str, dict]]:
        """The sockets among `moved` (the directory moved since their rooms were worked out)
        whose rooms are no longer their user's; the others are brought up to `revision`."""
        ids = sorted({signed_in.user_id for _, signed_in in moved})
        users = {user.id: user for user in session.scalars(select(User).where(User.id.in_(ids)))}
        rooms_now: dict[int, set[str]] = {}
        ended = []
        for sid, signed_in in moved:
            user = users.get(signed_in.user_id)
            if user is None:  # gone: the next look signs it out
                continue
            # A resident's rooms are its own reports, joined as it files them, not the
            # directory's. A socket let in as staff is judged whatever the role is now:
            # made a resident, it must lose its staff rooms.
            if signed_in.resident and user.role == "resident":
                continue
            if user.id not in rooms_now:
                rooms_now[user.id] = self.rooms_for(session, user)
            if rooms_now[user.id] != signed_in.rooms:
                ended.append((sid, "rooms_changed", {
                    "code": "rooms_changed", "message": "what this account may see has changed; connect again"}))
            elif sid in self.sockets:
                self.sockets[sid] = replace(signed_in, revision=revision)
        return ended


# Writes that can end a sign-in or change a user's rooms. A commit holding one wakes the look
# at once, in this process and, through Redis, in every other (`dispatch.live.Notifier`).
MOVES_SIGNINS = frozenset({"users", "api_tokens", "grid_assignments"})


def watch_writes(sessions) -> None:
    """Mark a session whose transaction writes what may end a sign-in or move its rooms
    (`session.info["signins_moved"]`): by the ORM, or by an UPDATE or DELETE it executes."""

    @sa_event.listens_for(sessions, "before_flush")
    def _flushed(session: Session, _context, _instances) -> None:
        if any(getattr(obj, "__tablename__", None) in MOVES_SIGNINS for obj in (*session.new, *session.dirty, *session.deleted)
               if not isinstance(obj, ApiToken) or obj not in session.new):  # a new sign-in ends none
            session.info["signins_moved"] = True

    @sa_event.listens_for(sessions, "do_orm_execute")
    def _executed(state) -> None:
        table = getattr(state.statement, "table", None)
        if (state.is_update or state.is_delete or state.is_insert) and getattr(table, "name", None) in MOVES_SIGNINS:
            state.session.info["signins_moved"] = True


def run(signins: SignIns, *, db, clock, end: Callable[[str, str, dict], None], every: float,
        wakeup=None) -> None:
    """Look at the signed-in sockets every `every` seconds, and at once when `wakeup` (a
    gevent Event) is set, for as long as the server runs."""
    import gevent
    import gevent.event

    wakeup = wakeup or gevent.event.Event()
    failures = Failures(log, "live push: checking sign-ins")
    while True:
        wakeup.wait(timeout=every)
        wakeup.clear()
        try:
            with db.reading() as session:
                # A thousand sockets' look takes tens of ms: pushes go on between its statements.
                ended = signins.check(session, clock.now(), pause=lambda: gevent.sleep(0))
        except Exception as exc:  # a database hiccup must not stop the checks for good
            failures.failed(exc)
            continue
        failures.succeeded()
        for sid, message, data in ended:
            try:
                end(sid, message, data)
            except Exception:  # one broken socket must not keep the others connected
                log.exception("live push: ending the session of %s failed; the next look tries again", sid)
                continue
            signins.left(sid)
