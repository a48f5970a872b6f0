"""The project configuration: one schema for the YAML file, the REST API and (later) the UI.

Unknown keys are errors, and every error names its path, e.g.
``environments/production/hosts/2: not a host: 'a b'``. ``docs/config.md`` is the reference; its
commented example is loaded by the tests.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from ferryman.config import yamlsafe
from ferryman.domain import config_files, rollout, validate
from ferryman.errors import ConfigError, ValidationError


def _as(fn: Any, kind: str) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise PydanticCustomError(kind, "expected a string, got {value!r}", {"value": value})
        try:
            return fn(value)
        except ValidationError as exc:
            raise PydanticCustomError(kind, str(exc.message)) from None

    return check


Host = Annotated[
    validate.HostSpec,
    PlainValidator(_as(validate.host, "host")),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "[user@]address[:port]"}),
]
AbsPath = Annotated[str, PlainValidator(_as(validate.absolute_path, "path"))]
RelPath = Annotated[str, PlainValidator(_as(validate.relative_path, "path"))]
Name = Annotated[str, PlainValidator(_as(validate.name, "name"))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tasks(_Strict):
    """Hook scripts. Each runs as one bash script with ``set -euo pipefail``."""

    pre_deploy: str = ""  # deploy host, in the workspace, before checkout
    post_deploy: str = ""  # deploy host, in the checked-out tree: the build
    pre_release: str = ""  # every target, in the new release dir, before the switch
    post_release: str = ""  # every target, after the switch


Label = Annotated[str, PlainValidator(_as(validate.label, "label"))]


Duration = Annotated[
    float,
    PlainValidator(lambda v: _duration(v)),
    WithJsonSchema({"type": ["string", "number"], "description": "30s, 5m, 1h or seconds"}),
]


def _duration(value: Any) -> float:
    try:
        return rollout.duration(value)
    except ValidationError as exc:
        raise PydanticCustomError("duration", exc.message) from None


class HealthCheck(_Strict):
    """One check per host after its switch: an HTTP GET from the deploy host (``{HOST}`` is
    the host's address), a TCP connect, or a command on the host. Retried until it passes."""

    http: str | None = None
    tcp: str | None = None
    command: str | None = None
    expect: int | None = Field(default=None, ge=100, le=599)  # status; default any 2xx
    contains: str | None = None  # the body must contain this
    timeout: Duration = 5.0
    retries: int = Field(default=3, ge=1, le=100)
    interval: Duration = 2.0

    @model_validator(mode="after")
    def _one_kind(self) -> HealthCheck:
        kinds = [k for k in ("http", "tcp", "command") if getattr(self, k)]
        if len(kinds) != 1:
            raise PydanticCustomError("health_check", "give exactly one of http, tcp, command")
        if self.http and not self.http.startswith(("http://", "https://")):
            raise PydanticCustomError("health_check", "http: an http:// or https:// URL")
        if self.tcp and ":" not in self.tcp:
            raise PydanticCustomError("health_check", "tcp: HOST:PORT")
        if (self.expect or self.contains) and not self.http:
            raise PydanticCustomError("health_check", "expect and contains are for http checks")
        if not 0 < self.timeout <= 600:
            raise PydanticCustomError("health_check", "timeout: more than 0, at most 10m")
        return self

    @property
    def kind(self) -> str:
        return "http" if self.http else "tcp" if self.tcp else "command"

    @property
    def target(self) -> str:
        return self.http or self.tcp or self.command or ""


class Strategy(_Strict):
    """A gray release: the canary first, then batches, with pauses and a failure budget."""

    canary: list[str] | int | str | None = None  # hosts, "label:NAME", a count or "10%"
    batches: list[int | str] | int | str = "100%"
    pause: str = "none"  # after the canary batch: manual | none | a duration (5m)
    between_batches: Duration = 0.0
    max_failed: int | str = 0  # hosts (or %) allowed to fail before the rollout aborts
    on_failure: Literal["rollback", "halt"] = "rollback"
    lb_out: str = ""  # on the deploy host, per host, before its switch ({HOST})
    lb_in: str = ""  # on the deploy host, per host, once it is healthy

    @model_validator(mode="after")
    def _valid(self) -> Strategy:
        try:
            if self.pause not in ("manual", "none"):
                rollout.duration(self.pause, "strategy/pause")
            rollout.amount(self.max_failed, 100, "strategy/max_failed")
            steps = self.batches if isinstance(self.batches, list) else [self.batches]
            for step in steps:
                rollout.amount(step, 100, "strategy/batches")
            if isinstance(self.canary, int | str) and not (
                isinstance(self.canary, str) and self.canary.startswith("label:")
            ):
                rollout.amount(self.canary, 100, "strategy/canary")
        except ValidationError as exc:
            raise PydanticCustomError("strategy", exc.message) from None
        if not isinstance(self.batches, list) and rollout.amount(self.batches, 100, "b") == 0:
            raise PydanticCustomError("strategy", "batches: at least one host per batch")
        return self

    @property
    def pause_seconds(self) -> float | None:
        """None: wait for a person; 0: no pause; else seconds."""
        if self.pause == "manual":
            return None
        return 0.0 if self.pause == "none" else rollout.duration(self.pause)


class Requires(_Strict):
    """What every host must have before a rollout: commands on the PATH, installed packages."""

    commands: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._+-]{1,64}$")]] = Field(
        default_factory=list
    )
    packages: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._+:-]{1,128}$")]] = Field(
        default_factory=list
    )


