"""Commands run on target hosts, as values: argv tuples. Nothing here does I/O.

Scripts are built with ``shlex.quote`` for every value; the executor adds the remote ``timeout``
wrapper and joins argv with ``shlex.join``. Paths and release names reaching these builders were
validated at the edge (``ferryman.domain.validate``).
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# the probe has its own module (builder and parser together); ``remote.probe`` stays its name
from ferryman.commands.probe import probe as probe
from ferryman.domain.config_files import LIST_FILE as CONFIG_LIST
from ferryman.domain.manifest import MANIFEST_FILE, VERSION_FILE

Command = tuple[str, ...]

STAGING_PREFIX = ".ferryman-next-"
# Paths to delete are written into the script up to this many bytes (one SSH command per host);
# beyond it they go on stdin of a separate command (one argv string is limited to 128 KiB).
INLINE_DELETE_LIMIT = 32_000
# How a package is compressed: "zstd" when every host has it, else "gzip", or "none".
Compression = Literal["zstd", "gzip", "none"]

# Exit codes of our own scripts, so the pipeline can name the cause.
EXIT_WEBROOT_IS_DIR = 90
EXIT_RELEASE_MISSING = 91
EXIT_PARENT_MISSING = 92
EXIT_UNSAFE_PATH = 93  # a path Ferryman writes or removes would leave the release

# Shell functions for scripts that touch paths inside a release, where a repository controls
# what is there: a committed symlink must never make Ferryman write or delete outside it.
# ``fm_plain REL`` — REL is relative, with no empty, ``.`` or ``..`` component;
# ``fm_real_parents REL`` — run in the release dir: no parent of REL is a symlink or a
# non-directory (checked top down, so no component is ever resolved through a link);
# ``fm_inside`` — a filter of NUL-separated paths: passes those both accept, names the rest.
SAFE_PATHS = r"""fm_plain() {
  case "/$1/" in //*|*//*|*/./*|*/../*) return 1;; esac
}
fm_real_parents() {
  local rest="$1" d=""
  while [ "${rest#*/}" != "$rest" ]; do
    d="$d${rest%%/*}"
    if [ -L "$d" ]; then
      printf 'ferryman: refusing %s: %s is a symlink\n' "$1" "$d" >&2; return 1
    fi
    if [ -e "$d" ] && [ ! -d "$d" ]; then
      printf 'ferryman: refusing %s: %s is not a directory\n' "$1" "$d" >&2; return 1
    fi
    d="$d/"; rest="${rest#*/}"
  done
}
fm_inside() {
  local p
  while IFS= read -r -d '' p || [ -n "$p" ]; do
    if fm_plain "$p" && fm_real_parents "$p" 2>/dev/null; then printf '%s\0' "$p"
    else printf 'ferryman: not removing %q: not a path inside the release\n' "$p" >&2; fi
  done
}
"""

q = shlex.quote


def bash(script: str) -> Command:
    return ("bash", "-c", script)


@dataclass(frozen=True)
class Layout:
    """Where a project environment lives on a host."""

    webroot: str
    releases: str
    shared_dir: str

    def release(self, name: str) -> str:
        return posixpath.join(self.releases, name)

    def staging(self, deploy_id: int) -> str:
        """Where a deploy links the live release while the build runs (a dot-dir: never
        taken for a release)."""
        return posixpath.join(self.releases, f"{STAGING_PREFIX}{deploy_id}")

    @property
    def webroot_parent(self) -> str:
        return posixpath.dirname(self.webroot)


def live_state(layout: Layout) -> Command:
    """Where the webroot points and the release file there: ``link TARGET`` (or ``nolink``),
    then the ``.ferryman-release`` lines of the live release (nothing when it has none)."""
    w = q(layout.webroot)
    return bash(
        f"if [ -L {w} ]; then printf 'link\\t%s\\n' \"$(readlink -- {w})\"; "
        f"cat -- {w}/{VERSION_FILE} 2>/dev/null || true; else echo nolink; fi\n"
    )


def read_manifest(layout: Layout, name: str) -> Command:
    return ("cat", "--", posixpath.join(layout.release(name), MANIFEST_FILE))


def drop_config(new: str) -> str:
    """Shell lines removing, from a release dir copied from another, the config files that
    release listed in ``.ferryman-config`` (this release writes its own; ``new`` is quoted).

    The list is read only from a regular file, and only paths inside the release are removed
    (``fm_inside``): a list a repository planted in an older release never deletes anything
    elsewhere. Needs ``SAFE_PATHS`` defined first."""
    listing = f"{new}/{CONFIG_LIST}"
    return (
        f"if [ -f {listing} ] && [ ! -L {listing} ]; then (cd -- {new} && "
        f"fm_inside < {CONFIG_LIST} | xargs -0 -r rm -f --); fi\n"
        f"rm -f -- {listing}"
    )


def drop_shared(new: str, shared: Sequence[str]) -> str:
    """Shell lines removing, from a release dir copied from another, the links its shared
    paths are (``link_shared`` made them there; it links the new release again after the
    transfer): files the delta unpacks under a shared path must land in the release, never
    through the link into the shared dir every release uses (``new`` is quoted). Only a link
    at a path whose parents are real directories of the release is removed. Needs
    ``SAFE_PATHS`` defined first."""
    if not shared:
        return ""
    checks = "".join(
        f"if fm_plain {q(p)} && fm_real_parents {q(p)} && [ -L {q(p)} ]; then rm -f -- {q(p)}; fi\n"
        for p in shared
    )
    return f"(cd -- {new}\n{checks})\n"


def _remove_listed(source: str = "") -> str:
    """Remove the NUL-separated paths on stdin (or piped from ``source``) from the release
    dir (the current directory), each only when it stays inside it."""
    remove = "fm_inside | xargs -0 -r rm -rf --"
    return f"{source} | {remove}" if source else remove


def start_release(
    layout: Layout, name: str, base: str | None, shared: Sequence[str] = ()
) -> Command:
    """Create the release dir: empty, or a hard-linked copy of ``base`` with the paths listed
    NUL-separated on stdin removed (they are gone or changed in the new release)."""
    new = q(layout.release(name))
    if base is None:
        return bash(f"set -eu\nrm -rf -- {new}\nmkdir -p -- {new}\ncat >/dev/null\n")
    return bash(
        f"set -eu\n{SAFE_PATHS}rm -rf -- {new}\ncp -al -- {q(layout.release(base))} {new}\n"
        f"{drop_config(new)}\n{drop_shared(new, shared)}cd -- {new}\n{_remove_listed()}\n"
    )


def prelink(layout: Layout, base: str, deploy_id: int) -> Command:
    """Hard-link a copy of the live release into this deploy's staging dir, ahead of time
    (it runs while the deploy host checks out and builds). Staging dirs of earlier deploys are
    stale by then (this runs under the project+environment lock) and are removed first."""
    staging = q(layout.staging(deploy_id))
    stale = f"{q(layout.releases)}/{STAGING_PREFIX}*"
    return bash(f"set -eu\nrm -rf -- {stale}\ncp -al -- {q(layout.release(base))} {staging}\n")


def adopt_prelinked(
    layout: Layout, name: str, deploy_id: int, shared: Sequence[str] = ()
) -> Command:
    """Turn the staging copy into the release dir, then remove the paths listed NUL-separated
    on stdin (changed or gone) — the same result as ``start_release`` with a base."""
    new = q(layout.release(name))
    return bash(
        f"set -eu\n{SAFE_PATHS}rm -rf -- {new}\nmv -T -- {q(layout.staging(deploy_id))} {new}\n"
        f"{drop_config(new)}\n{drop_shared(new, shared)}cd -- {new}\n{_remove_listed()}\n"
    )


def remove_staging(layout: Layout, deploy_id: int) -> Command:
    return ("rm", "-rf", "--", layout.staging(deploy_id))


def remove_leftovers(layout: Layout, deploy_id: int) -> Command:
    """What a deploy interrupted by a dead worker can leave on a host besides its release:
    its staging copy and the half-made symlink of a switch (only if it is a symlink)."""
    tmp = q(_switch_link(layout, deploy_id))
    return bash(
        f"set -eu\nrm -rf -- {q(layout.staging(deploy_id))}\n"
        f"if [ -L {tmp} ]; then rm -f -- {tmp}; fi\n"
    )


def unpack(layout: Layout, name: str, compression: Compression) -> Command:
    """Unpack the package from stdin into the release dir (files get fresh inodes)."""
    filters: dict[str, tuple[str, ...]] = {"zstd": ("-I", "zstd"), "gzip": ("-z",), "none": ()}
    return ("tar", *filters[compression], "-xf", "-", "--no-same-owner", "-C", layout.release(name))


def inline_delete_fits(paths: Sequence[str]) -> bool:
    return sum(len(q(p)) + 1 for p in paths) <= INLINE_DELETE_LIMIT


def receive_release(
    layout: Layout,
    name: str,
    compression: Compression,
    *,
    base: str | None = None,
    staged_by: int | None = None,
    delete: Sequence[str] = (),
    shared: Sequence[str] = (),
) -> Command:
    """One command for the whole transfer on a host: make the release dir — empty, a
    hard-linked copy of ``base``, or the copy deploy ``staged_by`` linked early — remove the
    changed and deleted ``paths`` from it (so changed files get fresh inodes and older releases
    are never modified), then unpack the package from stdin."""
    new = q(layout.release(name))
    lines = ["set -euo pipefail", SAFE_PATHS.rstrip("\n"), f"rm -rf -- {new}"]
    if staged_by is not None:
        lines.append(f"mv -T -- {q(layout.staging(staged_by))} {new}")
        lines.append(drop_config(new))
        lines.append(drop_shared(new, shared))
    elif base is not None:
        lines.append(f"cp -al -- {q(layout.release(base))} {new}")
        lines.append(drop_config(new))
        lines.append(drop_shared(new, shared))
    else:
        lines.append(f"mkdir -p -- {new}")
    if delete:
        listed = " ".join(q(p) for p in delete)
        lines.append(f"cd -- {new}")
        lines.append(_remove_listed(f"printf '%s\\0' {listed}"))
    lines.append("exec " + shlex.join(unpack(layout, name, compression)))
    return bash("\n".join(lines) + "\n")


def write_config(layout: Layout, name: str, paths: Sequence[str] = ()) -> Command:
    """Unpack a host's rendered config files (a tar on stdin) into the release, with their
    modes exactly as given and owned by the deploy user.

    tar follows a symlink it finds on a member's parent (``conf -> /etc`` makes
    ``conf/app.env`` land in ``/etc``): every ``paths`` entry is checked first, and a parent
    that is a symlink or not a directory refuses the whole write (exit ``EXIT_UNSAFE_PATH``,
    naming the path). A symlink at a config path itself is removed (tar would replace it)."""
    release = q(layout.release(name))
    lines = ["set -euo pipefail", SAFE_PATHS.rstrip("\n"), f"cd -- {release}"]
    for rel in [*paths, CONFIG_LIST]:
        lines.append(f"fm_plain {q(rel)} && fm_real_parents {q(rel)} || exit {EXIT_UNSAFE_PATH}")
        lines.append(f"if [ -L {q(rel)} ]; then rm -f -- {q(rel)}; fi")
    lines.append("exec tar -xpf - --no-same-owner --no-overwrite-dir -C " + release)
    return bash("\n".join(lines) + "\n")


def link_shared(layout: Layout, name: str, paths: Sequence[str]) -> Command | None:
    """Link each shared path from the shared dir into the release.

    On first use the shared copy is seeded from the release (a file or directory, never a
    symlink); when neither exists an empty directory is made. A parent of a shared path that
    is a symlink or not a directory — in the release (a repository commits ``data -> /etc``)
    or in the shared dir — refuses the deploy on that host (exit ``EXIT_UNSAFE_PATH``) before
    anything is copied, removed or linked.
    """
    if not paths:
        return None
    release = q(layout.release(name))
    shared = q(layout.shared_dir)
    lines = ["set -eu", SAFE_PATHS.rstrip("\n"), f"mkdir -p -- {shared}"]
    for rel in paths:
        r = q(rel)
        lines += [
            f"(cd -- {release} && fm_plain {r} && fm_real_parents {r}) || exit {EXIT_UNSAFE_PATH}",
            f"(cd -- {shared} && fm_real_parents {r}) || exit {EXIT_UNSAFE_PATH}",
        ]
    for rel in paths:
        src = q(posixpath.join(layout.shared_dir, rel))
        dst = q(posixpath.join(layout.release(name), rel))
        lines += [
            f"mkdir -p -- {q(posixpath.dirname(posixpath.join(layout.shared_dir, rel)))}",
            f"if [ ! -e {src} ] && [ ! -L {src} ]; then",
            f"  if [ -e {dst} ] && [ ! -L {dst} ]; then cp -a -- {dst} {src}",
            f"  else mkdir -p -- {src}; fi",
            "fi",
            f"rm -rf -- {dst}",
            f"mkdir -p -- {q(posixpath.dirname(posixpath.join(layout.release(name), rel)))}",
            f"ln -sfn -- {src} {dst}",
        ]
    return bash("\n".join(lines) + "\n")


def _switch_link(layout: Layout, deploy_id: int) -> str:
    """The symlink a switch makes beside the webroot before renaming it over the webroot."""
    return posixpath.join(
        layout.webroot_parent, f".{posixpath.basename(layout.webroot)}.tmp-{deploy_id}"
    )


def switch(layout: Layout, name: str, deploy_id: int) -> Command:
    """Point the webroot at a release atomically: a new symlink renamed over the old one.

    A webroot that is a real directory is refused and left untouched.
    """
    w = q(layout.webroot)
    tmp = q(_switch_link(layout, deploy_id))
    target = q(layout.release(name))
    return bash(
        f"""set -eu
