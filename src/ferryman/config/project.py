"""The project configuration: one schema for the YAML file, the REST API and (later) the UI.

Unknown keys are errors, and every error names its path, e.g.
``environments/production/hosts/2: not a host: 'a b'``. ``docs/config.md`` is the reference; its
commented example is loaded by the tests.
"""

from __future__ import annotations

import getpass
import posixpath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
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
from ferryman.config.analysis import Analysis
from ferryman.config.migrations import Migrations
from ferryman.config.retention import parse_retention
from ferryman.config.served import VerifyServed
from ferryman.domain import config_files, display_name, local_paths, release, rollout, validate
from ferryman.errors import ConfigError, ValidationError
from ferryman.said import Said, said


def _refused(kind: str, message: str) -> PydanticCustomError:
    """A validator's refusal. The message rides whole in the error's context: a ``said``
    message keeps its template and values there (``error_lines`` makes the line of it that
    the web UI says in the viewer's language), and braces in a value stay text."""
    return PydanticCustomError(kind, "{said}", {"said": message})


def _as(fn: Any, kind: str) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise _refused(kind, said("expected a string, got %(value)s", value=repr(value)))
        try:
            return fn(value)
        except ValidationError as exc:
            raise _refused(kind, exc.message) from None

    return check


Host = Annotated[
    validate.HostSpec,
    PlainValidator(_as(validate.host, "host")),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "[user@]address[:port]"}),
]
AbsPath = Annotated[
    str,
    PlainValidator(_as(validate.absolute_path, "path")),
    WithJsonSchema({"type": "string", "pattern": "^/", "description": "an absolute path"}),
]
RelPath = Annotated[
    str,
    PlainValidator(_as(validate.relative_path, "path")),
    WithJsonSchema({"type": "string", "description": "a path inside the release"}),
]
Name = Annotated[
    str,
    PlainValidator(_as(validate.name, "name")),
    WithJsonSchema({"type": "string", "description": "a name: letters, digits, . _ -"}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tasks(_Strict):
    """Hook scripts. Each runs as one bash script with ``set -euo pipefail``."""

    pre_deploy: str = ""  # deploy host, in the workspace, before checkout
    post_deploy: str = ""  # deploy host, in the checked-out tree: the build
    pre_release: str = ""  # every target, in the new release dir, before the switch
    post_release: str = ""  # every target, after the switch
    # every target at once, after an emergency rollback's switch; "post_release": that script
    restart: str = ""

    @model_validator(mode="after")
    def _restart(self) -> Tasks:
        problem = restart_problem(self.restart, self.post_release)
        if problem:
            raise _refused("restart", problem)
        return self

    @property
    def restart_script(self) -> str:
        """The script an emergency rollback runs to restart the service ("" for none)."""
        if self.restart.strip() == RESTART_AS_POST_RELEASE:
            return self.post_release
        return self.restart


RESTART_AS_POST_RELEASE = "post_release"


# Rules across keys, as plain functions: the validators apply them, and so does the report of
# a file that fails other checks too (``problems.across_keys``), so that one run names every
# error of the file, not one layer of them at a time.
def restart_problem(restart: Any, post_release: Any) -> str | None:
    if str(restart).strip() == RESTART_AS_POST_RELEASE and not str(post_release or "").strip():
        return said("restart: post_release names the post_release task, which is empty")
    return None


def hosts_problem(hosts: Any, servers: Any, labels: Any) -> str | None:
    if not (hosts or servers or labels):
        return said("give hosts, servers or labels (at least one host)")
    return None


def paths_problem(web: str, rel: str) -> str | None:
    if web == rel or web.startswith(rel + "/") or rel.startswith(web + "/"):
        return said("webroot and releases must not contain one another")
    return None


def requires_passed_problem(env: str, required: str | None, known: list[str]) -> str | None:
    if required is None:
        return None
    if required == env:
        return said(
            "environments/%(env)s/requires_passed: an environment cannot require itself", env=env
        )
    if required not in known:
        return said(
            "environments/%(env)s/requires_passed: no environment %(name)s in this project "
            "(has: %(known)s)",
            env=env,
            name=repr(required),
            known=sorted(known),
        )
    return None


def local_problem(env: Environment) -> str | None:
    """What keeps ``hosts: [local]`` (the deploy host itself) from being written as asked."""
    local = [h for h in env.hosts if h.address == local_paths.LOCAL]
    if not local:
        return None
    if any(h.user or h.key != local_paths.LOCAL for h in local):
        return said("local: give it as just `local` (it runs as the project's own user, no port)")
    if env.mode != "push":
        return said("local: a local target is deployed by the worker (mode: push)")
    shared = env.shared_dir or posixpath.join(posixpath.dirname(env.releases), "shared")
    problems = local_paths.config_problems(env.webroot, env.releases, shared)
    return said("local: %(problems)s", problems=_joined(problems)) if problems else None


def _joined(items: list[str]) -> str:
    """``a; b; c``, each item still said in the viewer's language."""
    if len(items) == 1:
        return items[0]
    return said("%(first)s; %(rest)s", first=items[0], rest=_joined(items[1:]))


Label = Annotated[
    str,
    PlainValidator(_as(validate.label, "label")),
    WithJsonSchema({"type": "string", "description": "a server label (NAME or NAME=VALUE)"}),
]


# what domain/rollout.duration accepts: a number of seconds with an optional unit
DURATION_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h)?\s*$"
Duration = Annotated[
    float,
    PlainValidator(lambda v: _duration(v)),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": DURATION_PATTERN}],
            "description": "30s, 5m, 1h or seconds",
        }
    ),
]


