"""Secret variables of a project environment: write-only values, readable names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ferryman.api.deps import DB, CurrentActor, perm
from ferryman.api.schemas import SecretBody
from ferryman.api.team_views import SecretSummary, SecretValue
from ferryman.services import secrets

router = APIRouter(prefix="/projects/{project}/envs/{env}/secrets", tags=["secrets"])


@router.get("", response_model=list[SecretSummary], openapi_extra=perm("project.read"))
def list_secrets(project: str, env: str, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    """Names, who changed each and when, how many versions — never values."""
    return secrets.list_secrets(db, actor, project, env)


@router.put("/{name}", response_model=SecretSummary, openapi_extra=perm("secret.manage"))
def set_secret(
    project: str, env: str, name: str, body: SecretBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    """Set a value (encrypted at rest; every earlier value is kept, encrypted, as history)."""
    return secrets.set_secret(db, actor, project, env, name, body.value)


@router.get("/{name}/value", response_model=SecretValue, openapi_extra=perm("secret.reveal"))
def reveal_secret(project: str, env: str, name: str, db: DB, actor: CurrentActor) -> dict[str, str]:
    """The plain value, for masters and owners; every read is audited."""
    return {"name": name, "value": secrets.reveal(db, actor, project, env, name)}


@router.delete("/{name}", status_code=204, openapi_extra=perm("secret.manage"))
def delete_secret(project: str, env: str, name: str, db: DB, actor: CurrentActor) -> Response:
    secrets.delete_secret(db, actor, project, env, name)
    return Response(status_code=204)
