"""Users and API tokens. Passwords are argon2 hashes; tokens are random, shown once and stored
as SHA-256, with scopes (``read``, ``write``) and an optional expiry. A password change or reset
revokes every session and token of that user (but the one that made the change).

Sign-in attempts are limited (``_admit``): before a password is evaluated, the attempt is
recorded in ``login_failures`` inside one serialised transaction that first counts the recent
ones — per user name and address, per user name, per address. Past a key's free attempts,
each further attempt must wait 2^k seconds after the last one (at most ``MAX_DELAY``), else it
is refused with 429 and ``Retry-After``. A success removes its own record (and the user's
failures); parallel guesses therefore count before they are evaluated, not after."""

from __future__ import annotations

import hashlib
import math
import secrets
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import available_timezones

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from ferryman.db.models import ApiToken, LoginFailure, User, WebSession, utcnow
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.errors import AuthenticationFailed, Conflict, NotFound, RateLimited, ValidationError
from ferryman.services.audit import ALL_SCOPES, SYSTEM, Actor, record
from ferryman.services.authz import require

_hasher = PasswordHasher()
TOKEN_PREFIX = "fm_"
LOGIN_WINDOW = timedelta(hours=1)  # attempts older than this no longer count
FREE_PER_USER_AND_IP = 10  # failures of one user name from one address before any delay
FREE_PER_USER = 30  # of one user name from any address (guessing from many addresses)
FREE_PER_IP = 100  # of any user name from one address (spraying one password over many)
MAX_DELAY = timedelta(minutes=15)
MIN_PASSWORD = 8
SESSION_LIFETIME = timedelta(hours=12)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _actor(user: User, ip: str = "", scopes: frozenset[str] = ALL_SCOPES) -> Actor:
    return Actor(
        id=user.id, username=user.username, is_superuser=user.is_superuser, ip=ip, scopes=scopes
    )


def user_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "is_superuser": user.is_superuser,
        "is_active": user.is_active,
        "language": user.language,
        "time_zone": user.time_zone,
        "created_at": user.created_at.isoformat(),
    }


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise ValidationError("password: at most 1024 characters")


def create_user(
    db: Database,
    username: str,
    password: str,
    *,
    superuser: bool = False,
    email: str = "",
    actor: Actor = SYSTEM,
) -> Actor:
    validate.username(username)
    _check_password(password)
    with db.transaction() as s:
        require(s, actor, "user.manage")
        if s.scalar(select(User).where(User.username == username)) is not None:
            raise Conflict(f"user {username!r} already exists")
        user = User(
            username=username,
            password_hash=_hasher.hash(password),
            is_superuser=superuser,
            email=email,
        )
        s.add(user)
        s.flush()
        record(s, actor, "user.create", f"user:{username}", superuser=superuser)
        return _actor(user)


def list_users(db: Database, actor: Actor) -> list[dict[str, Any]]:
    """Every user for superusers; for anyone else, the users who share a space with them
    (themselves included) — as members or through a group, on either side — with only id,
    name and whether they are active."""
    from ferryman.services import group_roles
    from ferryman.services.authz import visible_space_ids

    with db.read() as s:
        require(s, actor, "user.list")
        query = select(User).order_by(User.username)
        if not actor.is_superuser:
            shared = {actor.id}
            for space_id in visible_space_ids(s, actor) or []:
                shared |= set(group_roles.space_roles(s, space_id))
            query = query.where(User.id.in_(shared))
        rows = [user_dict(u) for u in s.scalars(query)]
        if not actor.is_superuser:
            rows = [{k: r[k] for k in ("id", "username", "is_active")} for r in rows]
        return rows


def _revoke_credentials(
    s: Session, user_id: int, keep_token: str | None = None, keep_session: str | None = None
) -> None:
    """Every API token and web session of the user ends, except the one presented with the
    request that changed the password (``keep_*``: its secret)."""
    tokens = delete(ApiToken).where(ApiToken.user_id == user_id)
    if keep_token:
        tokens = tokens.where(ApiToken.token_hash != _token_hash(keep_token))
    s.execute(tokens)
    sessions = delete(WebSession).where(WebSession.user_id == user_id)
    if keep_session:
        sessions = sessions.where(WebSession.secret_hash != _token_hash(keep_session))
    s.execute(sessions)