def _duration(value: Any) -> float:
    try:
        return rollout.duration(value)
    except ValidationError as exc:
        raise _refused("duration", exc.message) from None


def _spoken(seconds: float) -> str:
    """``24h``, ``10m``, ``0s``: a limit as the file would write it (said in the viewer's
    units)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return said("%(n)sh", n=f"{seconds / 3600:g}")
    if seconds >= 60 and seconds % 60 == 0:
        return said("%(n)sm", n=f"{seconds / 60:g}")
    return said("%(n)ss", n=f"{seconds:g}")


def _within(low: float, high: float, zero_ok: bool) -> Any:
    """A duration check: between ``low`` (excluded unless ``zero_ok``) and ``high``."""

    def check(value: Any) -> float:
        seconds = _duration(value)
        too_low = seconds < low if zero_ok else seconds <= low
        if too_low or seconds > high:
            limits = {"low": _spoken(low), "high": _spoken(high)}
            raise _refused(
                "duration",
                said("at least %(low)s, at most %(high)s", **limits)
                if zero_ok
                else said("more than %(low)s, at most %(high)s", **limits),
            )
        return seconds

    return check


def _duration_schema(low: float, high: float, zero_ok: bool) -> dict[str, Any]:
    floor = "at least" if zero_ok else "more than"
    return {
        "anyOf": [
            {"type": "number", "minimum": low, "maximum": high},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
        "description": f"30s, 5m, 1h or seconds ({floor} {_spoken(low)}, at most {_spoken(high)})",
    }


# Every duration key of the file takes the same syntax (30s, 10m, 1h or seconds), bounded.
Timeout = Annotated[
    float,
    PlainValidator(_within(0, 86400, False)),
    WithJsonSchema(_duration_schema(0, 86400, False)),
]
ConnectTimeout = Annotated[
    float, PlainValidator(_within(0, 600, False)), WithJsonSchema(_duration_schema(0, 600, False))
]
Delay = Annotated[
    float, PlainValidator(_within(0, 3600, True)), WithJsonSchema(_duration_schema(0, 3600, True))
]


def _retention(value: Any) -> str | None:
    """``log_retention: 180d`` (also ``26w``, ``72h``, ``off``): kept as its text, checked."""
    if value is None:
        return None
    if value is False or (isinstance(value, int) and not isinstance(value, bool) and value == 0):
        return "off"  # YAML reads a bare off/no as false
    if not isinstance(value, str):
        raise _refused("log_retention", HELP_RETENTION)
    try:
        parse_retention(value)
    except ValueError:
        raise _refused("log_retention", HELP_RETENTION) from None
    return value.strip().lower()


HELP_RETENTION = said("180d, 26w, 72h or off (at least a day)")
Retention = Annotated[
    str | None,
    PlainValidator(_retention),
    WithJsonSchema({"type": "string", "pattern": r"^(off|[0-9]+[dwh])$"}),
]


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
            raise _refused("health_check", said("give exactly one of http, tcp, command"))
        if self.http and not self.http.startswith(("http://", "https://")):
            raise _refused("health_check", said("http: an http:// or https:// URL"))
        if self.tcp and ":" not in self.tcp:
            raise _refused("health_check", said("tcp: HOST:PORT"))
        if (self.expect or self.contains) and not self.http:
            raise _refused("health_check", said("expect and contains are for http checks"))
        if not 0 < self.timeout <= 600:
            raise _refused("health_check", said("timeout: more than 0, at most 10m"))
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
    # out_until_continue: the healthy canary stays out of the load balancer until continued
    canary_lb: Literal["in", "out_until_continue"] = "in"
    analysis: Analysis | None = None  # metric canary analysis (config/analysis.py)

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
            raise _refused("strategy", exc.message) from None
        if not isinstance(self.batches, list) and rollout.amount(self.batches, 100, "b") == 0:
            raise _refused("strategy", said("batches: at least one host per batch"))
        if self.analysis is not None and not self.canary:
            raise _refused("strategy", said("analysis: compares a canary; give canary"))
        if self.analysis is not None and self.canary_lb != "in":
            raise _refused(
                "strategy",
                said("analysis: needs canary_lb: in (a canary held out serves no traffic)"),
            )
        if self.canary_lb == "out_until_continue" and not (
            self.canary and self.lb_out.strip() and self.lb_in.strip() and self.pause != "none"
        ):
            raise _refused(
                "strategy",
                said(
                    "canary_lb: out_until_continue needs a canary, lb_out, lb_in and a pause "
                    "(manual or a duration) to hold the canary out for"
                ),
            )
        return self

    @property
    def pause_seconds(self) -> float | None:
        """None: wait for a person; 0: no pause; else seconds."""
        if self.pause == "manual":
            return None
        return 0.0 if self.pause == "none" else rollout.duration(self.pause)


class Requires(_Strict):
    """What every host must have before a rollout: commands on the PATH, installed packages."""

    # never a leading '-': each is an argument of command -v, dpkg-query and rpm on hosts
    commands: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]] = Field(
        default_factory=list
    )
    packages: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$")]] = Field(
        default_factory=list
    )


class Pull(_Strict):
    """Pull mode: hosts poll the server and deploy themselves (no inbound SSH)."""

    unreachable_after: Duration = 300.0  # a host that does not fetch its due deploy in time
    poll_every: Duration = 10.0  # what the install script sets the timer to
    download_timeout: Duration = 600.0


class Watch(_Strict):
    """After a deploy succeeded: its health checks again, every ``every``, for ``window``."""

    window: Timeout  # how long after the deploy (10m)
    every: Annotated[
        float,
        PlainValidator(_within(1, 3600, True)),
        WithJsonSchema(_duration_schema(1, 3600, True)),
    ] = 30.0
    on_failure: Literal["notify", "rollback"] = "notify"  # rollback: to the last good release


def _watch(value: Any) -> Any:
    """``watch: 10m`` is short for ``watch: {window: 10m}``."""
    return {"window": value} if isinstance(value, str | int | float) else value


class Sandbox(_Strict):
    """How code run on the deploy host for this environment (pre_deploy, post_deploy, lb_out,
    lb_in, the checkout) is sandboxed. Limits are the server's (``FERRYMAN_SANDBOX_*``)."""

    network: bool = True  # builds fetch packages; off: no network at all inside


