"""Users and API tokens. Passwords are argon2 hashes; tokens are random and stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from ferryman.db.models import ApiToken, User, utcnow
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.errors import AuthenticationFailed, Conflict, ValidationError
from ferryman.services.audit import SYSTEM, Actor, record

_hasher = PasswordHasher()
TOKEN_PREFIX = "fm_"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _actor(user: User) -> Actor:
    return Actor(id=user.id, username=user.username, is_superuser=user.is_superuser)


def create_user(
    db: Database,
    username: str,
    password: str,
    *,
    superuser: bool = False,
    actor: Actor = SYSTEM,
) -> Actor:
    validate.username(username)
    if len(password) < 8:
        raise ValidationError("password must have at least 8 characters")
    with db.transaction() as s:
        if s.scalar(select(User).where(User.username == username)) is not None:
            raise Conflict(f"user {username!r} already exists")
        user = User(username=username, password_hash=_hasher.hash(password), is_superuser=superuser)
        s.add(user)
        s.flush()
        record(s, actor, "user.create", f"user:{username}", superuser=superuser)
        return _actor(user)


def login(db: Database, username: str, password: str, token_name: str = "cli") -> str:
    """Check the password and issue a new API token (shown once, stored hashed)."""
    failed = AuthenticationFailed("wrong user name or password")
    with db.transaction() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None or not user.is_active:
            _hasher.hash(password)  # same cost either way
            raise failed
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            raise failed from None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        s.add(ApiToken(user_id=user.id, name=token_name[:100], token_hash=_token_hash(token)))
        record(s, _actor(user), "user.login", f"user:{username}", token_name=token_name)
        return token


def actor_for_token(db: Database, token: str) -> Actor:
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
        if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > 60:
            api_token.last_used_at = now
        return _actor(user)
