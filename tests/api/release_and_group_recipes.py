"""Request recipes (``world.RECIPES``) for the release requests (``/project``), project
deletion and user groups: each builds what it needs afresh, as the world's own do."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

from ferryman.services import groups, release_requests
from ferryman.services.audit import SYSTEM

if TYPE_CHECKING:
    from tests.api.world import World

P = "/api/v1"
SPACE = "acme"  # world.SPACE
Recipe = Any


def new_release_request(w: World, by: str = "author") -> int:
    creator = w.actors[by] if by in w.actors else w.actors["author"]
    made = asyncio.run(
        release_requests.create(
            w.db, w.settings, creator, w.new_project(), "staging", "v1", {}, title="release"
        )
    )
    return int(made["id"])


_groups = itertools.count(1)


def new_group(w: World, space: str = "") -> str:
    """A fresh group with one member (the world's author), in ``space`` as developers."""
    name = f"group{next(_groups)}"
    groups.create_group(w.db, SYSTEM, name)
    groups.add_member(w.db, SYSTEM, name, w.actors["author"].username)
    if space:
        groups.set_space_group(w.db, SYSTEM, space, name, "developer")
    return name


RECIPES: dict[tuple[str, str], Recipe] = {
    ("GET", "/api/v1/groups"): lambda w, r: ("GET", f"{P}/groups", None),
    ("POST", "/api/v1/groups"): lambda w, r: (
        "POST",
        f"{P}/groups",
        {"name": f"made{next(_groups)}", "display_name": "运维组"},
    ),
    ("GET", "/api/v1/groups/{group}"): lambda w, r: ("GET", f"{P}/groups/{new_group(w)}", None),
    ("PATCH", "/api/v1/groups/{group}"): lambda w, r: (
        "PATCH",
        f"{P}/groups/{new_group(w)}",
        {"name": f"renamed{next(_groups)}", "description": "运维"},
    ),
    ("DELETE", "/api/v1/groups/{group}"): lambda w, r: (
        "DELETE",
        f"{P}/groups/{new_group(w)}",
        None,
    ),
    ("PUT", "/api/v1/groups/{group}/members/{user}"): lambda w, r: (
        "PUT",
        f"{P}/groups/{new_group(w)}/members/{w.new_user()}",
        None,
    ),
    ("DELETE", "/api/v1/groups/{group}/members/{user}"): lambda w, r: (
        "DELETE",
        f"{P}/groups/{new_group(w)}/members/{w.actors['author'].username}",
        None,
    ),
    ("GET", "/api/v1/spaces/{space}/groups"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/groups",
        None,
    ),
    ("PUT", "/api/v1/spaces/{space}/groups/{group}"): lambda w, r: (
        "PUT",
        f"{P}/spaces/{SPACE}/groups/{new_group(w)}",
        {"role": "developer"},
    ),
    ("DELETE", "/api/v1/spaces/{space}/groups/{group}"): lambda w, r: (
        "DELETE",
        f"{P}/spaces/{SPACE}/groups/{new_group(w, SPACE)}",
        None,
    ),
    ("DELETE", "/api/v1/projects/{project}"): lambda w, r: (
        "DELETE",
        f"{P}/projects/{w.new_project()}",
        None,
    ),
    ("POST", "/api/v1/project"): lambda w, r: (
        "POST",
        f"{P}/project",
        {"project": w.new_project(), "env": "staging", "version": "v1"},
    ),
    ("GET", "/api/v1/project/{request_id}"): lambda w, r: (
        "GET",
        f"{P}/project/{new_release_request(w)}",
        None,
    ),
    ("PUT", "/api/v1/project/{request_id}"): lambda w, r: (
        "PUT",
        f"{P}/project/{new_release_request(w, by=w.creator_for(r))}",
        {"title": "release, changed"},
    ),
    ("DELETE", "/api/v1/project/{request_id}"): lambda w, r: (
        "DELETE",
        f"{P}/project/{new_release_request(w, by=w.creator_for(r))}",
        None,
    ),
}