def update_user(
    db: Database,
    actor: Actor,
    user_ref: int | str,
    *,
    is_active: bool | None = None,
    is_superuser: bool | None = None,
    password: str | None = None,
    email: str | None = None,
    keep_token: str | None = None,
    keep_session: str | None = None,
) -> dict[str, Any]:
    """Disable/enable, grant/revoke superuser, reset the password (superusers only).
    Disabling a user or resetting their password revokes every token and session they hold
    (a superuser resetting their own keeps the credential of this request: ``keep_*``)."""
    from ferryman.services.spaces import find_user

    if password is not None:
        _check_password(password)
    with db.transaction() as s:
        require(s, actor, "user.manage")
        user = find_user(s, user_ref)
        if user.id == actor.id and (is_active is False or is_superuser is False):
            raise Conflict("you cannot disable yourself or drop your own superuser flag")
        before = user_dict(user)
        if is_active is not None:
            user.is_active = is_active
            if not is_active:
                s.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
                s.execute(delete(WebSession).where(WebSession.user_id == user.id))
        if is_superuser is not None:
            user.is_superuser = is_superuser
        if email is not None:
            user.email = email
        if password is not None:
            user.password_hash = _hasher.hash(password)
            user.password_changed_at = utcnow()
            if user.id == actor.id:
                _revoke_credentials(s, user.id, keep_token, keep_session)
            else:
                _revoke_credentials(s, user.id)
        after = user_dict(user)
        record(
            s,
            actor,
            "user.update",
            f"user:{user.username}",
            before={k: before[k] for k in ("is_active", "is_superuser", "email")},
            after={k: after[k] for k in ("is_active", "is_superuser", "email")},
            password_reset=password is not None,
        )
        return after


def change_password(
    db: Database,
    actor: Actor,
    old: str,
    new: str,
    *,
    keep_token: str | None = None,
    keep_session: str | None = None,
    renew: bool = False,
) -> str | None:
    """A user changes their own password: every token and session of theirs is revoked, but
    the one this request came with (``keep_token`` or ``keep_session``, its secret). With
    ``renew`` the kept session gets a new cookie secret (returned; a copy of the old cookie
    stops working) and keeps its CSRF token, so open pages go on working."""
    _check_password(new)
    with db.transaction() as s:
        require(s, actor, "me.password")
        user = s.get(User, actor.id) if actor.id is not None else None
        if user is None:
            raise NotFound("no such user")
        if user.source == "ldap":
            raise Conflict("your password is kept by the directory (LDAP): change it there")
        try:
            _hasher.verify(user.password_hash, old)
        except (VerificationError, InvalidHashError):
            raise AuthenticationFailed("the current password is wrong") from None
        user.password_hash = _hasher.hash(new)
        user.password_changed_at = utcnow()
        _revoke_credentials(s, user.id, keep_token, keep_session)
        record(s, actor, "user.password", f"user:{user.username}")
        if not (renew and keep_session):
            return None
        kept = s.scalar(
            select(WebSession).where(WebSession.secret_hash == _token_hash(keep_session))
        )
        if kept is None:
            return None
        renewed = secrets.token_urlsafe(32)
        kept.secret_hash = _token_hash(renewed)
        return renewed


LANGUAGES = ("en", "zh_CN")


def set_language(db: Database, actor: Actor, language: str) -> None:
    """Remember the web UI language of the signed-in user (``en`` or ``zh_CN``)."""
    if language not in LANGUAGES:
        raise ValidationError(f"language: one of {', '.join(LANGUAGES)}")
    with db.transaction() as s:
        require(s, actor, "me.preferences")
        user = s.get(User, actor.id)
        if user is None:
            raise NotFound("no such user")
        user.language = language
        record(s, actor, "user.language", f"user:{user.username}", language=language)


def time_zones() -> list[str]:
    """The IANA zones a user may choose (``Asia/Shanghai``), sorted."""
    return sorted(available_timezones())


