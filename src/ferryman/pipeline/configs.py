"""Config files in the release: rendered here, per host, and written into the new release dir
after the transfer (so they are part of it: a rollback brings back the config that belonged to
the release it goes back to).

Each host gets one small tar on stdin: its effective files, rendered with its variables
(``${HOST}`` is the host), and ``.ferryman-config`` listing their paths; the next release
removes the paths listed there before it unpacks, so a file dropped from the config does not
linger. Rendered content never reaches a log, a step record or the database.
"""

from __future__ import annotations

import io
import tarfile
import time

from ferryman.commands import remote as cmd
from ferryman.domain import config_files as cf
from ferryman.domain.manifest import Manifest, excluded
from ferryman.errors import ConfigError
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target

STAGE = "transfer"


def excludes(ctx: Context) -> list[str]:
    """Manifest patterns for the config paths: the repository's copy of such a path (a
    ``config.example`` turned real, a committed ``.env``) is not shipped beside it."""
    return ["/" + f.path for f in ctx.config_files]


def check_shared(ctx: Context) -> None:
    """A config file inside a shared path would be written through the link into the shared
    dir, outside the release: refuse before anything changes."""
    for file in ctx.config_files:
        if excluded(file.path, ["/" + p for p in ctx.env.shared]):
            raise ConfigError(
                f"config file {file.path} is inside a shared path; it would not belong to the "
                "release. Move it, or stop sharing that path"
            )


def check_parents(ctx: Context, manifest: Manifest) -> None:
    """Before any host changes: a config file or a shared path whose parent in the release is
    a symlink or a file (``conf -> /etc`` committed beside config file ``conf/app.env``) would
    make Ferryman write, copy or delete through that link, outside the release. Refuse, naming
    it. (Each host checks again before it writes: ``commands.remote``.)"""
    wanted = [("config file", f.path) for f in ctx.config_files]
    wanted += [("shared path", p) for p in ctx.env.shared]
    for what, path in wanted:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            entry = manifest.get(parent)
            if entry is not None and entry[0] != "d":
                kind = "a symlink" if entry[0] == "l" else "a file"
                raise ConfigError(
                    f"{what} {path}: {parent} in the release is {kind}; Ferryman never writes "
                    f"through it. Make {parent} a directory in the repository, or choose "
                    f"another {what}"
                )


def package_for(ctx: Context, target: Target, warned: set[tuple[str, str]]) -> bytes:
    """The tar of ``target``'s rendered files and the list file."""
    ident = ctx.host_ids.get(target.key, cf.HostIdentity(target.key))
    variables = ctx.variables(host=target.key)
    now = time.time()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in ctx.config_files:
            template, _scopes = cf.effective(file, ident)
            text, unknown = cf.render(template, variables)
            for name in unknown:
                if (file.path, name) not in warned:
                    warned.add((file.path, name))
                    ctx.recorder.log(
                        f"config {file.path}: ${{{name}}} is not a known variable; left as written",
                        stage=STAGE,
                    )
            _add(tar, file.path, text.encode(), file.mode, now)
        listing = b"".join(f.path.encode() + b"\0" for f in ctx.config_files)
        _add(tar, cf.LIST_FILE, listing, 0o600, now)
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(mtime)
    tar.addfile(info, io.BytesIO(data))


async def write(ctx: Context, target: Target, warned: set[tuple[str, str]]) -> None:
    """Write ``target``'s config files into the new release."""
    if not ctx.config_files:
        return
    await ctx.remote(
        target,
        cmd.write_config(ctx.layout, ctx.release, [f.path for f in ctx.config_files]),
        stage=STAGE,
        stdin=package_for(ctx, target, warned),
        shown="write config " + ", ".join(f.path for f in ctx.config_files),
    )
