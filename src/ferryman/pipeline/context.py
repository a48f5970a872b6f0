"""The state one deploy carries from stage to stage, and the helpers every stage uses."""

from __future__ import annotations

import asyncio
import posixpath
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ferryman.clock import utcnow
from ferryman.commands import processes
from ferryman.commands.remote import Command, Layout
from ferryman.config.project import Environment, ProjectConfig
from ferryman.config.settings import Settings
from ferryman.domain.config_files import ConfigFile, HostIdentity
from ferryman.domain.local_paths import LOCAL, REACHED_AT
from ferryman.domain.overlap import shared_dir
from ferryman.domain.rollout import Rollout
from ferryman.domain.statuses import HostStatus
from ferryman.domain.variables import with_aliases
from ferryman.errors import Cancelled, FerrymanError, OwnershipLost, RemoteError
from ferryman.pipeline.ports import DeployStore, RecordWriter
from ferryman.pipeline.recorder import Recorder
from ferryman.remote import local
from ferryman.remote.executor import Executor, Result, Target, fan_out
from ferryman.vcs.base import Resolved

T = TypeVar("T")
STOP_WAIT = 10.0  # seconds a stopped command has to end before it is abandoned


@dataclass
class HostFacts:
    """What the probe found on a host before anything changed."""

    link: str | None = None  # where the webroot pointed (raw target), None if no link
    releases: dict[str, str | None] = field(default_factory=dict)  # name -> manifest sha1
    tools: set[str] = field(default_factory=set)  # optional tools present (zstd)

    def live_release(self, layout: Layout) -> str | None:
        """The release name the webroot points into, if it is one of ours."""
        if self.link and posixpath.dirname(self.link.rstrip("/")) == layout.releases:
            return posixpath.basename(self.link.rstrip("/"))
        return None


@dataclass(frozen=True)
class SpaceAccess:
    """What a deploy may use of its space: its own key pair, the host keys its masters pinned,
    and the space's policy. Built by the runner from the database."""

    id: int = 0
    name: str = "default"
    ssh_key: Path | None = None  # the space's private key; None: the server's own
    host_keys: dict[str, str] = field(default_factory=dict)  # host key -> pinned key lines
    repo_known_hosts: str = ""  # pinned repository host keys (known_hosts lines)
    allow_local_repos: bool = False  # file:// and local paths (repo and submodules)
    max_task_timeout: float = 86400.0


