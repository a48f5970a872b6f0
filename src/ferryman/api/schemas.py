"""Request bodies of the REST API (responses are plain dicts built by the services).

Every body rejects unknown fields and bounds every string, so bad input is a 422 with the path
of the offending field before anything runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from ferryman.api.paging import iso_only

Text200 = Field(max_length=200)


class _Body(BaseModel):
    # strict: a JSON true is a bool and 1 a number; 0 is not false, "22" not a port
    model_config = ConfigDict(extra="forbid", strict=True)


class _RefOrConfig(_Body):
    """A ref to deploy, or ``config_only`` (the live release again with the current config
    files)."""

    ref: str = Field(default="", max_length=200)
    config_only: bool = Field(
        default=False, description="ship the live release again with the current config files"
    )

    @model_validator(mode="after")
    def _ref_or_config(self) -> _RefOrConfig:
        if self.config_only and self.ref:
            raise PydanticCustomError("ref", "give a ref or config_only, not both")
        if not self.config_only and not self.ref:
            raise PydanticCustomError("ref", "ref: required (or config_only: true)")
        return self


class LoginBody(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    token_name: str = Field(default="cli", max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class SessionBody(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class DeployBody(_RefOrConfig):
    env: str = Field(min_length=1, max_length=64)
    check_ref: bool = Field(
        default=False,
        description="fetch the repository first and refuse (422, naming the ref) a ref it "
        "does not have, instead of queuing a deploy that fails later",
    )
    hosts: list[str] | None = Field(default=None, max_length=5000)
    not_before: Annotated[datetime | None, BeforeValidator(iso_only)] = Field(
        default=None, strict=False, description="start no earlier (UTC, ISO 8601)"
    )


class TicketDeployBody(_Body):
    schedule: bool = Field(
        default=False,
        description="queue now to start at the ticket's not_before (instead of refusing)",
    )


class RollbackBody(_Body):
    env: str = Field(min_length=1, max_length=64)
    to: str | None = Field(default=None, max_length=255)
    emergency: bool = Field(
        default=False, description="link switch only, every host at once, no hooks (masters)"
    )
    force: bool = Field(default=False, description="allow a release marked bad")
    force_migrations: bool = Field(
        default=False,
        description="cross irreversible database migrations (masters; needs a reason)",
    )
    reason: str | None = Field(
        default=None, max_length=500, description="why force_migrations (audited and notified)"
    )


class PasswordBody(_Body):
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class UserCreateBody(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    email: str = Field(default="", max_length=255)
    is_superuser: bool = False


class UserUpdateBody(_Body):
    is_active: bool | None = None
    is_superuser: bool | None = None
    password: str | None = Field(default=None, max_length=1024)
    email: str | None = Field(default=None, max_length=255)


class TokenBody(_Body):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=lambda: ["read", "write"], max_length=5)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class SpaceBody(_Body):
    name: str = Field(min_length=1, max_length=64)
    display_name: str = Field(
        default="", max_length=200, description="in any script, beside the slug (≤ 100)"
    )
    description: str = Field(default="", max_length=500)
    owner: str | None = Field(default=None, max_length=64)


class SpaceUpdateBody(_Body):
    display_name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool | None = None


class SpaceLimitsBody(_Body):
    """Owners lower these; raising them or allowing local repositories is a superuser's."""

    max_running: int | None = Field(
        default=None, ge=1, le=1000, description="deploys of the space running at once"
    )
    max_task_timeout: float | str | None = Field(
        default=None,
        description="longest task timeout its projects may ask for: seconds, or 30m, 1h",
    )
    allow_local_repos: bool | None = Field(
        default=None, description="file:// and local-path repositories (superusers)"
    )

    @model_validator(mode="after")
    def _short_duration(self) -> SpaceLimitsBody:
        if isinstance(self.max_task_timeout, str) and len(self.max_task_timeout) > 20:
            raise PydanticCustomError("duration", "max_task_timeout: like 3600, 30m or 1h")
        return self


class MemberBody(_Body):
    user: str = Field(min_length=1, max_length=64, description="user name or id")
    role: str = Field(min_length=1, max_length=16)


class RoleBody(_Body):
    role: str = Field(min_length=1, max_length=16)


