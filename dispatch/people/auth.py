"""Passwords, bearer tokens and the signed-in user of a request."""

from __future__ import annotations

import functools
import hashlib
import secrets
import unicodedata
from datetime import datetime, timedelta

from flask import current_app, g, request
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from dispatch.errors import ApiError, a_or_an
from dispatch.people.models import ApiToken, SignInFailure, User

TOKEN_HOURS = 12
# Failed sign-ins allowed within SIGN_IN_WINDOW before the next try is refused (429): per
# account from one client (a forgotten password tried a few times), and per client over all
# accounts (one address trying many). Not per account alone: anyone could lock a manager out.
SIGN_IN_WINDOW = timedelta(minutes=15)
FAILURES_PER_ACCOUNT = 10
FAILURES_PER_CLIENT = 30


def _normalised(password: str) -> str:
    """One form per password (NFC, as RFC 8265's OpaqueString): "é" typed as one character on
    one keyboard and as e plus an accent on another is the same password."""
    return unicodedata.normalize("NFC", password)


def hash_password(password: str) -> str:
    """A salted scrypt hash (werkzeug) of the normalised password."""
    return generate_password_hash(_normalised(password))


def password_matches(user: User | None, password: str) -> bool:
    """Whether `password` is the user's. With no such user a hash is checked all the same,
    so the answer takes as long whether or not the username exists."""
    stored = user.password_hash if user else _no_one()
    typed = _normalised(password)
    # An account whose password was hashed as typed, before passwords were normalised, still
    # signs in with it (checked only when normalising changed something).
    matches = check_password_hash(stored, typed) or (typed != password and check_password_hash(stored, password))
    return matches and user is not None


@functools.cache
def _no_one() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_sign_in_limits(session: Session, *, username: str, client: str, now: datetime) -> None:
    """429, with Retry-After, when this client has failed to sign in too often of late."""
    recent = SignInFailure.client_key == client, SignInFailure.at > now - SIGN_IN_WINDOW
    for limit, where in ((FAILURES_PER_ACCOUNT, (*recent, SignInFailure.username == username[:64])),
                         (FAILURES_PER_CLIENT, recent)):
        failures = session.execute(select(func.count(), func.min(SignInFailure.at)).where(*where)).one()
        if failures[0] >= limit:
            wait = max(1, int((failures[1] + SIGN_IN_WINDOW - now).total_seconds()) + 1)
            minutes = int(SIGN_IN_WINDOW.total_seconds() // 60)
            raise ApiError(429, "too_many_sign_ins",
                           f"too many failed sign-ins from here ({limit} in {minutes} minutes): "
                           f"try again in {wait} s", {"field": "password", "retry_after_s": wait},
                           headers={"Retry-After": str(wait)})


def sign_in_failed(session: Session, *, username: str, client: str, now: datetime) -> None:
    """Count a wrong username or password (committed: the answer is an error, not a rollback)."""
    session.add(SignInFailure(username=username[:64], client_key=client, at=now))
    session.commit()


def forget_old_sign_in_failures(session: Session, now: datetime) -> int:
    """Forget failed sign-ins older than a day (only the last SIGN_IN_WINDOW counts); how many."""
    forgotten = session.execute(delete(SignInFailure).where(SignInFailure.at < now - timedelta(days=1)))
    return forgotten.rowcount or 0


def token_digest(token: str) -> str:
    """Tokens and tracking tokens are stored only as their SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, *, user: User, now: datetime, hours: float = TOKEN_HOURS) -> tuple[str, ApiToken]:
    """A new bearer token for this user, valid for `hours`."""
    token = secrets.token_urlsafe(32)
    row = ApiToken(token_hash=token_digest(token), user_id=user.id, created_at=now,
                   expires_at=now + timedelta(hours=hours))
    session.add(row)
    return token, row


@functools.cache
def _token_and_user():
    """Token and user in one statement, built once: every signed-in request runs it."""
    return (select(ApiToken, User).outerjoin(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == bindparam("token_hash")))


def user_for_token(session: Session, *, token: str, now: datetime) -> tuple[User, ApiToken]:
    """The active user behind a token; ApiError 401 saying why when there is none."""
    row, user = session.execute(_token_and_user(), {"token_hash": token_digest(token)}).first() or (None, None)
    refusal = why_refused(row, user, now)
    if refusal is not None:
        raise refusal
    return user, row


def why_refused(row: ApiToken | None, user: User | None, now: datetime) -> ApiError | None:
    """Why a token (its row and user, if found) does not sign anyone in now, or None if it does.

    Reads `revoked_at`, `expires_at` and `active` only, so result rows with those columns do."""
    if row is None:
        return ApiError(401, "invalid_token", "the token is not known")
    # A disabled account's tokens are revoked too; saying why is the more useful answer.
    if user is None or not user.active:
        return ApiError(401, "user_disabled", "this account is disabled")
    if row.revoked_at is not None:
        return ApiError(401, "token_revoked", "the token was revoked; sign in again")
    if row.expires_at <= now:
        return ApiError(401, "token_expired", "the token has expired; sign in again")
    return None


def bearer_token() -> str | None:
    """The token of the Authorization header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_token", "Authorization must be 'Bearer <token>'")
    return token.strip()


def current_user() -> User | None:
    """The signed-in user of this request, or None for an anonymous caller."""
    if "current_user" not in g:
        from dispatch.app import clock, session

        token = bearer_token()
        g.current_user = None
        g.current_token = None
        if token:
            g.current_user, g.current_token = user_for_token(session(), token=token, now=clock().now())
    return g.current_user


def require_user(*roles: str) -> User:
    """The signed-in user, who must hold one of `roles` (any role when none are named)."""
    user = current_user()
    if user is None:
        raise ApiError(401, "authentication_required", "sign in: POST /api/v1/auth/token, then send 'Authorization: Bearer <token>'")
    if roles and user.role not in roles:
        raise ApiError(403, "forbidden", f"{a_or_an(user.role)} may not do this (needs {' or '.join(roles)})",
                       {"role": user.role, "allowed": list(roles)})
    return user


def client_key() -> str:
    """Who is calling, for rate limits: the remote address, hashed so it is not stored raw."""
    address = request.remote_addr or "unknown"
    salt = current_app.config["SECRET_KEY"]
    return hashlib.sha256(f"{salt}:{address}".encode()).hexdigest()[:32]
