"""Registering pull-mode hosts: each gets its own token (shown once, stored hashed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ferryman.api.deps import DB, CurrentActor, perm
from ferryman.api.schemas import AgentBody
from ferryman.api.team_views import AgentToken
from ferryman.services import agents

router = APIRouter(prefix="/spaces/{space}/agents", tags=["pull mode"])


@router.post("", status_code=201, response_model=AgentToken, openapi_extra=perm("server.manage"))
def register(space: str, body: AgentBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """A token for a pull-mode host (its earlier tokens stop working). Shown only here."""
    return agents.register(db, actor, space, body.host)


@router.delete("/{host}", status_code=204, openapi_extra=perm("server.manage"))
def revoke(space: str, host: str, db: DB, actor: CurrentActor) -> Response:
    agents.revoke(db, actor, space, host)
    return Response(status_code=204)
