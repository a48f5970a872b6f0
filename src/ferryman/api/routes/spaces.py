"""Spaces, their members, environments and servers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ferryman.api.deps import DB, CurrentActor, Id, perm
from ferryman.api.paging import Page, PerPage, page_of, paged
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
from ferryman.api.team_views import Environment, Member, Server, Space, SpaceLimits
from ferryman.db.session import Database
from ferryman.errors import NotFound
from ferryman.services import inventory, spaces
from ferryman.services.audit import Actor

router = APIRouter()


@router.get(
    "/spaces",
    response_model=list[Space],
    tags=["spaces"],
    openapi_extra=perm("space.list") | paged("spaces"),
)
def list_spaces(
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[dict[str, Any]]:
    return page_of(request, response, spaces.list_spaces(db, actor), page, per_page)


@router.post(
    "/spaces",
    status_code=201,
    response_model=Space,
    response_model_exclude_unset=True,
    tags=["spaces"],
    openapi_extra=perm("space.create"),
)
def create_space(body: SpaceBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """A new space with the seeded environments (dev, test, staging, production)."""
    return spaces.create_space(
        db, actor, body.name, body.description, body.owner, display_name=body.display_name
    )


@router.get(
    "/spaces/{space}",
    response_model=Space,
    response_model_exclude_unset=True,
    tags=["spaces"],
    openapi_extra=perm("space.read"),
)
def get_space(space: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return spaces.get_space(db, actor, space)


@router.patch(
    "/spaces/{space}",
    response_model=Space,
    response_model_exclude_unset=True,
    tags=["spaces"],
    openapi_extra=perm("space.manage"),
)
def update_space(space: str, body: SpaceUpdateBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return spaces.update_space(db, actor, space, **body.model_dump(exclude_unset=True))


@router.patch(
    "/spaces/{space}/limits",
    response_model=SpaceLimits,
    tags=["spaces"],
    openapi_extra=perm("space.limit"),
)
def update_limits(space: str, body: SpaceLimitsBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Deploys running at once, the longest task timeout, local repositories. Owners may
    lower the limits; raising them or allowing local repositories needs a superuser."""
    return spaces.update_limits(db, actor, space, **body.model_dump(exclude_unset=True))


