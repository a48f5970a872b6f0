"""Keys per space and pinned host keys: a space's public key (to authorise on its servers),
a server's host key (see what it presents; pin it), the space's repository host keys."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from ferryman.api.config_views import PresentedKey, RepoHostKey
from ferryman.api.deps import DB, CurrentActor, Id, SettingsDep, perm
from ferryman.api.schemas import RepoHostTrustBody, TrustBody
from ferryman.api.team_views import PublicKey, Server
from ferryman.keys import public_key
from ferryman.services import host_keys

router = APIRouter()


@router.get(
    "/spaces/{space}/ssh-key",
    response_model=PublicKey,
    tags=["servers"],
    openapi_extra=perm("server.read"),
)
async def space_ssh_key(
    space: str, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, str]:
    """The space's own public key: add it to ``authorized_keys`` on the space's servers.
    Deploys of this space authenticate with it and with no other key."""
    space_id, uses_server_key, name = await asyncio.to_thread(host_keys.space_key, db, actor, space)
    key = await asyncio.to_thread(public_key, settings, space_id, uses_server_key)
    return {"space": name, "public_key": key}


@router.get(
    "/servers/{server_id}/host-key",
    response_model=PresentedKey,
    tags=["servers"],
    openapi_extra=perm("server.trust"),
)
async def server_host_key(server_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """The key the server presents now (its fingerprint) and the ones pinned."""
    return await host_keys.server_key(db, actor, server_id)


@router.post(
    "/servers/{server_id}/host-key",
    response_model=Server,
    tags=["servers"],
    openapi_extra=perm("server.trust"),
)
async def trust_server(
    server_id: Id, body: TrustBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    """Pin the key the server presents, which must have ``fingerprint`` (what you checked),
    or a ``key`` you got out of band."""
    return await host_keys.trust_server(db, actor, server_id, body.fingerprint, body.key)


@router.get(
    "/spaces/{space}/repo-hosts",
    response_model=list[RepoHostKey],
    response_model_exclude_unset=True,
    tags=["servers"],
    openapi_extra=perm("server.read"),
)
def repo_hosts(space: str, db: DB, actor: CurrentActor) -> list[dict[str, str]]:
    """The repository host keys pinned for the space's checkouts."""
    return host_keys.repo_hosts(db, actor, space)


@router.post(
    "/spaces/{space}/repo-hosts",
    response_model=list[RepoHostKey],
    response_model_exclude_unset=True,
    tags=["servers"],
    openapi_extra=perm("server.trust"),
)
async def trust_repo_host(
    space: str, body: RepoHostTrustBody, db: DB, actor: CurrentActor
) -> list[dict[str, str]]:
    """Without ``fingerprint`` or ``key``: what ``host`` presents. With them: pin it."""
    return await host_keys.trust_repo_host(db, actor, space, body.host, body.fingerprint, body.key)