def set_time_zone(db: Database, actor: Actor, zone: str) -> None:
    """Remember the zone the web UI shows the signed-in user's times in ('' = the browser's)."""
    zone = zone.strip()
    if zone and zone not in available_timezones():
        raise ValidationError(
            f"time_zone: {zone[:64]!r} is not a time zone (an IANA name like Asia/Shanghai)"
        )
    with db.transaction() as s:
        require(s, actor, "me.preferences")
        user = s.get(User, actor.id)
        if user is None:
            raise NotFound("no such user")
        user.time_zone = zone
        record(s, actor, "user.time_zone", f"user:{user.username}", time_zone=zone)


_SIGN_IN_LOCK = "ferryman_sign_in"
_SIGN_IN_KEY = zlib.crc32(_SIGN_IN_LOCK.encode())  # PostgreSQL advisory lock number


@contextmanager
def _serialised(db: Database) -> Iterator[Session]:
    """A transaction that no other sign-in gate runs beside: SQLite takes the write lock
    first (``BEGIN IMMEDIATE``), PostgreSQL an advisory transaction lock, MariaDB/MySQL a
    named lock released after the commit (on the same connection)."""
    dialect = db.engine.dialect.name
    if dialect not in ("mysql", "mariadb"):
        with db.transaction() as s:
            if dialect == "sqlite":
                s.execute(text("BEGIN IMMEDIATE"))
            elif dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SIGN_IN_KEY})
            yield s
        return
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="READ COMMITTED")
        got = conn.execute(text("SELECT GET_LOCK(:n, 30)"), {"n": _SIGN_IN_LOCK}).scalar()
        conn.commit()
        if got != 1:
            raise RateLimited("sign-in is busy; try again", retry_after=1)
        try:
            with Session(bind=conn, expire_on_commit=False) as s:
                yield s
                s.commit()
        finally:
            conn.rollback()
            conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _SIGN_IN_LOCK})
            conn.commit()


def _wait_left(s: Session, where: Any, free: int, now: datetime) -> float:
    """Seconds until one more attempt under ``where`` is allowed (0: now)."""
    count, last = s.execute(
        select(func.count(), func.max(LoginFailure.ts)).where(
            where, LoginFailure.ts >= now - LOGIN_WINDOW
        )
    ).one()
    if not count or count < free or last is None:
        return 0.0
    delay = min(2.0 ** (count - free), MAX_DELAY.total_seconds())
    if last.tzinfo is None and now.tzinfo is not None:
        last = last.replace(tzinfo=now.tzinfo)
    return max(0.0, (last - now).total_seconds() + delay)


def limit_key(username: str) -> str:
    """The name sign-in limits count under: case and surrounding blanks do not make a new
    name (a directory matches ``uid`` ignoring case, so ``Lily`` is ``lily`` there)."""
    return username.strip().lower()[:64]


def _admit(db: Database, username: str, ip: str) -> int:
    """Record a sign-in attempt before its password is evaluated, or refuse it (429) while a
    key it falls under must wait; returns the record's id (removed again on success).
    Counting and recording are one serialised transaction, so parallel guesses count."""
    user_key, ip_key = limit_key(username), ip[:64]
    now = utcnow()
    with _serialised(db) as s:
        keys = [(LoginFailure.username == user_key, FREE_PER_USER)]
        if ip_key:
            keys.append(
                (
                    (LoginFailure.username == user_key) & (LoginFailure.ip == ip_key),
                    FREE_PER_USER_AND_IP,
                )
            )
            keys.append((LoginFailure.ip == ip_key, FREE_PER_IP))
        else:
            keys[0] = (LoginFailure.username == user_key, FREE_PER_USER_AND_IP)
        wait = max(_wait_left(s, where, free, now) for where, free in keys)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                f"too many failed sign-ins; try again in {seconds} seconds",
                retry_after=seconds,
            )
        attempt = LoginFailure(username=user_key, ip=ip_key, ts=now)
        s.add(attempt)
        s.flush()
        s.execute(delete(LoginFailure).where(LoginFailure.ts < now - 4 * LOGIN_WINDOW))
        return int(attempt.id)


def _succeeded(s: Session, username: str, attempt: int) -> None:
    """A right password: this attempt was no failure, and the user's failures are forgiven."""
    s.execute(
        delete(LoginFailure).where(
            (LoginFailure.id == attempt) | (LoginFailure.username == limit_key(username))
        )
    )


