"""Response models of spaces, members, environments, servers, users, tokens and sign-in
(``api/views.py`` says how response models are used). A field that only some answers carry
(a member's ``is_active`` in lists, a token's secret when created) is optional and left out
where it does not apply."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ferryman.api.views import Role, View


class SpaceLimits(View):
    id: int
    name: str
    max_running: int = Field(description="deploys of the space running at once")
    max_task_timeout: float = Field(description="the longest task timeout, seconds")
    allow_local_repos: bool


class Space(View):
    id: int
    name: str
    display_name: str = Field(description="in any script ('' : the name is shown)")
    description: str
    is_active: bool
    created_at: str
    max_running: int
    max_task_timeout: float
    allow_local_repos: bool
    role: Role | None = Field(default=None, description="yours (lists; null: not a member)")


class MemberGroup(View):
    group: str
    role: Role


class Member(View):
    user_id: int
    username: str
    role: Role = Field(description="the role held: the highest of their own and their groups'")
    own_role: Role | None = Field(
        default=None, description="(lists) their own membership; null: through groups only"
    )
    groups: list[MemberGroup] | None = Field(
        default=None, description="(lists) the groups that give them a role here"
    )
    is_active: bool | None = Field(default=None, description="(lists)")


class Environment(View):
    id: int
    space_id: int
    name: str
    description: str
    variables: dict[str, str] = Field(description="secret ones as ***")
    secrets: list[str]
    requires_approval: bool


class Server(View):
    id: int
    space_id: int
    name: str
    address: str
    port: int
    user: str
    labels: list[str]
    description: str
    host: str = Field(description="what projects target: [user@]address[:port]")
    environments: list[str]
    host_key: list[str] = Field(description="SHA256 fingerprints of the pinned keys")


class User(View):
    """Superusers see every field; others see id, username and is_active of the users who
    share a space with them."""

    id: int
    username: str
    is_active: bool | None = None
    email: str | None = None
    is_superuser: bool | None = None
    language: str | None = None
    time_zone: str | None = Field(
        default=None, description="the IANA zone the web UI shows times in ('': the browser's)"
    )
    created_at: str | None = None


class Token(View):
    id: int
    name: str
    scopes: list[Literal["read", "write"]]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    token: str | None = Field(default=None, description="the secret: only when created")


class Me(View):
    id: int | None
    username: str
    is_superuser: bool
    scopes: list[str]


class PublicKey(View):
    public_key: str
    space: str | None = Field(default=None, description="whose key (a space's)")


class LoginToken(View):
    token: str
    username: str


class SessionStarted(View):
    username: str
    csrf_token: str = Field(description="send it as X-CSRF-Token with every change")


class SecretSummary(View):
    name: str
    env: str
    value: Literal["***"] = Field(description="never the value: reveal it apart (masters)")
    updated_by: str
    updated_at: str
    versions: int


class SecretValue(View):
    name: str
    value: str


class HookSecret(View):
    secret: str = Field(description="shown this once; stored encrypted")


class Channel(View):
    id: int
    name: str
    kind: Literal["email", "dingtalk", "wecom", "feishu", "slack", "webhook"]
    language: Literal["en", "zh_CN"]
    events: list[str]
    projects: list[str]
    envs: list[str]
    enabled: bool
    settings: dict[str, Any] = Field(description="secrets as ***")
    created_by: str


class Delivery(View):
    id: int
    event: str
    title: str | None
    status: str = Field(description="pending, sent or failed")
    attempts: int
    history: list[dict[str, Any]] = Field(description="each attempt: at, ok, error")
    created_at: str
    sent_at: str | None


class DeliveryQueued(View):
    delivery: int = Field(description="the test message's delivery id")


class Summary(View):
    space: str
    enabled: bool
    channel: str | None = Field(description="the space's channel it goes to")
    period: Literal["daily", "weekly"] | None
    last_period: str | None = Field(
        default=None, description="the last day (2026-11-29) or ISO week (2026-W48) sent"
    )
    last_sent_at: str | None = None


class AgentToken(View):
    host: str
    space: str
    token: str = Field(description="shown this once")
    signing_key: str | None = Field(description="optional HMAC key for the host's reports")