@router.get(
    "/spaces/{space}/members",
    response_model=list[Member],
    response_model_exclude_unset=True,
    tags=["spaces"],
    openapi_extra=perm("member.read") | paged("members"),
)
def list_members(
    space: str,
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[dict[str, Any]]:
    return page_of(request, response, spaces.list_members(db, actor, space), page, per_page)


@router.post(
    "/spaces/{space}/members",
    response_model=Member,
    response_model_exclude_unset=True,
    tags=["spaces"],
    openapi_extra=perm("member.manage"),
)
def add_member(space: str, body: MemberBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Add a member with a role, or change the role of one."""
    return spaces.set_member(db, actor, space, body.user, body.role)


@router.put(
    "/spaces/{space}/members/{user}",
    response_model=Member,
    response_model_exclude_unset=True,
    tags=["spaces"],
    openapi_extra=perm("member.manage"),
)
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


@router.get(
    "/environments",
    response_model=list[Environment],
    tags=["environments"],
    openapi_extra=perm("environment.read") | paged("environments"),
)
def list_environments(
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    space: str | None = None,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[dict[str, Any]]:
    rows = inventory.list_environments(db, actor, space)
    return page_of(request, response, rows, page, per_page)


@router.post(
    "/environments",
    status_code=201,
    response_model=Environment,
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


@router.get(
    "/environments/{env_id}",
    deprecated=True,
    response_model=Environment,
    tags=["environments"],
    openapi_extra=perm("environment.read"),
)
def get_environment(env_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return inventory.get_environment(db, actor, env_id)


@router.patch(
    "/environments/{env_id}",
    deprecated=True,
    response_model=Environment,
    tags=["environments"],
    openapi_extra=perm("environment.manage"),
)
def update_environment(
    env_id: Id, body: EnvironmentUpdateBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    return inventory.update_environment(db, actor, env_id, **body.model_dump(exclude_unset=True))


@router.delete(
    "/environments/{env_id}",
    deprecated=True,
    status_code=204,
    tags=["environments"],
    openapi_extra=perm("environment.manage"),
)
def delete_environment(env_id: Id, db: DB, actor: CurrentActor) -> Response:
    inventory.delete_environment(db, actor, env_id)
    return Response(status_code=204)


@router.get(
    "/servers",
    response_model=list[Server],
    tags=["servers"],
    openapi_extra=perm("server.read") | paged("servers"),
)
def list_servers(
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    space: str | None = None,
    label: str | None = None,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[dict[str, Any]]:
    rows = inventory.list_servers(db, actor, space, label)
    return page_of(request, response, rows, page, per_page)


@router.post(
    "/servers",
    status_code=201,
    response_model=Server,
    tags=["servers"],
    openapi_extra=perm("server.manage"),
)
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


@router.get(
    "/servers/{server_id}",
    deprecated=True,
    response_model=Server,
    tags=["servers"],
    openapi_extra=perm("server.read"),
)
def get_server(server_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return inventory.get_server(db, actor, server_id)


@router.patch(
    "/servers/{server_id}",
    deprecated=True,
    response_model=Server,
    tags=["servers"],
    openapi_extra=perm("server.manage"),
)
def update_server(
    server_id: Id, body: ServerUpdateBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    return inventory.update_server(db, actor, server_id, **body.model_dump(exclude_unset=True))


@router.delete(
    "/servers/{server_id}",
    deprecated=True,
    status_code=204,
    tags=["servers"],
    openapi_extra=perm("server.manage"),
)
def delete_server(server_id: Id, db: DB, actor: CurrentActor) -> Response:
    inventory.delete_server(db, actor, server_id)
    return Response(status_code=204)


# --- the canonical addresses: environments and servers by space and name -------------------
# (``/environments/{env_id}`` and ``/servers/{server_id}`` are deprecated aliases, kept for one
# release: docs/api.md, CHANGELOG)


def _environment_id(db: Database, actor: Actor, space: str, name: str) -> int:
    for row in inventory.list_environments(db, actor, space):
        if row["name"] == name:
            return int(row["id"])
    raise NotFound(f"space {space} has no environment {name!r}")


def _server_id(db: Database, actor: Actor, space: str, name: str) -> int:
    for row in inventory.list_servers(db, actor, space, None):
        if row["name"] == name:
            return int(row["id"])
    raise NotFound(f"space {space} has no server {name!r}")


@router.get(
    "/spaces/{space}/environments/{name}",
    response_model=Environment,
    tags=["environments"],
    openapi_extra=perm("environment.read"),
)
def get_space_environment(space: str, name: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return inventory.get_environment(db, actor, _environment_id(db, actor, space, name))


@router.patch(
    "/spaces/{space}/environments/{name}",
    response_model=Environment,
    tags=["environments"],
    openapi_extra=perm("environment.manage"),
)
def update_space_environment(
    space: str, name: str, body: EnvironmentUpdateBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    env_id = _environment_id(db, actor, space, name)
    return inventory.update_environment(db, actor, env_id, **body.model_dump(exclude_unset=True))


@router.delete(
    "/spaces/{space}/environments/{name}",
    status_code=204,
    tags=["environments"],
    openapi_extra=perm("environment.manage"),
)
def delete_space_environment(space: str, name: str, db: DB, actor: CurrentActor) -> Response:
    inventory.delete_environment(db, actor, _environment_id(db, actor, space, name))
    return Response(status_code=204)


@router.get(
    "/spaces/{space}/servers/{name}",
    response_model=Server,
    tags=["servers"],
    openapi_extra=perm("server.read"),
)
def get_space_server(space: str, name: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return inventory.get_server(db, actor, _server_id(db, actor, space, name))


@router.patch(
    "/spaces/{space}/servers/{name}",
    response_model=Server,
    tags=["servers"],
    openapi_extra=perm("server.manage"),
)
def update_space_server(
    space: str, name: str, body: ServerUpdateBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    server_id = _server_id(db, actor, space, name)
    return inventory.update_server(db, actor, server_id, **body.model_dump(exclude_unset=True))


@router.delete(
    "/spaces/{space}/servers/{name}",
    status_code=204,
    tags=["servers"],
    openapi_extra=perm("server.manage"),
)
def delete_space_server(space: str, name: str, db: DB, actor: CurrentActor) -> Response:
    inventory.delete_server(db, actor, _server_id(db, actor, space, name))
    return Response(status_code=204)