def _sign_in(s: Session, username: str, password: str) -> User | None:
    """The active user with this password, or None (same cost whether the user exists)."""
    user = s.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        _hasher.hash(password)
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _directory_first(db: Database, username: str, password: str) -> tuple[str, Any]:
    """("skip", None) for local accounts or without LDAP; else ("ok", entry), ("wrong", None)
    or ("down", reason). The directory is asked before any transaction is opened."""
    directory = getattr(db, "directory", None)
    if directory is None:
        return "skip", None
    with db.read() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is not None and user.source != "ldap":
            return "skip", None
        if user is None and _directory_account(s, username) is None:
            same = s.scalar(select(User).where(func.lower(User.username) == username.lower()))
            if same is not None and same.source != "ldap":
                return "skip", None  # a local account spelled otherwise: the local rules
    from ferryman.services.directory import DirectoryDown

    try:
        entry = directory.authenticate(username, password)
    except DirectoryDown as exc:
        return "down", str(exc)
    return ("ok", entry) if entry is not None else ("wrong", None)


def _directory_unless_down(
    db: Database, username: str, password: str, attempt: int
) -> tuple[str, Any]:
    """``_directory_first``; a directory that cannot be reached evaluated nothing, so the
    attempt is not counted against the user."""
    verdict = _directory_first(db, username, password)
    if verdict[0] == "down":
        with db.transaction() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.id == attempt))
    return verdict


def _directory_account(s: Session, username: str) -> User | None:
    """The local record of a directory account, whatever case the name was typed in."""
    return s.scalar(
        select(User).where(func.lower(User.username) == username.lower(), User.source == "ldap")
    )


def _directory_user(s: Session, db: Database, username: str, entry: Any) -> User | None:
    """The local record of a directory user (made on first sign-in), with the roles its
    groups map to in each space the mapping names."""
    from ferryman.db.models import Space, SpaceMember

    user = _directory_account(s, username)
    if user is None:
        username = username.lower()  # one local record per directory account, any case typed
        validate.username(username)
        user = User(
            username=username,
            password_hash=_hasher.hash(secrets.token_urlsafe(32)),  # never used
            email=entry.email,
            source="ldap",
        )
        s.add(user)
        s.flush()
        record(s, SYSTEM, "user.create", f"user:{username}", source="ldap")
    if not user.is_active:
        return None
    user.email = entry.email or user.email
    for space_name, role in db.directory.roles(entry.groups).items():
        space = s.scalar(select(Space).where(Space.name == space_name))
        if space is None:
            continue
        member = s.get(SpaceMember, (space.id, user.id))
        if role is None and member is not None:
            s.delete(member)
        elif role is not None and member is None:
            s.add(SpaceMember(space_id=space.id, user_id=user.id, role=role))
        elif role is not None and member is not None:
            member.role = role
    return user


def _authenticate(
    s: Session, db: Database, username: str, password: str, directory: tuple[str, Any]
) -> User | None:
    verdict, found = directory
    if verdict == "skip":
        return _sign_in(s, username, password)
    if verdict == "ok":
        return _directory_user(s, db, username, found)
    if verdict == "down":
        raise AuthenticationFailed(
            "the directory (LDAP) cannot be reached; local accounts can still sign in"
        )
    return None


def login(
    db: Database,
    username: str,
    password: str,
    token_name: str = "cli",
    *,
    ip: str = "",
    expires_in_days: int | None = None,
) -> str:
    """Check the password and issue a new API token (shown once, stored hashed)."""
    attempt = _admit(db, username, ip)
    directory = _directory_unless_down(db, username, password, attempt)
    with db.transaction() as s:
        user = _authenticate(s, db, username, password, directory)
        if user is not None:
            _succeeded(s, username, attempt)
            token, _ = _issue(s, user, token_name, sorted(ALL_SCOPES), expires_in_days)
            record(s, _actor(user, ip), "user.login", f"user:{username}", token_name=token_name)
            return token
    raise AuthenticationFailed("wrong user name or password")


