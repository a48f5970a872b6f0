"""The database schema: the source of truth for projects, deploys, releases per host and locks.

Only ``ferryman.services`` writes these rows. Times are stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates
from sqlalchemy.sql.expression import false as sa_false
from sqlalchemy.types import TypeEngine

from ferryman.domain.statuses import DEPLOY_ACTIVE

# A deploy in one of these holds its project environment: no other is requested beside it.
ACTIVE_STATUSES = DEPLOY_ACTIVE


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite and MariaDB keep no zone)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):  # DATETIME keeps whole seconds by default
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# A long TEXT on MariaDB (TEXT there is 64 KiB).
LongText = Text().with_variant(Text(length=2**32 - 1), "mysql", "mariadb")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    language: Mapped[str] = mapped_column(String(16), default="", server_default="")  # web UI
    # the IANA zone the web UI shows times in; "" = the browser's
    time_zone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # local: a password here; ldap: checked against the directory at every sign-in
    source: Mapped[str] = mapped_column(String(16), default="local", server_default="local")


class LoginFailure(Base):
    """A failed sign-in, kept to rate-limit guessing by user name and by address."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(64), default="", index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["read", "write"])
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebSession(Base):
    """A browser session: the cookie's secret stored as SHA-256, with its CSRF token."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Space(Base):
    """A tenant (Walle's 空间): owns its environments, servers, projects and members."""

    __tablename__ = "spaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # a name in any script beside the slug (paths, URLs); empty: the slug is shown
    display_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    description: Mapped[str] = mapped_column(String(500), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The server's first key pair (``ssh/id_ed25519``) is the default space's; every other
    # space authenticates with its own (``ssh/spaces/<id>/id_ed25519``).
    uses_server_key: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Fair workers: deploys of this space running at once (owners lower, superusers raise)
    # and the longest task timeout its projects may ask for, in seconds.
    max_running: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    max_task_timeout: Mapped[float] = mapped_column(default=3600.0, server_default="3600")
    # file:// and local-path repositories (and submodules): off unless a superuser allows them.
    allow_local_repos: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Pinned host keys of repository hosts (known_hosts lines), managed by masters.
    repo_known_hosts: Mapped[str] = mapped_column(Text, default="", server_default="")


class SpaceMember(Base):
    __tablename__ = "space_members"
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserGroup(Base):
    """A group of users (Walle 2's 用户组): added to a space with a role, its members hold
    that role there (a member's own higher role wins)."""

    __tablename__ = "user_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserGroupMember(Base):
    __tablename__ = "user_group_members"
    group_id: Mapped[int] = mapped_column(
        ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SpaceGroup(Base):
    """A group added to a space with a role."""

    __tablename__ = "space_groups"
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Environment(Base):
    """An environment of a space (dev, test, staging, production, ...)."""

    __tablename__ = "environments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    variables: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    secrets: Mapped[list[str]] = mapped_column(JSON, default=list)  # names masked everywhere
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (UniqueConstraint("space_id", "name"),)


class Server(Base):
    """A target host of a space, referenced by name or label from projects."""

    __tablename__ = "servers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=22)
    user: Mapped[str] = mapped_column(String(64), default="")
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(String(500), default="")
    # The pinned host key(s), known_hosts key lines ("ssh-ed25519 AAAA…"); empty: the
    # install-wide known_hosts file (kept by the superuser) is consulted.
    host_key: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The environments of the space this server serves: a deploy touching it needs their
    # approval, whatever project or environment name it comes through.
    environments: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=True)
    __table_args__ = (UniqueConstraint("space_id", "name"),)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the git webhook secret (sealed); empty: webhooks are refused
    hook_secret: Mapped[str] = mapped_column(Text, default="", server_default="")
    display_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    # deleted: the row stays for its deploys, tickets and audit; its name is set free (NAME~ID)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (UniqueConstraint("space_id", "name"),)


class ProjectMember(Base):
    """A per-project role that overrides the member's role in the space."""

    __tablename__ = "project_members"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))


