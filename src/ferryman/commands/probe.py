"""The probe: what a target host looks like before a deploy touches it, asked in one command
and read back once into a typed ``ProbeReport``.

The builder and the parser live together so that the format between them — tab-separated
lines, one per fact — is defined in one place. Nothing here does I/O.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ferryman.domain.manifest import MANIFEST_FILE

if TYPE_CHECKING:  # remote.py re-exports ``probe``: no import of it at run time
    from ferryman.commands.remote import Command, Layout

q = shlex.quote

REQUIRED_TOOLS = ("tar", "bash", "timeout", "cp")
OPTIONAL_TOOLS = ("zstd",)
# Lines every answer has; a cut or broken answer without one is refused, never guessed at.
REQUIRED_LINES = ("webroot", "parent", "releases")

Webroot = Literal["link", "real", "missing"]


def probe(
    layout: Layout,
    commands: Sequence[str] = (),
    packages: Sequence[str] = (),
    only: Sequence[str] | None = None,
    first: str = "",
) -> Command:
    """Report the webroot, its parent, the releases dir, tools and releases present, and what
    the environment requires (commands on the PATH, installed packages: dpkg or rpm).

    Output lines are tab-separated: ``webroot link TARGET|real|missing``, ``parent ok|missing``,
    ``releases ok|unwritable``, ``tool NAME ok|missing``, ``optional NAME ok|missing``,
    ``release NAME [MANIFEST_SHA]``, ``need command|package NAME ok|missing``. With ``only``
    (an emergency rollback), just those releases are looked for (``release NAME present``),
    without hashing every manifest. ``first``: shell lines run before, printing nothing (a
    deploy's sweep of earlier deploys' fan-out leftovers, ``relay.sweep``). ``parse`` reads
    the answer.
    """
    w, r = q(layout.webroot), q(layout.releases)
    if only is None:
        releases = f"""if [ -d {r} ]; then
  for d in {r}/*/; do
    [ -d "$d" ] || continue
    n=$(basename -- "$d")
    if [ -f "$d{MANIFEST_FILE}" ]; then
      printf 'release\\t%s\\t%s\\n' "$n" "$(sha1sum < "$d{MANIFEST_FILE}" | cut -c1-40)"
    else printf 'release\\t%s\\n' "$n"; fi
  done
fi
"""
    else:
        releases = "".join(
            f"if [ -f {q(posixpath.join(layout.release(n), MANIFEST_FILE))} ]; then "
            f"printf 'release\\t%s\\tpresent\\n' {q(n)}; fi\n"
            for n in only
        )
    needs = "".join(
        f"if command -v {q(c)} >/dev/null 2>&1; then printf 'need\\tcommand\\t%s\\tok\\n' {q(c)}\n"
        f"else printf 'need\\tcommand\\t%s\\tmissing\\n' {q(c)}; fi\n"
        for c in commands
    ) + "".join(
        f"if (dpkg-query -W -f='${{Status}}' {q(p)} 2>/dev/null | grep -q 'install ok installed')"
        f" || rpm -q {q(p)} >/dev/null 2>&1; then printf 'need\\tpackage\\t%s\\tok\\n' {q(p)}\n"
        f"else printf 'need\\tpackage\\t%s\\tmissing\\n' {q(p)}; fi\n"
        for p in packages
    )
    script = (
        (f"{first}\n" if first else "")
        + needs
        + f"""set -u
if [ -L {w} ]; then printf 'webroot\\tlink\\t%s\\n' "$(readlink -- {w})"
elif [ -e {w} ]; then printf 'webroot\\treal\\n'
else printf 'webroot\\tmissing\\n'; fi
if [ -d {q(layout.webroot_parent)} ]; then printf 'parent\\tok\\n'
else printf 'parent\\tmissing\\n'; fi
if mkdir -p -- {r} 2>/dev/null && [ -w {r} ]; then printf 'releases\\tok\\n'
else printf 'releases\\tunwritable\\n'; fi
for t in {" ".join(REQUIRED_TOOLS)}; do
  if command -v "$t" >/dev/null 2>&1; then printf 'tool\\t%s\\tok\\n' "$t"
  else printf 'tool\\t%s\\tmissing\\n' "$t"; fi
done
z=$(command -v zstd 2>/dev/null || true)
if [ -n "$z" ] && [ -x "$z" ]; then printf 'optional\\tzstd\\tok\\n'
else printf 'optional\\tzstd\\tmissing\\n'; fi
{releases}"""
    )
    return ("bash", "-c", script)


@dataclass(frozen=True)
class Need:
    """A command or package the environment requires (``requires:``), and whether the host
    has it."""

    kind: Literal["command", "package"]
    name: str
    ok: bool


@dataclass(frozen=True)
class ProbeReport:
    """One host's answer to ``probe``, read once."""

    webroot: Webroot
    link: str | None = None  # the webroot's raw symlink target (``webroot == "link"``)
    parent_ok: bool = True
    releases_writable: bool = True
    tools: dict[str, bool] = field(default_factory=dict)  # required tools: name -> present
    optional: dict[str, bool] = field(default_factory=dict)  # optional tools (zstd)
    needs: tuple[Need, ...] = ()
    # release dirs present: name -> sha1 of its manifest, None without one ("present" when
    # the probe asked ``only`` for some releases)
    releases: dict[str, str | None] = field(default_factory=dict)

    @property
    def optional_present(self) -> set[str]:
        return {name for name, ok in self.optional.items() if ok}

    def problems(self) -> list[str]:
        """What forbids deploying to this host ([] when nothing does), in the probe's order."""
        found = [
            f"requires {need.kind} {need.name}, which is missing"
            for need in self.needs
            if not need.ok
        ]
        if self.webroot == "real":
            found.append(
                "webroot is a real directory (or file), not a symlink: refusing to replace it"
            )
        if not self.parent_ok:
            found.append("the webroot's parent directory does not exist")
        if not self.releases_writable:
            found.append("the releases directory cannot be created or written")
        found += [f"{name} is not installed" for name, ok in self.tools.items() if not ok]
        return found


def parse(output: str) -> ProbeReport:
    """The probe's answer as a report. Lines it does not know are ignored; an answer without
    its ``webroot``, ``parent`` or ``releases`` line, or with a known line cut short, raises
    ``ValueError`` (never guess a host's state from a cut or broken answer)."""
    webroot: Webroot | None = None
    link: str | None = None
    seen: set[str] = set()
    parent_ok = releases_writable = True
    tools: dict[str, bool] = {}
    optional: dict[str, bool] = {}
    needs: list[Need] = []
    releases: dict[str, str | None] = {}
    for line in output.splitlines():
        parts = line.split("\t")
        what, args = parts[0], parts[1:]
        if what not in ("webroot", "parent", "releases", "tool", "optional", "need", "release"):
            continue
        if not args or (what in ("tool", "optional") and len(args) < 2):
            raise ValueError(f"the probe's answer has a broken {what} line")
        seen.add(what)
        if what == "webroot":
            if args[0] == "link":
                webroot, link = "link", args[1] if len(args) > 1 else ""
            elif args[0] in ("real", "missing"):
                webroot = "real" if args[0] == "real" else "missing"
            else:
                raise ValueError(f"the probe's answer has an unknown webroot state {args[0]!r}")
        elif what == "parent":
            parent_ok = args[0] == "ok"
        elif what == "releases":
            releases_writable = args[0] == "ok"
        elif what == "tool":
            tools[args[0]] = args[1] == "ok"
        elif what == "optional":
            optional[args[0]] = args[1] == "ok"
        elif what == "need":
            if len(args) > 2 and args[0] in ("command", "package"):
                kind: Literal["command", "package"] = (
                    "command" if args[0] == "command" else "package"
                )
                needs.append(Need(kind, args[1], args[2] == "ok"))
        else:
            releases[args[0]] = args[1] if len(args) > 1 else None
    missing = [what for what in REQUIRED_LINES if what not in seen]
    if missing or webroot is None:
        raise ValueError(f"the probe's answer has no {', '.join(missing)} line")
    return ProbeReport(
        webroot=webroot,
        link=link,
        parent_ok=parent_ok,
        releases_writable=releases_writable,
        tools=tools,
        optional=optional,
        needs=tuple(needs),
        releases=releases,
    )