def start_session(db: Database, username: str, password: str, *, ip: str = "") -> tuple[str, str]:
    """Sign in for the web: returns (cookie secret, CSRF token). Rate-limited like ``login``."""
    attempt = _admit(db, username, ip)
    directory = _directory_unless_down(db, username, password, attempt)
    with db.transaction() as s:
        user = _authenticate(s, db, username, password, directory)
        if user is not None:
            _succeeded(s, username, attempt)
            secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
            s.add(
                WebSession(
                    user_id=user.id,
                    secret_hash=_token_hash(secret),
                    csrf_token=csrf,
                    ip=ip[:64],
                    expires_at=utcnow() + SESSION_LIFETIME,
                )
            )
            s.execute(delete(WebSession).where(WebSession.expires_at < utcnow()))
            record(s, _actor(user, ip), "user.login", f"user:{username}", via="session")
            return secret, csrf
    raise AuthenticationFailed("wrong user name or password")


def actor_for_session(db: Database, secret: str, ip: str = "") -> tuple[Actor, str]:
    """The actor of a session cookie and the session's CSRF token."""
    with db.read() as s:
        row = s.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.secret_hash == _token_hash(secret))
        ).first()
        if row is None or not row[1].is_active or row[0].expires_at <= utcnow():
            raise AuthenticationFailed("your session has ended; sign in again")
        return _actor(row[1], ip), row[0].csrf_token


def end_session(db: Database, actor: Actor, secret: str | None) -> None:
    """Sign out: the session (if this request came with one) stops working at once."""
    with db.transaction() as s:
        require(s, actor, "auth.logout")
        if secret:
            s.execute(delete(WebSession).where(WebSession.secret_hash == _token_hash(secret)))
        record(s, actor, "user.logout", f"user:{actor.username}")


def _issue(
    s: Session, user: User, name: str, scopes: list[str], expires_in_days: int | None
) -> tuple[str, ApiToken]:
    """A new token of ``user``: its secret (shown once) and its row (added, not flushed)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    row = ApiToken(
        user_id=user.id,
        name=name[:100],
        token_hash=_token_hash(token),
        scopes=scopes,
        expires_at=expires,
    )
    s.add(row)
    return token, row


def token_dict(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": token.scopes,
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


def create_token(
    db: Database,
    actor: Actor,
    name: str,
    scopes: list[str],
    expires_in_days: int | None = None,
) -> dict[str, Any]:
    """A personal API token for the actor; the secret is in the result, and only there."""
    unknown = set(scopes) - ALL_SCOPES
    if unknown or not scopes:
        raise ValidationError(f"scopes: give one or more of {', '.join(sorted(ALL_SCOPES))}")
    if expires_in_days is not None and not 0 < expires_in_days <= 3650:
        raise ValidationError("expires_in_days: between 1 and 3650")
    with db.transaction() as s:
        require(s, actor, "token.manage")
        user = s.get(User, actor.id) if actor.id is not None else None
        if user is None:
            raise NotFound("no such user")
        secret, row = _issue(s, user, name, sorted(set(scopes)), expires_in_days)
        s.flush()  # its id and creation time
        record(s, actor, "token.create", f"user:{user.username}/token:{row.id}", scopes=scopes)
        return {**token_dict(row), "token": secret}


def list_tokens(db: Database, actor: Actor) -> list[dict[str, Any]]:
    with db.read() as s:
        require(s, actor, "token.read")
        rows = s.scalars(select(ApiToken).where(ApiToken.user_id == actor.id).order_by(ApiToken.id))
        return [token_dict(t) for t in rows]


def revoke_token(db: Database, actor: Actor, token_id: int) -> None:
    with db.transaction() as s:
        require(s, actor, "token.manage")
        row = s.get(ApiToken, token_id)
        if row is None or row.user_id != actor.id:
            raise NotFound(f"no token #{token_id}")
        s.delete(row)
        record(s, actor, "token.revoke", f"user:{actor.username}/token:{token_id}")


def actor_for_token(db: Database, token: str, ip: str = "") -> Actor:
    if not token.startswith(TOKEN_PREFIX):
        raise AuthenticationFailed("invalid token")
    with db.transaction() as s:
        row = s.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == _token_hash(token))
        ).first()
        if row is None or not row[1].is_active:
            raise AuthenticationFailed("invalid or revoked token")
        api_token, user = row
        now = utcnow()
        if api_token.expires_at is not None and api_token.expires_at <= now:
            raise AuthenticationFailed("this token has expired; sign in again")
        if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > 60:
            api_token.last_used_at = now
        return _actor(user, ip, frozenset(api_token.scopes))
