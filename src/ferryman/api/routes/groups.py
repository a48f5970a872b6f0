"""User groups (用户组): superusers make them and choose their members; a space's owners add
a group to the space with a role, which its members then hold there."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ferryman.api.deps import DB, CurrentActor, perm
from ferryman.api.views import Role, View
from ferryman.services import groups

router = APIRouter(tags=["groups"])


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=64, description="letters, digits, . _ -")
    display_name: str = Field(default="", max_length=200, description="in any script (≤ 100)")
    description: str = Field(default="", max_length=500)


class SpaceGroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Role


class GroupSpace(View):
    space: str
    role: Role


class Group(View):
    id: int
    name: str
    display_name: str
    description: str
    members: list[str] = Field(description="user names")
    spaces: list[GroupSpace] = Field(description="the spaces it is in (those you see)")
    created_at: str


class SpaceGroup(View):
    group: str
    display_name: str
    role: Role
    members: list[str]


@router.get("/groups", response_model=list[Group], openapi_extra=perm("group.read"))
def list_groups(db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return groups.list_groups(db, actor)


@router.post("/groups", status_code=201, response_model=Group, openapi_extra=perm("group.manage"))
def create_group(body: GroupBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return groups.create_group(db, actor, body.name, body.display_name, body.description)


@router.get("/groups/{group}", response_model=Group, openapi_extra=perm("group.read"))
def get_group(group: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return groups.get_group(db, actor, group)


class GroupChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = Field(default=None, min_length=1, max_length=64, description="a new name")
    display_name: str | None = Field(default=None, max_length=200, description="in any script")
    description: str | None = Field(default=None, max_length=500)


@router.patch("/groups/{group}", response_model=Group, openapi_extra=perm("group.manage"))
def update_group(group: str, body: GroupChange, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Rename it, or change its display name or description; members and spaces follow it."""
    return groups.update_group(
        db,
        actor,
        group,
        name=body.name,
        display_name=body.display_name,
        description=body.description,
    )


@router.delete("/groups/{group}", status_code=204, openapi_extra=perm("group.manage"))
def delete_group(group: str, db: DB, actor: CurrentActor) -> Response:
    """Its members lose what it gave them, in every space, at once."""
    groups.delete_group(db, actor, group)
    return Response(status_code=204)


@router.put(
    "/groups/{group}/members/{user}", response_model=Group, openapi_extra=perm("group.manage")
)
def add_member(group: str, user: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return groups.add_member(db, actor, group, user)


@router.delete(
    "/groups/{group}/members/{user}", status_code=204, openapi_extra=perm("group.manage")
)
def remove_member(group: str, user: str, db: DB, actor: CurrentActor) -> Response:
    groups.remove_member(db, actor, group, user)
    return Response(status_code=204)


@router.get(
    "/spaces/{space}/groups", response_model=list[SpaceGroup], openapi_extra=perm("member.read")
)
def list_space_groups(space: str, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return groups.list_space_groups(db, actor, space)


@router.put(
    "/spaces/{space}/groups/{group}", response_model=SpaceGroup, openapi_extra=perm("member.manage")
)
def set_space_group(
    space: str, group: str, body: SpaceGroupBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    """Add the group to the space with a role (or change its role there)."""
    return groups.set_space_group(db, actor, space, group, body.role)


@router.delete(
    "/spaces/{space}/groups/{group}", status_code=204, openapi_extra=perm("member.manage")
)
def remove_space_group(space: str, group: str, db: DB, actor: CurrentActor) -> Response:
    groups.remove_space_group(db, actor, space, group)
    return Response(status_code=204)