class Ticket(Base):
    """A release ticket (上线单): what to ship where, who asked, who approved, how it went."""

    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    env: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="deploy")  # deploy | rollback
    ref: Mapped[str] = mapped_column(String(200), default="")
    commit: Mapped[str] = mapped_column(String(64), default="")
    target_release: Mapped[str] = mapped_column(String(255), default="")
    hosts: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(24), default="draft", index=True)
    rollback_of: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)
    deploy_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_by_name: Mapped[str] = mapped_column(String(64), default="")
    reviewed_by_name: Mapped[str] = mapped_column(String(64), default="")
    review_comment: Mapped[str] = mapped_column(Text, default="")
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the approval covers: a digest of everything that decides what runs (commit, hooks,
    # hosts, paths, strategy, config-file versions). Empty on approvals made before 0013.
    approved_digest: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # the release request (POST /api/v1/project) it was made from, as asked; NULL otherwise
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Deploy(Base):
    """One deploy or rollback of a project environment; also the job the worker runs."""

    __tablename__ = "deploys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    env: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="deploy")  # deploy | rollback
    ref: Mapped[str] = mapped_column(String(200), default="")
    commit: Mapped[str] = mapped_column(String(64), default="")
    release_name: Mapped[str] = mapped_column(String(255), default="")
    target_release: Mapped[str] = mapped_column(String(255), default="")
    hosts: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # subset, or all
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    variables: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # the environment's
    secret_names: Mapped[list[str]] = mapped_column(JSON, default=list)  # of those, masked
    queue: Mapped[str] = mapped_column(String(64), default="default")  # workers pick queues
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str] = mapped_column(String(500), default="")  # set: stop it
    # the claim that runs it (``db/claims.py``, ``services/queue.py``): its holder token, the
    # fence of every write the run makes, and its lease, in the database's clock (no Python
    # default: inserts written against an older schema, as the migration tests do, leave it)
    claimed_by: Mapped[str] = mapped_column(String(200), server_default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retry_of: Mapped[int | None] = mapped_column(Integer, nullable=True)  # reuses its build
    # the config files to ship (sealed JSON, see services/config_files) and their versions
    config_bundle: Mapped[str] = mapped_column(LongText, default="", server_default="")
    config_versions: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    # a gray release's plan and progress (domain/rollout.Rollout), and what people asked of it
    rollout: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    rollout_request: Mapped[str] = mapped_column(String(16), default="", server_default="")
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # emergency, force
    # queued → running → success | failed; queued → cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    # "<project_id>:<env>" while active (ACTIVE_STATUSES), else NULL; unique, so the database
    # refuses a second active deploy of one environment (NULLs never collide, on all three)
    active_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Claim order: emergency rollbacks (0), rollbacks (10), then everything else (100).
    priority: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    requested_by_name: Mapped[str] = mapped_column(String(64), default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the project config as requested
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    worker: Mapped[str] = mapped_column(String(128), default="")  # who runs (ran) it: shown
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # when the retention job removed its log lines and command records (FERRYMAN_LOG_RETENTION)
    logs_pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_deploys_project_env", "project_id", "env"),
        Index("ix_deploys_claim", "status", "queue", "id"),
        # at 100,000 deploys (docs/benchmarks.md): the figures of a period (dashboard,
        # /stats) without reading every deploy: SQLite walks the space's projects,
        # PostgreSQL the period
        Index("ix_deploys_project_created", "project_id", "created_at"),
        Index("ix_deploys_created_at", "created_at"),
        Index("ux_deploys_active_key", "active_key", unique=True),
    )

    @validates("status")
    def _release_environment(self, _key: str, status: str) -> str:
        """Leaving the active states frees the environment in the same UPDATE."""
        if status not in ACTIVE_STATUSES:
            self.active_key = None
        return status


class DeployHost(Base):
    __tablename__ = "deploy_hosts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    previous_release: Mapped[str] = mapped_column(String(255), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    __table_args__ = (UniqueConstraint("deploy_id", "host"),)


class DeployStep(Base):
    """One command or task run on one host (or the deploy host when ``host`` is empty)."""

    __tablename__ = "deploy_steps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(300), default="")
    stage: Mapped[str] = mapped_column(String(32))
    command: Mapped[str] = mapped_column(LongText)
    exit_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output: Mapped[str] = mapped_column(LongText, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration: Mapped[float] = mapped_column(default=0.0)


class LogLine(Base):
    __tablename__ = "log_lines"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    host: Mapped[str] = mapped_column(String(300), default="")
    stage: Mapped[str] = mapped_column(String(32), default="")
    stream: Mapped[str] = mapped_column(String(8), default="")  # stdout | stderr | "" (ours)
    text: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_log_lines_deploy_id", "deploy_id", "id"),)


class Release(Base):
    """A release directory on one host: what exists there, as Ferryman made it."""

    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    env: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(255))
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id"))
    commit: Mapped[str] = mapped_column(String(64), default="")
    # complete: fully transferred; failed: partial, to be removed; removed: pruned/cleaned
    state: Mapped[str] = mapped_column(String(16), default="complete")
    bad: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("project_id", "env", "host", "name"),
        Index("ix_releases_lookup", "project_id", "env", "host"),
        # the kept (complete) and the bad releases of an environment, among every removed one
        Index("ix_releases_state", "project_id", "env", "state"),
        Index("ix_releases_bad", "project_id", "env", "bad"),
    )