if [ -d {w} ] && [ ! -L {w} ]; then
  echo {q(f"webroot {layout.webroot} is a real directory; refusing to replace it")} >&2
  exit {EXIT_WEBROOT_IS_DIR}
fi
if [ ! -d {target} ]; then
  echo {q(f"release {name} is missing")} >&2; exit {EXIT_RELEASE_MISSING}
fi
if [ ! -d {q(layout.webroot_parent)} ]; then
  echo {q(f"webroot parent {layout.webroot_parent} does not exist")} >&2
  exit {EXIT_PARENT_MISSING}
fi
ln -sfn -- {target} {tmp}
mv -fT -- {tmp} {w}
"""
    )


def remove_webroot_link(layout: Layout) -> Command:
    """Undo a first switch (there was no previous release): remove the symlink only."""
    w = q(layout.webroot)
    return bash(f"set -eu\nif [ -L {w} ]; then rm -f -- {w}; fi\n")


def remove_releases(layout: Layout, names: Sequence[str]) -> Command:
    return ("rm", "-rf", "--", *(layout.release(n) for n in names))


# How a hook reaches a host: its script (exports of the deploy's variables, secrets too) goes
# on stdin into a 0600 file that the script removes as its first act, and runs with an empty
# stdin. Only this fixed text is on the command line: ``ps`` on the host never shows a value.
TASK_RUNNER = """umask 077
f=$(mktemp "${TMPDIR:-/tmp}/.ferryman-task.XXXXXXXX") || exit 125
trap 'rm -f -- "$f"' EXIT
trap 'exit 143' TERM INT HUP
cat > "$f" || exit 125
bash "$f" < /dev/null
"""


def run_task() -> Command:
    """A hook: ``bash`` reading the full script (strict mode, exports, cd; built by
    ``domain.variables``) from stdin; send it with ``task_input(script)``. The script is never
    part of the command line (it holds secret values)."""
    return bash(TASK_RUNNER)


def task_input(script: str) -> bytes:
    """What ``run_task`` reads on stdin: the script, removing its own file first."""
    return ('rm -f -- "$0"\n' + script).encode()
