"""Users and API tokens. Passwords are argon2 hashes; tokens are random, shown once and stored
as SHA-256, with scopes (``read``, ``write``) and an optional expiry. Failed sign-ins are counted
per user name and per address; past the limit, sign-in is refused for a while (429)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ferryman.db.models import ApiToken, LoginFailure, User, WebSession, utcnow
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.errors import AuthenticationFailed, Conflict, NotFound, RateLimited, ValidationError
from ferryman.services.audit import ALL_SCOPES, SYSTEM, Actor, record
from ferryman.services.authz import require

_hasher = PasswordHasher()
TOKEN_PREFIX = "fm_"
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 10
MAX_FAILURES_PER_IP = 30
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
    with db.read() as s:
        require(s, actor, "user.list")
        rows = [user_dict(u) for u in s.scalars(select(User).order_by(User.username))]
        if not actor.is_superuser:
            rows = [{k: r[k] for k in ("id", "username", "is_active")} for r in rows]
        return rows


def update_user(
    db: Database,
    actor: Actor,
    user_ref: int | str,
    *,
    is_active: bool | None = None,
    is_superuser: bool | None = None,
    password: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """Disable/enable, grant/revoke superuser, reset the password (superusers only).
    Disabling a user revokes every token they hold."""
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


def change_password(db: Database, actor: Actor, old: str, new: str) -> None:
    """A user changes their own password; every other token of theirs is kept."""
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
        record(s, actor, "user.password", f"user:{user.username}")


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


def _refuse_when_guessing(s: Session, username: str, ip: str) -> None:
    since = utcnow() - LOGIN_WINDOW
    by_user = s.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.username == username, LoginFailure.ts >= since)
    )
    by_ip = (
        s.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.ip == ip, LoginFailure.ts >= since)
        )
        if ip
        else 0
    )
    if (by_user or 0) >= MAX_FAILURES_PER_USER or (by_ip or 0) >= MAX_FAILURES_PER_IP:
        minutes = int(LOGIN_WINDOW.total_seconds() // 60)
        raise RateLimited(
            f"too many failed sign-ins; try again in up to {minutes} minutes",
            retry_after=int(LOGIN_WINDOW.total_seconds()),
        )


def _note_failure(db: Database, username: str, ip: str) -> None:
    with db.transaction() as s:
        s.add(LoginFailure(username=username[:64], ip=ip[:64]))
        s.execute(delete(LoginFailure).where(LoginFailure.ts < utcnow() - 4 * LOGIN_WINDOW))


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
    s.execute(delete(LoginFailure).where(LoginFailure.username == username))
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
    from ferryman.services.directory import DirectoryDown

    try:
        entry = directory.authenticate(username, password)
    except DirectoryDown as exc:
        return "down", str(exc)
    return ("ok", entry) if entry is not None else ("wrong", None)


def _directory_user(s: Session, db: Database, username: str, entry: Any) -> User | None:
    """The local record of a directory user (made on first sign-in), with the roles its
    groups map to in each space the mapping names."""
    from ferryman.db.models import Space, SpaceMember

    user = s.scalar(select(User).where(User.username == username))
    if user is None:
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
    s.execute(delete(LoginFailure).where(LoginFailure.username == username))
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
    with db.read() as s:
        _refuse_when_guessing(s, username, ip)
    directory = _directory_first(db, username, password)
    with db.transaction() as s:
        user = _authenticate(s, db, username, password, directory)
        if user is not None:
            token = _issue(s, user, token_name, sorted(ALL_SCOPES), expires_in_days)
            record(s, _actor(user, ip), "user.login", f"user:{username}", token_name=token_name)
            return token
    _note_failure(db, username, ip)
    raise AuthenticationFailed("wrong user name or password")


def start_session(db: Database, username: str, password: str, *, ip: str = "") -> tuple[str, str]:
    """Sign in for the web: returns (cookie secret, CSRF token). Rate-limited like ``login``."""
    with db.read() as s:
        _refuse_when_guessing(s, username, ip)
    directory = _directory_first(db, username, password)
    with db.transaction() as s:
        user = _authenticate(s, db, username, password, directory)
        if user is not None:
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
    _note_failure(db, username, ip)
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
) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    s.add(
        ApiToken(
            user_id=user.id,
            name=name[:100],
            token_hash=_token_hash(token),
            scopes=scopes,
            expires_at=expires,
        )
    )
    return token


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
        secret = _issue(s, user, name, sorted(set(scopes)), expires_in_days)
        s.flush()
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(secret)))
        assert row is not None
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
