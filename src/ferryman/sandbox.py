"""The build sandbox: the one place that runs repository- or project-controlled code on the
deploy host (hooks, load-balancer scripts, the checkout). See ``docs/security.md``.

``FERRYMAN_SANDBOX=auto`` (the default) requires bubblewrap: it is probed once per process by
making a trivial sandbox, and where it cannot be made every sandboxed step is refused with an
error saying why and how to fix it. ``off`` (a superuser's explicit choice) runs hooks as the
server's own user, still with a clean environment and the script passed as a file descriptor.

A deploy runs as its own uid (``FERRYMAN_SANDBOX_UID_BASE`` + deploy id) when the server is root,
so limits counted per uid (processes) are per deploy and nothing inside owns anything outside.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ferryman.commands import sandbox as cmd
from ferryman.config.settings import Settings
from ferryman.errors import StageTimeout, TaskFailed
from ferryman.process import LocalResult, run_local

HOME = "home"  # inside the workspace: the sandbox's private, writable $HOME
PROBE_TIMEOUT = 20.0
GONE_TIMEOUT = 10.0  # seconds a stopped sandbox has to be gone

_probed: dict[tuple[str, str, int, int], str | None] = {}


def enabled(settings: Settings) -> bool:
    return settings.sandbox != "off"


def as_root() -> bool:
    return os.geteuid() == 0


def uid_for(settings: Settings, deploy_id: int) -> int | None:
    """The unprivileged uid (and gid) deploy ``deploy_id`` runs as; None when not root."""
    if not as_root():
        return None
    return settings.sandbox_uid_base + deploy_id % max(settings.sandbox_uid_count, 1)


def limits(settings: Settings) -> cmd.Limits:
    return cmd.Limits(
        cpu_seconds=settings.sandbox_cpu_seconds,
        memory=settings.sandbox_memory,
        processes=settings.sandbox_processes,
    )


def root_layout() -> tuple[dict[str, str], tuple[str, ...]]:
    """Top-level dirs merged into /usr (symlinks, kept as such) and real ones (bound)."""
    links: dict[str, str] = {}
    dirs: list[str] = []
    for path in cmd.ROOT_DIRS:
        if os.path.islink(path):
            links[path] = os.readlink(path)
        elif os.path.isdir(path):
            dirs.append(path)
    return links, tuple(dirs)


def _how_to_fix() -> str:
    return (
        "install bubblewrap (apt-get install bubblewrap, or scripts/setup-system), enable "
        "unprivileged user namespaces (sysctl user.max_user_namespaces > 0, and "
        "kernel.unprivileged_userns_clone=1 where the kernel has it), or have a superuser set "
        "FERRYMAN_SANDBOX=off (unsafe when more than one team uses this server)"
    )


async def probe(settings: Settings) -> str | None:
    """None when a sandbox can be made here, else why not (cached per process)."""
    key = (settings.bwrap, str(settings.sandbox_stage), settings.sandbox_uid_base, os.geteuid())
    if key not in _probed:  # two first callers may both probe: harmless
        _probed[key] = await _probe(settings)
    return _probed[key]


async def _probe(settings: Settings) -> str | None:
    if not os.access(settings.bwrap, os.X_OK):
        return f"bubblewrap is not installed ({settings.bwrap} not found)"
    links, dirs = root_layout()
    uid = settings.sandbox_uid_base if as_root() else None
    argv = cmd.command(settings.bwrap, cmd.probe_spec(links, dirs), limits(settings), uid=uid)
    try:
        result = await run_local(
            argv, timeout=PROBE_TIMEOUT, env={}, inherit_env=False, cwd=Path("/"), what="probe"
        )
    except (OSError, StageTimeout) as exc:
        return f"bubblewrap could not be started: {exc}"
    if result.exit_status != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()
        return "bubblewrap cannot make a sandbox here" + (f" ({tail[-1][:200]})" if tail else "")
    return None


async def require(settings: Settings, what: str, stage: str = "", host: str = "") -> None:
    """Raise ``TaskFailed`` (refusing ``what``) unless a sandbox can be made."""
    reason = await probe(settings)
    if reason:
        raise TaskFailed(
            f"{what} refused: the build sandbox is required (FERRYMAN_SANDBOX=auto) but "
            f"{reason}; to fix: {_how_to_fix()}",
            stage=stage,
            host=host,
            reason="sandbox_unavailable",
        )


def prepare_workspace(settings: Settings, workspace: Path, deploy_id: int) -> None:
    """Make ``workspace`` (and its private home) usable by the deploy's sandbox uid, and keep
    every other path of it the server's: the workspace is root's, writable by the deploy's group,
    with the sticky bit, so the sandbox may create entries but never rename or remove the
    server's own (``packages``)."""
    workspace.mkdir(parents=True, exist_ok=True)
    home = workspace / HOME
    home.mkdir(mode=0o700, exist_ok=True)
    uid = uid_for(settings, deploy_id)
    if uid is None or not enabled(settings):
        return
    os.chmod(workspace.parent, 0o700)
    os.chown(workspace, 0, uid)  # the sandbox's group may create entries; sticky: only its own
    os.chmod(workspace, 0o1770)  # noqa: S103 (group: the deploy's own, nobody else's)
    os.chown(home, uid, uid)
    settings.sandbox_stage.mkdir(mode=0o755, parents=True, exist_ok=True)


