"""Pure builders of the build sandbox's command line (bubblewrap); nothing runs here.

A sandboxed command is one argv, read left to right:

1. ``unshare --mount`` + ``sh``: (only when the server runs as root) bind the workspace (and the
   project's mirror) onto empty mount points under the stage dir, in a mount namespace of its
   own, so that bubblewrap, running as an unprivileged uid, can reach them even when
   ``FERRYMAN_HOME`` lies under a directory that uid cannot enter;
2. ``setpriv``: (root only) drop to the deploy's own unprivileged uid and gid, no groups;
3. ``prlimit``: CPU seconds, data memory, processes (per uid: one uid per deploy), no core;
4. ``bwrap``: new user, PID, IPC, UTS, cgroup (and network) namespaces, a read-only root made
   of ``/usr``, a few ``/etc`` files and the workspace (the one writable path besides private
   ``/tmp`` and ``/var/tmp``), then ``bash`` on the script.

Secret values never appear here: the script (with the deploy's variables) and any key reach
the sandbox through file descriptors (``--ro-bind-data``), which the caller fills.

Stopping it (a timeout, a cancel) kills the process group of the whole argv: steps 1–3 exec
one another and bubblewrap's own processes stay in that group, while what runs inside has a
session of its own (``--new-session``). It dies all the same: bubblewrap's first process inside
is the PID namespace's init, killed with its parent (``--die-with-parent``), and the kernel ends
every process of a PID namespace whose init is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

INSIDE_UID = 1000
INSIDE_GID = 1000
RUN_DIR = "/run/ferryman"
SCRIPT = f"{RUN_DIR}/task.sh"
SSH_KEY = f"{RUN_DIR}/ssh/id"
KNOWN_HOSTS = f"{RUN_DIR}/ssh/known_hosts"
HOSTNAME = "ferryman-sandbox"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Read-only where they exist; everything else of /etc (shadow, ssh host keys, sudoers, the
# server's own config) is absent. passwd and group are written for the sandbox (below).
ETC = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "gitconfig",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "protocols",
    "resolv.conf",
    "services",
    "ssh/ssh_config",
    "ssl",
    "subversion/config",
    "timezone",
)
ROOT_DIRS = ("/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin")
# The package databases a local target's `requires.packages` is checked against (dpkg-query,
# rpm -q), read-only; a build never sees them. rpm's newer home is under /usr already.
PACKAGE_DBS = ("/var/lib/dpkg", "/var/lib/rpm")

# Runs as root in a fresh mount namespace: "$1" onto "$2", … up to "--", then exec the rest.
STAGE_SCRIPT = (
    'while [ "$1" != -- ]; do mount -n --bind -- "$1" "$2" || exit 125; shift 2; done; '
    'shift; exec "$@"'
)


@dataclass(frozen=True)
class Bind:
    source: str
    dest: str
    writable: bool = False


@dataclass(frozen=True)
class DataFile:
    """A file made inside the sandbox from what the caller writes to ``fd``."""

    fd: int
    dest: str
    perms: str = "0400"


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    memory: int  # bytes (RLIMIT_DATA: heap and anonymous mappings, not reserved address space)
    processes: int


@dataclass(frozen=True)
class Spec:
    """What one sandboxed command sees and does."""

    argv: tuple[str, ...]  # run inside
    cwd: str
    home: str
    binds: tuple[Bind, ...] = ()
    data: tuple[DataFile, ...] = ()
    network: bool = True
    env: Mapping[str, str] = field(default_factory=dict)  # besides PATH, HOME, LANG (no secrets)
    root_links: Mapping[str, str] = field(default_factory=dict)  # "/bin" -> "usr/bin"
    root_dirs: tuple[str, ...] = ()  # top-level dirs bound read-only (not merged into /usr)


def bwrap_argv(bwrap: str, spec: Spec) -> list[str]:
    argv = [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if not spec.network:
        argv.append("--unshare-net")
    argv += [
        "--die-with-parent",
        "--new-session",
        "--disable-userns",
        "--uid",
        str(INSIDE_UID),
        "--gid",
        str(INSIDE_GID),
        "--hostname",
        HOSTNAME,
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for link in sorted(spec.root_links):
        argv += ["--symlink", spec.root_links[link], link]
    for path in spec.root_dirs:
        argv += ["--ro-bind", path, path]
    argv += ["--ro-bind-try", "/opt", "/opt"]
    for name in ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    for bind in spec.binds:
        argv += ["--bind" if bind.writable else "--ro-bind", bind.source, bind.dest]
    for data in spec.data:
        argv += ["--perms", data.perms, "--ro-bind-data", str(data.fd), data.dest]
    argv += ["--remount-ro", "/", "--chdir", spec.cwd, "--clearenv"]
    env = {"PATH": PATH, "HOME": spec.home, "LANG": "C.UTF-8", **spec.env}
    for key in sorted(env):
        argv += ["--setenv", key, env[key]]
    return [*argv, "--", *spec.argv]


def limits_argv(limits: Limits) -> list[str]:
    return [
        "prlimit",
        f"--cpu={limits.cpu_seconds}",
        f"--data={limits.memory}",
        f"--nproc={limits.processes}",
        "--core=0",
        "--",
    ]


def drop_argv(uid: int, gid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


def stage_argv(mounts: Sequence[tuple[str, str]]) -> list[str]:
    """Bind each (source, mount point) in a private mount namespace, then exec what follows."""
    argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", STAGE_SCRIPT, "sh"]
    for source, point in mounts:
        argv += [source, point]
    return [*argv, "--"]


def command(
    bwrap: str,
    spec: Spec,
    limits: Limits,
    *,
    uid: int | None,
    stage: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """The whole argv; ``uid`` None: run as ourselves (the server is not root)."""
    argv: list[str] = []
    if uid is not None:
        if stage:
            argv += stage_argv(stage)
        argv += drop_argv(uid, uid)
    return [*argv, *limits_argv(limits), *bwrap_argv(bwrap, spec)]


def passwd(home: str) -> str:
    return (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"build:x:{INSIDE_UID}:{INSIDE_GID}:Ferryman build:{home}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )


def group() -> str:
    return f"root:x:0:\nbuild:x:{INSIDE_GID}:\nnogroup:x:65534:\n"


def probe_spec(root_links: Mapping[str, str], root_dirs: tuple[str, ...]) -> Spec:
    """The trivial sandbox the availability probe makes (no network, nothing bound)."""
    return Spec(
        argv=("/usr/bin/true",),
        cwd="/",
        home="/tmp",
        network=False,
        root_links=root_links,
        root_dirs=root_dirs,
    )