class Pull(_Strict):
    """Pull mode: hosts poll the server and deploy themselves (no inbound SSH)."""

    unreachable_after: Duration = 300.0  # a host that does not fetch its due deploy in time
    poll_every: Duration = 10.0  # what the install script sets the timer to
    download_timeout: Duration = 600.0


class Sandbox(_Strict):
    """How code run on the deploy host for this environment (pre_deploy, post_deploy, lb_out,
    lb_in, the checkout) is sandboxed. Limits are the server's (``FERRYMAN_SANDBOX_*``)."""

    network: bool = True  # builds fetch packages; off: no network at all inside


class Triggers(_Strict):
    """What a git webhook (GitLab, Gitea, GitHub) turns into a ticket for this environment."""

    branches: list[str] = Field(default_factory=list)  # a push to one of these
    tags: bool = False  # a new tag


class Environment(_Strict):
    hosts: list[Host] = Field(default_factory=list)
    servers: list[Name] = Field(default_factory=list)  # servers of the space, by name
    labels: list[Label] = Field(default_factory=list)  # servers of the space with all these labels
    user: str = Field(default_factory=getpass.getuser)
    ssh_key: AbsPath | None = None
    known_hosts: AbsPath | None = None
    repo_ssh_key: AbsPath | None = None
    repo_known_hosts: AbsPath | None = None
    webroot: AbsPath
    releases: AbsPath
    keep_releases: int = Field(default=5, ge=2, le=100)
    excludes: list[str] = Field(default_factory=list)
    shared: list[RelPath] = Field(default_factory=list)
    shared_dir: AbsPath | None = None  # default: <releases>/../shared
    tasks: Tasks = Field(default_factory=Tasks)
    task_timeout: float = Field(default=600, gt=0, le=86400)
    command_timeout: float = Field(default=120, gt=0, le=86400)
    transfer_timeout: float = Field(default=1800, gt=0, le=86400)
    connect_timeout: float = Field(default=15, gt=0, le=600)
    post_release_delay: float = Field(default=0, ge=0, le=3600)
    parallel: int = Field(default=50, ge=1, le=1000)
    compress: bool = True
    post_release_on_revert: bool = False
    queue: Name = "default"  # only workers taking this queue run its deploys
    secrets: list[str] = Field(default_factory=list)  # names a deploy needs; values via the API
    # paths of config files every deploy needs (their content is set via the API/CLI)
    config_files: list[str] = Field(default_factory=list)
    strategy: Strategy | None = None  # a gray release; without it every host at once
    health_check: list[HealthCheck] = Field(default_factory=list)  # after each host's switch
    requires: Requires = Field(default_factory=Requires)  # checked on every host first
    mode: Literal["push", "pull"] = "push"  # pull: hosts poll `/api/v1/agent/{host}`
    triggers: Triggers = Field(default_factory=Triggers)  # git webhooks that make tickets
    auto_deploy: bool = False  # a ticket made by a webhook is deployed at once (no approval)
    pull: Pull = Field(default_factory=Pull)
    sandbox: Sandbox = Field(default_factory=Sandbox)

    @field_validator("config_files")
    @classmethod
    def _config_paths(cls, value: list[str]) -> list[str]:
        out = []
        for raw in value:
            try:
                path = config_files.path(raw)
            except ValidationError as exc:
                raise PydanticCustomError("config_file", exc.message) from None
            if path in out:
                raise PydanticCustomError("config_file", "listed twice: {p!r}", {"p": path})
            out.append(path)
        return out

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                validate.variables({name: "x"})
            except ValidationError as exc:
                raise PydanticCustomError("secret", exc.message) from None
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        try:
            return validate.username(value)
        except ValidationError as exc:
            raise PydanticCustomError("user", exc.message) from None

    @field_validator("excludes")
    @classmethod
    def _excludes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern or "\n" in pattern or "\x00" in pattern or ".." in pattern.split("/"):
                raise PydanticCustomError(
                    "exclude", "not an exclude pattern: {p!r}", {"p": pattern}
                )
        return value

    @field_validator("hosts")
    @classmethod
    def _unique_hosts(cls, value: list[validate.HostSpec]) -> list[validate.HostSpec]:
        seen: set[str] = set()
        for spec in value:
            if spec.key in seen:
                raise PydanticCustomError("host", "host listed twice: {h!r}", {"h": spec.key})
            seen.add(spec.key)
        return value

    @model_validator(mode="after")
    def _some_hosts(self) -> Environment:
        if not (self.hosts or self.servers or self.labels):
            raise PydanticCustomError("hosts", "give hosts, servers or labels (at least one host)")
        return self

    @model_validator(mode="after")
    def _paths_apart(self) -> Environment:
        web, rel = self.webroot, self.releases
        if web == rel or web.startswith(rel + "/") or rel.startswith(web + "/"):
            raise PydanticCustomError("paths", "webroot and releases must not contain one another")
        return self

    def user_for(self, spec: validate.HostSpec) -> str:
        return spec.user or self.user