# Tiered fan-out (``transfer: {fanout: 8}``, pipeline/relay.py): 0 is off; past 64 the deploy
# host feeds so many hosts that the relays save little.
FANOUT_MAX = 64


def _fanout(value: Any) -> int:
    if value is False or value is None:  # YAML reads a bare ``off`` as false
        return 0
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value == 0 or 2 <= value <= FANOUT_MAX)
    ):
        return value
    raise _refused("fanout", said("fanout: off (0) or from 2 to %(most)s hosts", most=FANOUT_MAX))


def _authorized_keys(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    rest = text[2:] if text.startswith("~/") else text[1:] if text.startswith("/") else ""
    parts = rest.split("/")
    if (
        not rest
        or any(part in ("", ".", "..") for part in parts)
        or any(ord(c) < 32 or c in "\\\"'$`" or c.isspace() for c in rest)
    ):
        raise _refused(
            "authorized_keys",
            said("authorized_keys: an absolute path or one under ~/, e.g. ~/.ssh/authorized_keys"),
        )
    return text


class Transfer(_Strict):
    """How the package reaches the hosts. ``fanout``: the deploy host streams a full package
    to this many hosts, which pass it on to the others over SSH with a key made for that one
    deploy (written for that deploy's receiving only into ``authorized_keys`` on the hosts —
    the file their sshd reads for the deploy user — and removed when the deploy ends)."""

    fanout: Annotated[
        int,
        PlainValidator(_fanout),
        WithJsonSchema({"type": "integer", "description": f"0 (off) or 2-{FANOUT_MAX}"}),
    ] = 0
    authorized_keys: Annotated[
        str,
        PlainValidator(_authorized_keys),
        WithJsonSchema({"type": "string", "description": "an absolute path or ~/…"}),
    ] = "~/.ssh/authorized_keys"


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
    # the release dir's name, e.g. "{project}_{env}_{version}_{time}"; default
    # YYYYmmdd-HHMMSS_<ref>_<commit7> (domain/release.py)
    release_name: str | None = None
    # the static-asset version stamp (pipeline/stamp.py): a file naming the release, and
    # files in which every {VERSION} becomes the release name (cache busting)
    version_file: RelPath | None = None
    stamp_version_in: list[RelPath] = Field(default_factory=list)
    tasks: Tasks = Field(default_factory=Tasks)
    task_timeout: Timeout = 600.0
    command_timeout: Timeout = 120.0
    transfer_timeout: Timeout = 1800.0
    connect_timeout: ConnectTimeout = 15.0
    post_release_delay: Delay = 0.0
    parallel: int = Field(default=50, ge=1, le=1000)
    compress: bool = True
    post_release_on_revert: bool = False
    queue: Name = "default"  # only workers taking this queue run its deploys
    secrets: list[str] = Field(default_factory=list)  # names a deploy needs; values via the API
    # paths of config files every deploy needs (their content is set via the API/CLI)
    config_files: list[str] = Field(default_factory=list)
    strategy: Strategy | None = None  # a gray release; without it every host at once
    health_check: list[HealthCheck] = Field(default_factory=list)  # after each host's switch
    verify_served: VerifyServed | None = None  # each host proves it serves the new release
    migrations: Migrations | None = None  # lists the applied migrations (rollback safety)
    requires: Requires = Field(default_factory=Requires)  # checked on every host first
    mode: Literal["push", "pull"] = "push"  # pull: hosts poll `/api/v1/agent/{host}`
    triggers: Triggers = Field(default_factory=Triggers)  # git webhooks that make tickets
    auto_deploy: bool = False  # a ticket made by a webhook is deployed at once (no approval)
    pull: Pull = Field(default_factory=Pull)
    sandbox: Sandbox = Field(default_factory=Sandbox)
    transfer: Transfer = Field(default_factory=Transfer)  # tiered fan-out (off by default)
    # health checks keep watching after a successful deploy (10m, or window/every/on_failure)
    watch: Annotated[Watch | None, BeforeValidator(_watch)] = None
    # promotion: a commit deploys here only after a deploy of it succeeded in that environment
    requires_passed: Name | None = None
    # how long an ended deploy's log is kept here (180d, off); default: FERRYMAN_LOG_RETENTION
    log_retention: Retention = None

    @field_validator("config_files")
    @classmethod
    def _config_paths(cls, value: list[str]) -> list[str]:
        out = []
        for raw in value:
            try:
                path = config_files.path(raw)
            except ValidationError as exc:
                raise _refused("config_file", exc.message) from None
            if path in out:
                raise _refused("config_file", said("listed twice: %(path)s", path=repr(path)))
            out.append(path)
        return out

    @field_validator("release_name")
    @classmethod
    def _release_name(cls, value: str | None) -> str | None:
        try:
            return None if value is None else release.check_template(value)
        except ValidationError as exc:
            raise _refused("release_name", exc.message) from None

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                validate.variables({name: "x"})
            except ValidationError as exc:
                raise _refused("secret", exc.message) from None
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        try:
            return validate.username(value)
        except ValidationError as exc:
            raise _refused("user", exc.message) from None

    @field_validator("excludes")
    @classmethod
    def _excludes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern or "\n" in pattern or "\x00" in pattern or ".." in pattern.split("/"):
                raise _refused(
                    "exclude", said("not an exclude pattern: %(pattern)s", pattern=repr(pattern))
                )
        return value

    @field_validator("hosts")
    @classmethod
    def _unique_hosts(cls, value: list[validate.HostSpec]) -> list[validate.HostSpec]:
        seen: set[str] = set()
        for spec in value:
            if spec.key in seen:
                raise _refused("host", said("host listed twice: %(host)s", host=repr(spec.key)))
            seen.add(spec.key)
        return value

    @model_validator(mode="after")
    def _some_hosts(self) -> Environment:
        problem = hosts_problem(self.hosts, self.servers, self.labels)
        if problem:
            raise _refused("hosts", problem)
        return self

    @model_validator(mode="after")
    def _watch_needs_checks(self) -> Environment:
        if self.watch is not None and not self.health_check:
            raise _refused("watch", said("watch: repeats health_check; give health_check"))
        return self

    @model_validator(mode="after")
    def _local_target(self) -> Environment:
        problem = local_problem(self)
        if problem:
            raise _refused("local", problem)
        return self

    @model_validator(mode="after")
    def _analysis_in_push_mode(self) -> Environment:
        if self.mode == "pull" and self.strategy is not None and self.strategy.analysis:
            raise _refused(
                "strategy",
                said("strategy/analysis: push mode only (pull-mode hosts switch themselves)"),
            )
        return self

    @model_validator(mode="after")
    def _paths_apart(self) -> Environment:
        problem = paths_problem(self.webroot, self.releases)
        if problem:
            raise _refused("paths", problem)
        return self

    def user_for(self, spec: validate.HostSpec) -> str:
        return spec.user or self.user


class ProjectConfig(_Strict):
    project: Name
    space: Name = "default"
    repo: str
    vcs: Literal["git", "svn"] | None = None
    description: str = ""
    display_name: str | None = None  # in any script, beside the slug ``project``
    environments: dict[Name, Environment] = Field(min_length=1)

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return display_name.check(value, None)  # the key is named where it is shown
        except ValidationError as exc:
            raise _refused("display_name", exc.message) from None

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
            raise _refused(
                "repo",
                said(
                    "not a repository URL: %(value)s "
                    "(use ssh://, https://, file://, svn:// or user@host:path)",
                    value=repr(value),
                ),
            )
        return value

    @model_validator(mode="after")
    def _promotions(self) -> ProjectConfig:
        for name, env in self.environments.items():
            problem = requires_passed_problem(name, env.requires_passed, list(self.environments))
            if problem:
                raise _refused("requires_passed", problem)
        return self

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

            raise NotFound(
                said(
                    "project %(project)s has no environment %(env)s (has: %(known)s)",
                    project=self.project,
                    env=repr(env),
                    known=sorted(self.environments),
                )
            ) from None


def error_lines(exc: PydanticValidationError, data: Any = None) -> list[str]:
    """``path/to/key: message`` for every error, in the order pydantic found them (an
    unknown key with the known one it most looks like), then the rules across keys that
    pydantic did not reach (``problems``)."""
    from ferryman.config import problems

    lines = [_line(err) for err in exc.errors()]
    return lines + [extra for extra in problems.across_keys(data) if extra not in lines]


def _line(err: Any) -> str:
    """One error's ``path: message`` line; a ``said`` message (``_refused``) makes it a
    ``said`` line too — the same English, said with the message's own template and values."""
    from ferryman.config import problems

    line = problems.line(ProjectConfig, err)
    message = (err.get("ctx") or {}).get("said")
    if isinstance(message, Said) and line.endswith(": " + message):
        return Said(
            "%(path)s: %(message)s", {"path": line[: -len(message) - 2], "message": message}
        )
    return line


def parse_project(data: Any) -> ProjectConfig:
    """Validate a decoded mapping (from YAML or JSON) or raise ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError(
            said("project configuration must be a mapping"), [said("(top level): not a mapping")]
        )
    try:
        return ProjectConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise ConfigError(said("invalid project configuration"), error_lines(exc, data)) from None


MAX_FILE_CHARS = 1024 * 1024


def load_project_yaml(text: str, source: str = "project file") -> ProjectConfig:
    """Parse and validate a project file; ``source`` (its name) prefixes a YAML syntax error
    with where it is: ``project.yaml:3:7: …`` (line and column from 1)."""
    try:
        data = yamlsafe.load(text, MAX_FILE_CHARS)
    except yaml.YAMLError as exc:
        raise ConfigError(
            said("%(source)s is not valid YAML", source=source), [yamlsafe.describe(exc, source)]
        ) from None
    return parse_project(data)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the project file (``ferryman schema``), from the model ``apply``
    validates with: editors complete and check keys with it."""
    schema = ProjectConfig.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Ferryman project file",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def dump_project(config: ProjectConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude_none=True)