class EnvironmentBody(_Body):
    space: str = Field(min_length=1, max_length=64, description="space name or id")
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)
    variables: dict[str, str] = Field(default_factory=dict, max_length=200)
    secrets: list[str] = Field(default_factory=list, max_length=200, description="masked names")
    requires_approval: bool = False


class EnvironmentUpdateBody(_Body):
    description: str | None = Field(default=None, max_length=500)
    variables: dict[str, str] | None = Field(default=None, max_length=200)
    secrets: list[str] | None = Field(default=None, max_length=200)
    requires_approval: bool | None = None


class ServerBody(_Body):
    space: str = Field(min_length=1, max_length=64, description="space name or id")
    name: str = Field(min_length=1, max_length=64)
    address: str = Field(min_length=1, max_length=255)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="", max_length=32)
    labels: list[str] = Field(default_factory=list, max_length=50)
    description: str = Field(default="", max_length=500)
    environments: list[str] = Field(
        default_factory=list, max_length=50, description="environments this server serves"
    )


class ServerUpdateBody(_Body):
    address: str | None = Field(default=None, min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, max_length=32)
    labels: list[str] | None = Field(default=None, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    environments: list[str] | None = Field(default=None, max_length=50)


class TrustBody(_Body):
    fingerprint: str = Field(default="", max_length=200, description="SHA256:… you expect")
    key: str = Field(default="", max_length=16000, description="or the public key itself")


class RepoHostTrustBody(TrustBody):
    host: str = Field(min_length=1, max_length=300, description="address[:port]")


class CopyBody(_Body):
    name: str = Field(min_length=1, max_length=64)
    space: str | None = Field(default=None, max_length=64, description="target space (name or id)")


class DetectBody(_Body):
    env: str = Field(min_length=1, max_length=64)


class TicketBody(_RefOrConfig):
    project: str = Field(min_length=1, max_length=130, description="id, name or SPACE:NAME")
    env: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20000)
    hosts: list[str] | None = Field(default=None, max_length=5000)
    not_before: Annotated[datetime | None, BeforeValidator(iso_only)] = Field(
        default=None, strict=False, description="ISO 8601"
    )
    draft: bool = False


class CommentBody(_Body):
    comment: str = Field(default="", max_length=2000)


class ReasonBody(_Body):
    reason: str = Field(default="", max_length=2000)


class TicketRollbackBody(_Body):
    title: str = Field(default="", max_length=200)
    to: str | None = Field(default=None, max_length=255)


class PromoteBody(_Body):
    env: str = Field(min_length=1, max_length=64, description="the environment to promote to")
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=20000)
    draft: bool = False


class RetryBody(_Body):
    failed_only: bool = False


class SecretBody(_Body):
    value: str = Field(max_length=64 * 1024)


class ConfigFileBody(_Body):
    content: str | None = Field(
        default=None, max_length=512 * 1024, description="the template (omit to keep it)"
    )
    mode: str | None = Field(
        default=None, max_length=6, description="octal, like 0600 (the default) or 0644"
    )


class ConfigOverrideBody(_Body):
    content: str | None = Field(
        default=None, max_length=512 * 1024, description="replaces the file for these hosts"
    )
    set: dict[str, str] = Field(
        default_factory=dict, max_length=500, description="KEY=value lines to set or add"
    )


class AgentBody(_Body):
    host: str = Field(min_length=1, max_length=300, description="the host's name or address")


class SummaryBody(_Body):
    channel: str = Field(min_length=1, max_length=64, description="a channel of the space")
    period: Literal["daily", "weekly"] = "daily"
    enabled: bool = True


class ChannelBody(_Body):
    kind: str = Field(description="email, dingtalk, wecom, feishu, slack or webhook")
    settings: dict[str, Any] = Field(
        description="url (+ secret) for IM and webhooks; host, port, tls, user, password, "
        "from, to, to_people for email"
    )
    language: str = Field(default="en", description="en or zh_CN")
    events: list[str] = Field(default_factory=list, max_length=50)
    projects: list[str] = Field(default_factory=list, max_length=500)
    envs: list[str] = Field(default_factory=list, max_length=50)
    enabled: bool = True


class HookSecretBody(_Body):
    secret: str = Field(default="", max_length=200, description="empty: generate one")