class ProjectConfig(_Strict):
    project: Name
    space: Name = "default"
    repo: str
    vcs: Literal["git", "svn"] | None = None
    description: str = ""
    environments: dict[Name, Environment] = Field(min_length=1)

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        ok_scheme = value.startswith(
            ("ssh://", "https://", "http://", "file://", "git://", "svn://", "svn+ssh://")
        )
        scp_like = "://" not in value and ":" in value.split("/")[0] and "@" in value
        if (
            not (ok_scheme or scp_like)
            or value.startswith("-")
            or any(c in value for c in "\n\r\t\x00 ")
        ):
            raise PydanticCustomError(
                "repo",
                "not a repository URL: {v!r} "
                "(use ssh://, https://, file://, svn:// or user@host:path)",
                {"v": value},
            )
        return value

    @property
    def vcs_kind(self) -> Literal["git", "svn"]:
        if self.vcs:
            return self.vcs
        return "svn" if self.repo.startswith(("svn://", "svn+ssh://")) else "git"

    def environment(self, env: str) -> Environment:
        try:
            return self.environments[env]
        except KeyError:
            from ferryman.errors import NotFound

            known = ", ".join(sorted(self.environments))
            raise NotFound(
                f"project {self.project} has no environment {env!r} (has: {known})"
            ) from None


def error_lines(exc: PydanticValidationError) -> list[str]:
    """``path/to/key: message`` for every error, in the order pydantic found them."""
    lines = []
    for err in exc.errors():
        path = "/".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key missing"
        lines.append(f"{path}: {message}")
    return lines


def parse_project(data: Any) -> ProjectConfig:
    """Validate a decoded mapping (from YAML or JSON) or raise ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError("project configuration must be a mapping", ["(top level): not a mapping"])
    try:
        return ProjectConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise ConfigError("invalid project configuration", error_lines(exc)) from None


MAX_FILE_CHARS = 1024 * 1024


def load_project_yaml(text: str) -> ProjectConfig:
    try:
        data = yamlsafe.load(text, MAX_FILE_CHARS)
    except yaml.YAMLError as exc:
        raise ConfigError("project file is not valid YAML", [str(exc)]) from None
    return parse_project(data)


def dump_project(config: ProjectConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude_none=True)