class HostState(Base):
    """Which release is live on each host of a project environment."""

    __tablename__ = "host_state"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(300), primary_key=True)
    current_release: Mapped[str] = mapped_column(String(255), default="")
    deploy_id: Mapped[int | None] = mapped_column(ForeignKey("deploys.id"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Lock(Base):
    """A lease: held by one deploy until released or expired (heartbeats extend it)."""

    __tablename__ = "locks"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    deploy_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    holder: Mapped[str] = mapped_column(String(64), default="")
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300), default="")
    space_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    project_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class KeyValue(Base):
    """Small server-wide facts (the secret key's canary)."""

    __tablename__ = "server_facts"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Secret(Base):
    """A secret variable of a project environment; ``value`` is encrypted (``enc:…``)."""

    __tablename__ = "secrets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    env: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("project_id", "env", "name"),)


class SecretVersion(Base):
    """Every value a secret has had (encrypted), who set it and when."""

    __tablename__ = "secret_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_id: Mapped[int] = mapped_column(ForeignKey("secrets.id", ondelete="CASCADE"), index=True)
    value: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConfigFile(Base):
    """A config file of a project environment, shipped inside every release. ``data`` is the
    sealed JSON of its content and overrides; path and mode stay readable for listings."""

    __tablename__ = "config_files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    env: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))
    mode: Mapped[int] = mapped_column(Integer, default=0o600)
    data: Mapped[str] = mapped_column(LongText)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("project_id", "env", "path"),)


class ConfigVersion(Base):
    """Every version a config file has had (sealed like the file), kept after it is deleted."""

    __tablename__ = "config_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    env: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer)
    mode: Mapped[int] = mapped_column(Integer, default=0o600)
    data: Mapped[str] = mapped_column(LongText, default="")  # empty when deleted
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    change: Mapped[str] = mapped_column(String(300), default="")  # what this version changed
    changed_by: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("project_id", "env", "path", "version"),)


class AgentToken(Base):
    """A pull-mode host's own token (stored as SHA-256): it may only read and report that
    host's deploys, in that space."""

    __tablename__ = "agent_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(300))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (Index("ix_agent_tokens_space_host", "space_id", "host"),)


class AgentTask(Base):
    """What one pull-mode host is to do for one deploy: deploy a release, or roll back to
    one. ``pending`` (not its batch yet) → ``due`` → ``running`` → ``success`` | ``failed`` |
    ``rolled_back`` | ``skipped``; or ``unreachable`` / ``cancelled``."""

    __tablename__ = "agent_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"))
    space_id: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(16), default="deploy")  # deploy | rollback
    release: Mapped[str] = mapped_column(String(255), default="")
    previous: Mapped[str] = mapped_column(String(255), default="")  # reported by the host
    status: Mapped[str] = mapped_column(String(16), default="pending")
    phase: Mapped[str] = mapped_column(String(32), default="")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    # the host's claim of a running task (``db/claims.py``): its holder token, which the
    # host's reports carry (the fence), and until when it holds it (the run's deadline)
    claimed_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (
        Index("ix_agent_tasks_host_status", "host", "status"),
        Index("ix_agent_tasks_deploy", "deploy_id"),
    )


