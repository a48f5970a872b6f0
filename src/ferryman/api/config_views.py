"""Response models of config files, the audit log, statistics, repository refs, releases
and host keys (``api/views.py`` says how response models are used)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ferryman.api.migration_views import MigrationCrossing, ReleaseMigrations
from ferryman.api.views import Role, View


class ConfigOverride(View):
    scope: str = Field(description="label:NAME or host:NAME")
    content: str | None
    set: dict[str, str]


class ConfigFile(View):
    """A config file: its summary (lists, writes), with the template and overrides when one
    file is read. ``missing``: declared by the project's YAML and not set yet."""

    path: str
    declared: bool
    mode: str | None = None
    version: int | None = None
    updated_by: str | None = None
    updated_at: str | None = None
    missing: bool | None = None
    overrides: list[str] | list[ConfigOverride] | None = None
    content: str | None = None
    references: list[str] | None = None
    secrets: list[str] | None = None


class ConfigVersion(View):
    version: int
    mode: str
    deleted: bool
    change: str
    changed_by: str
    changed_at: str


class ConfigDiff(View):
    path: str
    from_: int | None = Field(alias="from", serialization_alias="from")
    to: int | None
    diff: str


class ConfigPreview(View):
    host: str
    path: str
    mode: str
    overrides: list[str]
    content: str = Field(description="rendered, secret values as ***")
    at_deploy: list[str] = Field(description="variables filled in at deploy time")
    unknown: list[str] = Field(description="variables nobody defines, left as written")


class AuditEntry(View):
    id: int
    ts: str
    actor: str
    action: str
    target: str
    ip: str
    space_id: int | None
    project_id: int | None
    detail: dict[str, Any] | None


class Stats(View):
    period: str = Field(description="day or week")
    since: str
    until: str
    series: list[dict[str, Any]] = Field(description="per period, space, project, env")
    total: dict[str, Any] = Field(description="deploys, rollbacks, successes, failures, …")


class ProjectMember(View):
    user_id: int
    username: str
    role: Role


class Refs(View):
    branch: str | None = Field(description="whose commits are listed")
    branches: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    commits: list[dict[str, Any]]


class HostReleases(View):
    host: str
    live: str | None
    releases: list[str]
    actual: str | None = Field(default=None, description="where it really points (verify)")
    drift: str | None = None
    damaged: dict[str, str] | None = None
    notes: dict[str, str] | None = None


class Releases(View):
    project: str
    env: str
    hosts: list[HostReleases]
    bad: list[str] = Field(description="releases of aborted rollouts: never rolled back to")
    migrations: dict[str, ReleaseMigrations] | None = Field(
        default=None, description="per release: migrations it brought in, what going back crosses"
    )
    rollback_crosses: MigrationCrossing | None = Field(
        default=None, description="what a rollback to the previous release would cross"
    )


class PresentedKey(View):
    """What a server presents now, beside what is pinned for it."""

    server: str
    host: str
    presented: str | None = Field(description="SHA256 fingerprint (null: unreachable)")
    algorithm: str | None
    error: str | None = Field(description="why it could not be read")
    pinned: list[str]


class RepoHostKey(View):
    """A repository host key: ``fingerprint`` when pinned, ``presented`` when only shown."""

    host: str
    algorithm: str
    fingerprint: str | None = None
    presented: str | None = None
