"""Response models of the REST API: what each route returns, declared in the OpenAPI document.

The services build plain dicts; a route declares one of these as its ``response_model`` and
FastAPI checks the dict against it on the way out. Every model forbids keys it does not name,
so a service that grows a field without a model change fails its tests instead of shipping an
undocumented key. Statuses and kinds are ``Literal`` (enums in the schema). Free-form parts (a
deploy's stages and rollout state, a project's configuration) stay objects.

The CLI's ``--json`` prints these same documents; ``tests/cli`` validates them against the
schemas the running server declares."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DeployStatus = Literal["queued", "running", "paused", "success", "failed", "cancelled"]
DeployKind = Literal["deploy", "rollback", "config"]
TicketStatus = Literal[
    "draft",
    "pending_approval",
    "approved",
    "rejected",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
]
TicketKind = Literal["deploy", "rollback", "config"]
Role = Literal["owner", "master", "developer", "reporter"]


class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeployHost(View):
    host: str
    status: str = Field(description="pending, running, success, failed, reverted, …")
    previous_release: str = Field(description="what the host served before ('' on a first)")
    error: str = Field(description="why it failed ('' when it did not), secrets masked")


class Deploy(View):
    """A deploy, rollback or config-only deploy: what was asked, where it stands, how it
    ended. ``stages`` (name, status, done/total hosts, duration), ``rollout`` (a gray
    release's batches) and ``error`` (code, message, host, stage, …) are objects."""

    id: int
    project: str
    env: str
    kind: DeployKind
    ref: str | None
    commit: str | None
    release: str | None = Field(description="the release it ships or rolls back to")
    status: DeployStatus
    requested_by: str | None
    ticket_id: int | None
    queue: str | None
    retry_of: int | None
    not_before: str | None
    hosts_selected: list[str] | None = Field(description="the hosts asked for (null: all)")
    stages: list[dict[str, Any]] | None
    rollout: dict[str, Any] | None
    rollout_request: str | None
    options: dict[str, Any]
    error: dict[str, Any] | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    hosts: list[DeployHost] | None = Field(
        default=None, description="per host (one deploy; not in lists)"
    )
    steps: int | None = Field(default=None, description="commands recorded (one deploy)")


class LogLine(View):
    id: int = Field(description="the cursor: ask for lines after it")
    ts: str
    host: str
    stage: str
    stream: str
    text: str


class LogPage(View):
    deploy_id: int
    status: DeployStatus
    lines: list[LogLine]
    next: int = Field(description="the cursor for the following page")
    more: bool = Field(description="whether a following page may have lines")


class Step(View):
    host: str
    stage: str
    command: str
    exit_status: int | None
    output: str
    started_at: str
    duration: float | None


class Watch(View):
    """A post-deploy watch (``watch:``): health checks after the deploy, until ``deadline``."""

    id: int
    deploy_id: int
    env: str
    release: str
    status: Literal["watching", "passed", "failed", "ended"]
    on_failure: Literal["notify", "rollback"]
    deadline: str | None
    checks: int = Field(description="rounds of checks so far")
    reason: str = Field(description="why it failed or ended")
    rollback_id: int | None = Field(description="the rollback it queued (on_failure: rollback)")
    ended_at: str | None


class Ticket(View):
    id: int
    space_id: int
    project_id: int
    project: str | None
    env: str
    kind: TicketKind
    ref: str | None
    commit: str | None
    target_release: str | None
    hosts: list[str] | None
    title: str
    description: str
    not_before: str | None
    status: TicketStatus
    rollback_of: int | None
    deploy_id: int | None
    created_by: str | None
    reviewed_by: str | None
    review_comment: str | None
    reviewed_at: str | None
    created_at: str
    updated_at: str
    your_role: Role | Literal["super"] | None = Field(
        default=None, description="your role in its project (one ticket)"
    )


class Check(View):
    host: str
    check: str
    ok: bool
    detail: str


class CheckReport(View):
    project: str
    env: str
    ok: bool
    checks: list[Check]


class Project(View):
    id: int
    name: str
    display_name: str = Field(description="in any script ('' : the name is shown)")
    space_id: int
    space: str | None
    repo: str | None
    environments: list[str]
    updated_at: str


class ProjectDetail(Project):
    config: dict[str, Any] = Field(description="the project YAML as JSON")


class AppliedProject(Project):
    created: bool = Field(description="true: a new project; false: its configuration replaced")


class ConfigChange(View):
    path: str = Field(description="like environments/production/keep_releases")
    before: Any = Field(description="null: not set before")
    after: Any = Field(description="null: not set after")


class ApplyPlan(View):
    """What ``POST /projects?dry_run=true`` would do; nothing was written."""

    created: bool = Field(description="true: it would create the project")
    id: int | None = Field(description="null when the project would be new")
    name: str
    display_name: str
    space_id: int
    space: str | None
    repo: str | None
    environments: list[str]
    updated_at: str
    changes: list[ConfigChange] = Field(description="every key that would change (none: unchanged)")


class PreviewHost(View):
    host: str
    release: str | None = Field(description="what it serves now (null: nothing yet)")
    commit: str


class PreviewChange(View):
    from_: str | None = Field(alias="from", description="the commit these hosts run now")
    hosts: list[str]
    commits: list[dict[str, Any]]
    files: list[dict[str, str]] = Field(description="status and path of each changed file")
    truncated: bool


class TicketPreview(View):
    """What approving a ticket would ship. ``config``: each config file, its version now on
    the hosts and the one it would ship."""

    ticket_id: int
    kind: TicketKind
    env: str
    hosts: list[PreviewHost]
    target: str = Field(description="the commit (or release, for a rollback) it ships")
    changes: list[PreviewChange]
    config: list[dict[str, Any]]
    migrations: dict[str, Any] | None = Field(
        default=None,
        description="database migrations its rollback (or its deploy of code an earlier release "
        "shipped) would cross, as in the releases answer's `rollback_crosses`: release, crossed "
        "[{version, reversible}], irreversible, unknown, blocked, basis",
    )