@dataclass
class Context:
    deploy_id: int
    project_id: int
    kind: str
    project: ProjectConfig
    env_name: str
    env: Environment
    ref: str
    target_release: str
    requested_by: str
    settings: Settings
    recorder: Recorder
    executor: Executor
    targets: list[Target]
    layout: Layout
    started: datetime = field(default_factory=utcnow)
    workspace: Path = Path()
    pinned_commit: str = ""  # an approved ticket's commit: deploy exactly this one
    retry_of: int | None = None  # a retry ships that failed deploy's kept build
    prelinked: dict[str, str] = field(default_factory=dict)  # host -> base linked into staging
    prelink_task: asyncio.Task[None] | None = None
    probing: asyncio.Task[None] | None = None  # prepare's probe, running beside the checkout
    _cancel_reason: str = field(default="", repr=False)
    _cancel_asked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    undoing: bool = False  # undo runs to its end, cancel or not
    committed: bool = False  # every host switched and post_release done: too late to cancel
    _lost: str = field(default="", repr=False)
    _store: DeployStore | None = field(default=None, repr=False)
    # the runner's check that the deploy is still ours, awaited before a host action once the
    # last confirmed lease (``owned_until``, monotonic seconds) has run out
    confirm_owner: Callable[[], Awaitable[None]] | None = None
    owned_until: float = float("inf")
    env_variables: dict[str, str] = field(default_factory=dict)  # the space environment's
    config_files: list[ConfigFile] = field(default_factory=list)  # shipped in the release
    host_ids: dict[str, HostIdentity] = field(default_factory=dict)  # names/labels per host
    rollout: Rollout | None = None  # a gray release's plan and progress
    options: dict[str, Any] = field(default_factory=dict)  # emergency, force
    limit: int | None = None  # hosts at once when not the environment's ``parallel``
    space: SpaceAccess = field(default_factory=SpaceAccess)
    resolved: Resolved | None = None
    # the tree is a whole build (post_deploy finished, or a kept build was reused): only then
    # is it kept for a retry, which ships it without building
    built: bool = False
    release: str = ""
    facts: dict[str, HostFacts] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)  # hosts holding the new release dir
    switched: list[str] = field(default_factory=list)  # hosts already switched
    switching: bool = False  # a failure from here on is reverted, not cleaned

    @property
    def cancel_reason(self) -> str:
        """Why someone asked the deploy to stop ("" while nobody has)."""
        return self._cancel_reason

    @cancel_reason.setter
    def cancel_reason(self, reason: str) -> None:
        """Set by the runner's watcher: the pipeline stops at its next safe point, and a
        running hook (``cancellable``) is stopped at once."""
        self._cancel_reason = reason
        if reason:
            self._cancel_asked.set()

    @property
    def store(self) -> DeployStore:
        """What the deploy reads and records, through the one port (``pipeline.ports``)."""
        if self._store is None:
            raise RuntimeError("a context without a store (new_context gives one)")
        return self._store

    @store.setter
    def store(self, store: DeployStore) -> None:
        self._store = store

    @property
    def owner(self) -> str | None:
        """The worker running the deploy: every write it makes is fenced by it."""
        return self.recorder.owner

    @property
    def lost(self) -> str:
        """Why the deploy is no longer this worker's ("" while it is)."""
        return self._lost

    @lost.setter
    def lost(self, reason: str) -> None:
        """Set by the runner's heartbeat: the pipeline stops at its next checkpoint or host
        action, and a running hook (``cancellable``) is abandoned at once — a build's sandbox
        killed; what runs on hosts is the new owner's to stop."""
        self._lost = reason
        if reason:
            self._cancel_asked.set()

    @property
    def tree(self) -> Path:
        return self.workspace / "src"

    @property
    def package_dir(self) -> Path:
        return self.workspace / "packages"

    def variables(self, host: str = "") -> dict[str, str]:
        resolved = self.resolved
        commit = resolved.commit if resolved else ""
        release = self.release or self.target_release
        values = dict(self.env_variables)  # Ferryman's own names below always win
        values |= {
            "WEBROOT": self.layout.webroot,
            "RELEASES": self.layout.releases,
            "RELEASE": self.layout.release(release) if release else "",
            "VERSION": release,
            "WORKSPACE": str(self.tree),
            "PROJECT": self.project.project,
            "ENV": self.env_name,
            "BRANCH": resolved.branch if resolved else "",
            "TAG": resolved.tag if resolved else "",
            "COMMIT": commit,
            "COMMIT_SHORT": commit[:7],
            "DEPLOY_ID": str(self.deploy_id),
            "DEPLOY_USER": self.requested_by,
            "DEPLOY_TIME": self.started.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if host:
            values["HOST"] = host
        return with_aliases(self.env_variables, values)  # and Walle 2's names for some

    # --- running things on hosts ------------------------------------------------------------

    async def remote(
        self,
        target: Target,
        command: Command,
        *,
        stage: str,
        timeout: float | None = None,
        stdin: bytes | None = None,
        source: Path | None = None,
        check: bool = True,
        quiet: bool = False,
        full_output: bool = False,
        shown: str | None = None,
        track: bool = True,
    ) -> Result:
        """Run one command on one host, logging its output and recording it as a step.
        It is started so that ``stop_commands`` can stop it later, from any connection
        (``commands.processes``); ``track=False`` for the stop itself."""
        label = shown or shlex.join(command)
        await self.ensure_owner()

        def on_line(stream: str, line: str) -> None:
            if not quiet:
                self.recorder.log(line, host=target.key, stage=stage, stream=stream)

        started, wall = time.monotonic(), utcnow()
        try:
            result = await self.executor.run(
                target,
                command,
                stage=stage,
                timeout=timeout or self.env.command_timeout,
                stdin=stdin,
                source=source,
                on_line=on_line,
                check=check,
                full_output=full_output,
                track=partial(processes.track, self.layout, self.deploy_id) if track else None,
                on_progress=self.recorder.transfer_progress(stage, target.key) if source else None,
            )
        except RemoteError as exc:
            self.recorder.step(
                host=target.key,
                stage=stage,
                command=label,
                exit_status=exc.exit_status,
                output=exc.stderr_tail,
                started=started,
                wall_start=wall,
            )
            if not exc.command:
                exc.command = label
                exc.details["command"] = label
            raise
        except FerrymanError as exc:
            self.recorder.step(
                host=target.key,
                stage=stage,
                command=label,
                exit_status=None,
                output=exc.message,
                started=started,
                wall_start=wall,
            )
            raise
        self.recorder.step(
            host=target.key,
            stage=stage,
            command=label,
            exit_status=result.exit_status,
            output="" if full_output else (result.stdout + result.stderr)[-4000:],
            started=started,
            wall_start=wall,
        )
        return result

    def checkpoint(self) -> None:
        """A safe point: stop here if the deploy was asked to (the runner then undoes what
        was done, by the same rules as a failure), and always once it is no longer ours."""
        if self.lost:
            raise OwnershipLost(self.lost)
        if self.cancel_reason and not (self.undoing or self.committed):
            raise Cancelled(self.cancel_reason)

    async def cancellable(
        self, work: Awaitable[T], stop: Callable[[], Awaitable[object]] | None = None
    ) -> T:
        """Await ``work`` (a hook) unless a cancel that may still interrupt the deploy comes
        first: then ``stop()`` (stopping it on its host), give it ``STOP_WAIT`` seconds to
        end, abandon it (cancelling the task: a local command's process group is killed)
        and raise ``Cancelled``. Once undoing or committed, ``work`` runs to its end. When
        the deploy is lost meanwhile, ``work`` is abandoned at once (``OwnershipLost``)."""
        if self.undoing or self.committed:
            return await work
        task = asyncio.ensure_future(work)
        asked = asyncio.ensure_future(self._interrupting_cancel())
        try:
            await asyncio.wait({task, asked}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            if self.lost:
                await _abandon(task)
                raise OwnershipLost(self.lost)
            if stop is not None:
                try:
                    await stop()
                except FerrymanError as exc:  # the command is abandoned below all the same
                    self.recorder.log(f"could not stop the running command: {exc}")
                await asyncio.wait({task}, timeout=STOP_WAIT)
            await _abandon(task)
        finally:
            asked.cancel()
            if not task.done():  # we were cancelled ourselves: so is the work
                task.cancel()
        raise Cancelled(self.cancel_reason)

    async def _interrupting_cancel(self) -> None:
        """Returns once a cancel is asked while it may still interrupt the deploy, or once
        the deploy is lost."""
        await self._cancel_asked.wait()
        if (self.undoing or self.committed) and not self.lost:
            await asyncio.Future()  # too late to interrupt: never returns

    async def ensure_owner(self) -> None:
        """Before a host action: stop if the deploy is no longer ours; if our lease may have
        run out (no heartbeat got through), first confirm it is still ours."""
        if not self.lost and self.confirm_owner and time.monotonic() >= self.owned_until:
            await self.confirm_owner()
        if self.lost:
            raise OwnershipLost(self.lost)

    async def each_host(
        self,
        stage: str,
        action: Callable[[Target], Awaitable[None]],
        targets: list[Target] | None = None,
        limit: int | None = None,
    ) -> None:
        """Run ``action`` on every host (bounded by ``parallel``) and record per-host progress.

        Every host runs to completion; then the first failure (in host order) is raised.
        """
        chosen = self.targets if targets is None else targets

        async def timed(target: Target) -> None:
            self.checkpoint()
            start = time.monotonic()
            try:
                await action(target)
            except BaseException:
                self.recorder.stage_host(stage, target.key, False, time.monotonic() - start)
                raise
            self.recorder.stage_host(stage, target.key, True, time.monotonic() - start)

        bound = limit or self.limit or self.env.parallel
        if (self.executor.max_connections or 0) < bound:  # every host at once: keep them all
            self.executor.max_connections = bound
        # hosts still connected first: on a fleet larger than the connections kept, they run
        # before the bound closes them, and the stage reuses what the last one left open
        order = sorted(chosen, key=lambda t: not self.executor.connected(t.key))
        failures = await fan_out(order, timed, bound)
        for target in chosen:
            if target.key in failures:
                exc = failures[target.key]
                self.recorder.host(target.key, status=HostStatus.FAILED, error=self.host_error(exc))
                for other, other_exc in failures.items():
                    if other != target.key:
                        self.recorder.host(
                            other, status=HostStatus.FAILED, error=self.host_error(other_exc)
                        )
                raise exc

    def host_error(self, exc: BaseException) -> str:
        """The per-host error stored for a failure: secret values masked before it is cut
        (a cut could leave part of a value unmasked)."""
        return self.recorder.mask(str(exc))[:2000]

    def target(self, key: str) -> Target:
        for target in self.targets:
            if target.key == key:
                return target
        raise KeyError(key)


async def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` unless it is done, and wait until it is; its own failure (the doing of
    whatever stopped it) is dropped."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled():
        task.exception()


async def sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def new_context(
    settings: Settings,
    config: ProjectConfig,
    env_name: str,
    *,
    writer: RecordWriter,
    store: DeployStore | None = None,
    store_for: Callable[[Context], DeployStore] | None = None,
    deploy_id: int = 0,
    project_id: int = 0,
    kind: str = "deploy",
    ref: str = "",
    target_release: str = "",
    requested_by: str = "",
    hosts: list[str] | None = None,
    pinned_commit: str = "",
    env_variables: dict[str, str] | None = None,
    secret_names: list[str] | None = None,
    retry_of: int | None = None,
    config_files: list[ConfigFile] | None = None,
    host_ids: dict[str, HostIdentity] | None = None,
    space: SpaceAccess | None = None,
) -> Context:
    """A context for one project environment: its hosts (all, or the chosen subset), its
    layout, and an executor using the space's key and pinned host keys (a superuser may have
    named other key and known_hosts paths in the environment). It records through ``writer``
    and reads through its store: ``store`` itself, or the one ``store_for`` builds for the
    new context (the store of a database needs the context, which holds the deploy). The
    caller chooses both — the database's (``services.deploy_store``) or memory's
    (``pipeline.memory``): the engine owns no database."""
    if writer is None or (store is None) == (store_for is None):
        raise ValueError("a context needs a store and a writer (store or store_for, not both)")
    space = space or SpaceAccess()
    env = config.environment(env_name)
    if env.task_timeout > space.max_task_timeout:  # the space's maximum wins
        env = env.model_copy(update={"task_timeout": space.max_task_timeout})
    chosen = set(hosts or [])
    targets = [
        Target(
            key=h.key,
            address=REACHED_AT if h.key == LOCAL else h.address,
            port=h.port,
            user=env.user_for(h),
        )
        for h in env.hosts
        if not chosen or h.key in chosen
    ]
    variables = dict(env_variables or {})
    secrets = [variables[name] for name in secret_names or [] if name in variables]
    layout = Layout(
        webroot=env.webroot,
        releases=env.releases,
        shared_dir=shared_dir(env.shared_dir, env.releases, config.project, env_name),
    )
    executor = Executor(
        client_key=Path(env.ssh_key) if env.ssh_key else space.ssh_key or settings.ssh_key,
        known_hosts=Path(env.known_hosts) if env.known_hosts else settings.known_hosts,
        host_keys={} if env.known_hosts else space.host_keys,
        connect_timeout=env.connect_timeout,
    )
    if any(t.key == local.LOCAL for t in targets):  # the deploy host itself, sandboxed
        place = local.LocalPlace(env.releases, env.webroot, layout.shared_dir, env.sandbox.network)
        executor = local.with_local(executor, settings, project_id, place)
    # a fleet larger than ``parallel`` does not hold a connection (a socket, a descriptor)
    # per host: only ``parallel`` idle ones are kept (each_host raises it for a wider stage)
    executor.max_connections = env.parallel
    ctx = Context(
        deploy_id=deploy_id,
        project_id=project_id,
        kind=kind,
        project=config,
        env_name=env_name,
        env=env,
        ref=ref,
        target_release=target_release,
        requested_by=requested_by,
        settings=settings,
        recorder=Recorder(writer, deploy_id, secrets),
        executor=executor,
        targets=targets,
        layout=layout,
        workspace=settings.workspaces / str(space.id) / f"deploy-{deploy_id}",  # per space
        pinned_commit=pinned_commit,
        retry_of=retry_of,
        env_variables=variables,
        config_files=list(config_files or []),
        host_ids=dict(host_ids or {}),
        space=space,
    )
    if store_for is not None:
        store = store_for(ctx)
    if store is not None:  # always, by the check above
        ctx.store = store
    return ctx