def check_workspace(workspace: Path, tree: Path, stage: str) -> None:
    """After a sandboxed step: the tree the server reads next must be a real directory (not a
    symlink planted to make the server package or ship something outside the workspace)."""
    for path in (workspace, tree):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise TaskFailed(
                f"{stage} replaced {path} with something that is not a directory "
                "(a symlink?): refusing to ship it",
                stage=stage,
            )


def running_as(uid: int) -> list[int]:
    """Pids of the live (not zombie) processes whose real or effective uid is ``uid``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:  # gone meanwhile
            continue
        uids = fields.get("Uid", "").split()[:2]
        if str(uid) in uids and not fields.get("State", "").strip().startswith(("Z", "X")):
            found.append(int(entry.name))
    return found


async def wait_gone(uid: int | None, timeout: float = GONE_TIMEOUT) -> list[int]:
    """After a sandbox was killed: wait until no process of the deploy's uid runs any more,
    killing any left (none should be: the PID namespace ends with its first process).
    Returns what is still there at ``timeout`` (nothing to do when not root: no own uid)."""
    if uid is None:
        return []
    deadline = time.monotonic() + timeout
    while True:
        left = await asyncio.to_thread(running_as, uid)
        if not left or time.monotonic() >= deadline:
            return left
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        await asyncio.sleep(0.05)


class _Fds:
    """memfds holding what the sandbox reads (the script, passwd, keys), closed afterwards."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def add(self, content: bytes) -> int:
        fd = os.memfd_create("ferryman", 0)  # not inheritable until passed
        self.fds.append(fd)
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


async def run(
    settings: Settings,
    *,
    deploy_id: int,
    workspace: Path,
    script: str,
    cwd: Path,
    network: bool,
    timeout: float,
    on_line: Callable[[str, str], None] | None = None,
    what: str = "task",
    stage: str = "",
    readonly: tuple[Path, ...] = (),
    files: Mapping[str, bytes] | None = None,
    env: Mapping[str, str] | None = None,
) -> LocalResult:
    """Run the bash ``script`` (which may hold secrets: it travels as a file descriptor) in
    the deploy's sandbox: ``workspace`` writable at its own path, ``readonly`` dirs (a mirror)
    read-only at theirs, ``files`` (dest → content: keys) as 0400 files. With the sandbox
    off: as ourselves, with a clean environment."""
    prepare_workspace(settings, workspace, deploy_id)
    home = str(workspace / HOME)
    fds = _Fds()
    try:
        script_fd = fds.add(script.encode())
        if not enabled(settings):
            clean = {"PATH": cmd.PATH, "HOME": home, "LANG": "C.UTF-8", **(env or {})}
            return await run_local(
                ["bash", f"/dev/fd/{script_fd}"],
                timeout=timeout,
                cwd=cwd,
                env=clean,
                inherit_env=False,
                pass_fds=fds.fds,
                on_line=on_line,
                what=what,
            )
        await require(settings, what, stage)
        uid = uid_for(settings, deploy_id)
        sources = [(workspace, True), *((path, False) for path in readonly)]
        stage_mounts: list[tuple[str, str]] = []
        binds: list[cmd.Bind] = []
        for index, (source, writable) in enumerate(sources):
            origin = str(source)
            if uid is not None:  # reach it through a mount point the sandbox uid can enter
                point = settings.sandbox_stage / str(index)
                point.mkdir(mode=0o755, exist_ok=True)
                stage_mounts.append((origin, str(point)))
                origin = str(point)
            binds.append(cmd.Bind(origin, str(source), writable))
        data = [
            cmd.DataFile(script_fd, cmd.SCRIPT),
            cmd.DataFile(fds.add(cmd.passwd(home).encode()), "/etc/passwd", "0444"),
            cmd.DataFile(fds.add(cmd.group().encode()), "/etc/group", "0444"),
        ]
        for dest, content in sorted((files or {}).items()):
            data.append(cmd.DataFile(fds.add(content), dest))
        links, dirs = root_layout()
        spec = cmd.Spec(
            argv=("bash", cmd.SCRIPT),
            cwd=str(cwd),
            home=home,
            binds=tuple(binds),
            data=tuple(data),
            network=network,
            env=dict(env or {}),
            root_links=links,
            root_dirs=dirs,
        )
        argv = cmd.command(settings.bwrap, spec, limits(settings), uid=uid, stage=stage_mounts)
        try:
            return await run_local(
                argv,
                timeout=timeout,
                cwd=Path("/"),
                env={},
                inherit_env=False,
                pass_fds=fds.fds,
                on_line=on_line,
                what=what,
            )
        except asyncio.CancelledError:  # stopped (a cancel): its process group was killed;
            await wait_gone(uid)  # the deploy's own uid tells what might be left
            raise
    finally:
        fds.close()
