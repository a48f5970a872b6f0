"""Request dependencies: the database, settings, and the authenticated actor (bearer token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.errors import AuthenticationFailed
from ferryman.services import users
from ferryman.services.audit import Actor

bearer = HTTPBearer(auto_error=False, description="An API token from /api/v1/auth/login")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def current_actor(
    db: Annotated[Database, Depends(get_db)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if credentials is None:
        raise AuthenticationFailed("missing bearer token: run `ferryman login` first")
    return users.actor_for_token(db, credentials.credentials)


DB = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
