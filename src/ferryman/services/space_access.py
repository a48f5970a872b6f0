"""What a deploy, a check or a detection may use of its space: the space's own key pair, the
host keys its masters pinned per server, and the space's policy (read-only here)."""

from __future__ import annotations

from sqlalchemy import select

from ferryman.config.settings import Settings
from ferryman.db.models import Server, Space
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.errors import NotFound
from ferryman.keys import ensure_space_key
from ferryman.pipeline.context import SpaceAccess


def space_access(db: Database, settings: Settings, space_id: int) -> SpaceAccess:
    with db.read() as s:
        space = s.get(Space, space_id)
        if space is None:
            raise NotFound(f"no space #{space_id}")
        host_keys = {
            validate.HostSpec(row.address, row.port).key: row.host_key
            for row in s.scalars(select(Server).where(Server.space_id == space_id))
            if row.host_key
        }
        uses_server_key = space.uses_server_key
        access = SpaceAccess(
            id=space.id,
            name=space.name,
            host_keys=host_keys,
            repo_known_hosts=space.repo_known_hosts,
            allow_local_repos=space.allow_local_repos,
            max_task_timeout=space.max_task_timeout,
        )
    key = ensure_space_key(settings, space_id, uses_server_key)
    return SpaceAccess(
        id=access.id,
        name=access.name,
        ssh_key=key,
        host_keys=access.host_keys,
        repo_known_hosts=access.repo_known_hosts,
        allow_local_repos=access.allow_local_repos,
        max_task_timeout=access.max_task_timeout,
    )