class NotifyChannel(Base):
    """Where a space's notifications go (email, DingTalk, WeCom, Feishu, Slack, a webhook).
    ``settings`` is sealed JSON (URLs carry tokens; secrets and passwords are inside)."""

    __tablename__ = "notify_channels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), default="en")
    events: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every event
    projects: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every project
    envs: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every environment
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("space_id", "name"),)


class NotifyDelivery(Base):
    """One message to one channel: a job, retried with backoff; every attempt is kept.
    ``status``: pending → sending (claimed) → sent | failed, or pending again to retry."""

    __tablename__ = "notify_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("notify_channels.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(64))
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the claim of a worker sending it (``db/claims.py``): only this holder records the attempt
    claimed_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (Index("ix_notify_deliveries_due", "status", "next_attempt_at"),)


class HookDelivery(Base):
    """A git webhook delivery already handled: the same delivery id again is a replay."""

    __tablename__ = "hook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    delivery: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("provider", "delivery"),)


class AnalysisMeasurement(Base):
    """One metric of a canary analysis in one interval (``strategy.analysis``): the values
    (None: none, or not finite), the verdict (pass, fail, error) and why."""

    __tablename__ = "analysis_measurements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"))
    interval_no: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(64))
    canary: Mapped[float | None] = mapped_column(Double, nullable=True)
    baseline: Mapped[float | None] = mapped_column(Double, nullable=True)
    verdict: Mapped[str] = mapped_column(String(8))
    detail: Mapped[str] = mapped_column(String(500), default="")
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (Index("ix_analysis_measurements_deploy", "deploy_id", "id"),)


class ReleaseMigrations(Base):
    """What a deploy's ``migrations:`` command listed after it switched (the database's
    migrations then, each reversible or not), with the release it switched to; ``ok`` False
    when the listing failed (``error`` says why): then nothing is known, and a rollback across
    it needs forcing."""

    __tablename__ = "release_migrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    env: Mapped[str] = mapped_column(String(64))
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"))
    release: Mapped[str] = mapped_column(String(255))
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    error: Mapped[str] = mapped_column(String(500), default="")
    applied: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[version, reversible]]
    rejected: Mapped[int] = mapped_column(Integer, default=0)  # lines that were not one
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    listed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (Index("ix_release_migrations_env", "project_id", "env", "id"),)


class DeployWatch(Base):
    """A post-deploy watch (``watch:``): after a deploy succeeded, its environment's health
    checks run again every ``interval`` seconds until ``deadline``. A row, not a timer: any
    worker claims a due one (``lease_until``, in the database's clock), so a watch survives
    any restart. ``status``: watching | passed | failed | ended (a newer deploy)."""

    __tablename__ = "deploy_watches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    env: Mapped[str] = mapped_column(String(64))
    release: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="watching")
    on_failure: Mapped[str] = mapped_column(String(16), default="notify")  # | rollback
    interval: Mapped[float] = mapped_column(Double, default=30.0)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(200), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(1000), default="")
    rollback_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (
        Index("ix_deploy_watches_due", "status", "next_check_at"),
        Index("ix_deploy_watches_env", "project_id", "env", "status"),
    )


class SpaceSummary(Base):
    """A space's scheduled summary (报表汇总): deploys, failures, rollbacks, durations and
    the top failing projects of each day or ISO week, sent to one of its channels.
    ``last_period`` is the claim: a worker sends a period only after moving it there with a
    conditional update, so two workers never both send one."""

    __tablename__ = "space_summaries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), unique=True)
    channel: Mapped[str] = mapped_column(String(64))  # a notify channel of the space, by name
    period: Mapped[str] = mapped_column(String(8), default="daily")  # daily | weekly
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_period: Mapped[str] = mapped_column(String(16), default="")  # 2026-11-29, 2026-W48
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
