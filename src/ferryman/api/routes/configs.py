"""Config files of a project environment: templates and overrides, history with diffs, and
per-host previews. Secret values are masked in every response."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from ferryman.api.config_views import ConfigDiff, ConfigFile, ConfigPreview, ConfigVersion
from ferryman.api.deps import DB, MAX_ID, CurrentActor, perm
from ferryman.api.schemas import ConfigFileBody, ConfigOverrideBody
from ferryman.services import config_files, config_views

router = APIRouter(prefix="/projects/{project}/envs/{env}/config", tags=["config"])


@router.get(
    "",
    response_model=list[ConfigFile],
    response_model_exclude_unset=True,
    openapi_extra=perm("config.read"),
)
def list_files(project: str, env: str, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    """Every config file (path, mode, version, override scopes) and the ones the project's
    YAML declares but nobody has set yet (``missing``)."""
    return config_views.list_files(db, actor, project, env)


@router.get("/preview", response_model=list[ConfigPreview], openapi_extra=perm("config.read"))
def preview(
    project: str,
    env: str,
    db: DB,
    actor: CurrentActor,
    host: str | None = Query(None, max_length=300, description="server name or host key"),
    path: str | None = Query(None, max_length=500),
) -> list[dict[str, Any]]:
    """The file each host would get now, rendered (secret values as ``***``)."""
    return config_views.preview(db, actor, project, env, host=host, path=path)


@router.get(
    "/files/{path:path}",
    response_model=ConfigFile,
    response_model_exclude_unset=True,
    openapi_extra=perm("config.read"),
)
def get_file(project: str, env: str, path: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return config_views.get_file(db, actor, project, env, path)


@router.put(
    "/files/{path:path}",
    response_model=ConfigFile,
    response_model_exclude_unset=True,
    openapi_extra=perm("config.manage"),
)
def set_file(
    project: str, env: str, path: str, body: ConfigFileBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    """Create the file or change its content and/or mode; every version is kept."""
    return config_files.set_file(db, actor, project, env, path, body.content, body.mode)


@router.delete("/files/{path:path}", status_code=204, openapi_extra=perm("config.manage"))
def delete_file(project: str, env: str, path: str, db: DB, actor: CurrentActor) -> Response:
    config_files.delete_file(db, actor, project, env, path)
    return Response(status_code=204)


@router.put(
    "/overrides/{scope}/{path:path}",
    response_model=ConfigFile,
    response_model_exclude_unset=True,
    openapi_extra=perm("config.manage"),
)
def set_override(
    project: str,
    env: str,
    scope: str,
    path: str,
    body: ConfigOverrideBody,
    db: DB,
    actor: CurrentActor,
) -> dict[str, Any]:
    """``scope`` is ``label:NAME`` or ``host:NAME``: those hosts get ``content`` instead of
    the base file and/or the ``set`` key values."""
    return config_files.set_override(
        db, actor, project, env, path, scope, content=body.content, keys=body.set
    )


@router.delete(
    "/overrides/{scope}/{path:path}",
    response_model=ConfigFile,
    response_model_exclude_unset=True,
    openapi_extra=perm("config.manage"),
)
def delete_override(
    project: str, env: str, scope: str, path: str, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    return config_files.delete_override(db, actor, project, env, path, scope)


@router.get(
    "/history/{path:path}", response_model=list[ConfigVersion], openapi_extra=perm("config.read")
)
def history(project: str, env: str, path: str, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    """Every version, newest first: who, when, what changed (also deletions)."""
    return config_views.history(db, actor, project, env, path)


@router.get(
    "/diff/{path:path}",
    response_model=ConfigDiff,
    response_model_by_alias=True,
    openapi_extra=perm("config.read"),
)
def diff(
    project: str,
    env: str,
    path: str,
    db: DB,
    actor: CurrentActor,
    old: int | None = Query(None, ge=0, le=MAX_ID, alias="from"),
    new: int | None = Query(None, ge=1, le=MAX_ID, alias="to"),
) -> dict[str, Any]:
    """A unified diff between two versions (default: the newest and the one before)."""
    return config_views.diff(db, actor, project, env, path, old, new)
