"""Spaces, their members, environments and servers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ferryman.api.deps import DB, CurrentActor, perm
from ferryman.api.schemas import (
    EnvironmentBody,
    EnvironmentUpdateBody,
    MemberBody,
    RoleBody,
    ServerBody,
    ServerUpdateBody,
    SpaceBody,
    SpaceLimitsBody,
    SpaceUpdateBody,
)
from ferryman.services import inventory, spaces

router = APIRouter()


@router.get("/spaces", tags=["spaces"], openapi_extra=perm("space.list"))
def list_spaces(db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return spaces.list_spaces(db, actor)


@router.post("/spaces", status_code=201, tags=["spaces"], openapi_extra=perm("space.create"))
def create_space(body: SpaceBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """A new space with the seeded environments (dev, test, staging, production)."""
    return spaces.create_space(db, actor, body.name, body.description, body.owner)


@router.get("/spaces/{space}", tags=["spaces"], openapi_extra=perm("space.read"))
def get_space(space: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return spaces.get_space(db, actor, space)


@router.patch("/spaces/{space}", tags=["spaces"], openapi_extra=perm("space.manage"))
def update_space(space: str, body: SpaceUpdateBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return spaces.update_space(db, actor, space, **body.model_dump(exclude_unset=True))


@router.patch("/spaces/{space}/limits", tags=["spaces"], openapi_extra=perm("space.limit"))
def update_limits(space: str, body: SpaceLimitsBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Deploys running at once, the longest task timeout, local repositories. Owners may
    lower the limits; raising them or allowing local repositories needs a superuser."""
    return spaces.update_limits(db, actor, space, **body.model_dump(exclude_unset=True))


@router.get("/spaces/{space}/members", tags=["spaces"], openapi_extra=perm("member.read"))
def list_members(space: str, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return spaces.list_members(db, actor, space)


@router.post("/spaces/{space}/members", tags=["spaces"], openapi_extra=perm("member.manage"))
def add_member(space: str, body: MemberBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Add a member with a role, or change the role of one."""
    return spaces.set_member(db, actor, space, body.user, body.role)


@router.put("/spaces/{space}/members/{user}", tags=["spaces"], openapi_extra=perm("member.manage"))
def set_member(
    space: str, user: str, body: RoleBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    return spaces.set_member(db, actor, space, user, body.role)


@router.delete(
    "/spaces/{space}/members/{user}",
    status_code=204,
    tags=["spaces"],
    openapi_extra=perm("member.manage"),
)
def remove_member(space: str, user: str, db: DB, actor: CurrentActor) -> Response:
    spaces.remove_member(db, actor, space, user)
    return Response(status_code=204)


@router.get("/environments", tags=["environments"], openapi_extra=perm("environment.read"))
def list_environments(
    db: DB, actor: CurrentActor, space: str | None = None
) -> list[dict[str, Any]]:
    return inventory.list_environments(db, actor, space)


@router.post(
    "/environments",
    status_code=201,
    tags=["environments"],
    openapi_extra=perm("environment.manage"),
)
def create_environment(body: EnvironmentBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return inventory.create_environment(
        db,
        actor,
        body.space,
        body.name,
        description=body.description,
        variables=body.variables,
        secrets=body.secrets,
        requires_approval=body.requires_approval,
    )


@router.get("/environments/{env_id}", tags=["environments"], openapi_extra=perm("environment.read"))
def get_environment(env_id: int, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return inventory.get_environment(db, actor, env_id)


@router.patch(
    "/environments/{env_id}", tags=["environments"], openapi_extra=perm("environment.manage")
)
def update_environment(
    env_id: int, body: EnvironmentUpdateBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    return inventory.update_environment(db, actor, env_id, **body.model_dump(exclude_unset=True))


@router.delete(
    "/environments/{env_id}",
    status_code=204,
    tags=["environments"],
    openapi_extra=perm("environment.manage"),
)
def delete_environment(env_id: int, db: DB, actor: CurrentActor) -> Response:
    inventory.delete_environment(db, actor, env_id)
    return Response(status_code=204)


@router.get("/servers", tags=["servers"], openapi_extra=perm("server.read"))
def list_servers(
    db: DB, actor: CurrentActor, space: str | None = None, label: str | None = None
) -> list[dict[str, Any]]:
    return inventory.list_servers(db, actor, space, label)


@router.post("/servers", status_code=201, tags=["servers"], openapi_extra=perm("server.manage"))
def create_server(body: ServerBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return inventory.create_server(
        db,
        actor,
        body.space,
        body.name,
        body.address,
        port=body.port,
        user=body.user,
        labels=body.labels,
        description=body.description,
        environments=body.environments,
    )


@router.get("/servers/{server_id}", tags=["servers"], openapi_extra=perm("server.read"))
def get_server(server_id: int, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return inventory.get_server(db, actor, server_id)


@router.patch("/servers/{server_id}", tags=["servers"], openapi_extra=perm("server.manage"))
def update_server(
    server_id: int, body: ServerUpdateBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    return inventory.update_server(db, actor, server_id, **body.model_dump(exclude_unset=True))


@router.delete(
    "/servers/{server_id}", status_code=204, tags=["servers"], openapi_extra=perm("server.manage")
)
def delete_server(server_id: int, db: DB, actor: CurrentActor) -> Response:
    inventory.delete_server(db, actor, server_id)
    return Response(status_code=204)
