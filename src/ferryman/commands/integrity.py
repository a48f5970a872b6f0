"""What a release on a host really holds: the command that lists it, and the reading of its
output — pure, no I/O.

The host does the hashing; only the listing crosses the wire. For every entry under the
release dir: its kind (``find`` ``%y``), mode, path and a symlink's target; then the sha1 of
every regular file (``sha1sum``, as the manifest records it) but the config files the deploy
rendered for this host (their content is not in the manifest); then the config paths it wrote
(``.ferryman-config``). ``find`` never follows a symlink (a committed ``data -> /etc`` is listed
as a link, never walked or hashed through); names travel NUL-separated or escaped, and the
whole output is base64 on the wire so that every byte of a name arrives as it is (the executor
reads output as text). Entries and files are sorted, so one release lists the same on every
host and a reader can parse one listing once however many hosts sent it. The executor's
``timeout`` bounds it all; a check in the background runs at a low CPU priority.

Output, split on NUL after base64 decoding::

    "KIND MODE PATH//LINK-TARGET"*  "=digests"  SHA1SUM-LINES  "=config"  CONFIG-LINES  "=end"

(a path from ``find`` never holds ``//``; the target is empty but for links), or
``=norelease`` when there is no such release directory.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ferryman.commands.remote import Command, Layout, bash, q
from ferryman.domain.config_files import LIST_FILE as CONFIG_LIST
from ferryman.domain.manifest import MANIFEST_FILE, UNREADABLE, Entry

MARK_DIGESTS, MARK_CONFIG, MARK_END, MARK_NONE = "=digests", "=config", "=end", "=norelease"
WRAP = 65536  # base64 line length: few lines for the executor to split, none too long
# The niceness of a check that runs in the background (a deploy's delta base, checked while
# it builds): reading and hashing every file then yields the CPU to what the host serves. A
# check someone waits for (a rollback, ``releases --verify``) runs at normal priority.
BACKGROUND = 10


def listing(layout: Layout, name: str, niceness: int = 0) -> Command:
    """List release ``name`` on a host (see the module docstring for the output), at
    ``niceness`` (``BACKGROUND`` for a check nobody waits for)."""
    release = q(layout.release(name))
    has_config = f"[ -f {CONFIG_LIST} ] && [ ! -L {CONFIG_LIST} ]"
    config_lines = f"if {has_config}; then tr '\\0' '\\n' < {CONFIG_LIST}; fi"
    script = f"""set -u
export LC_ALL=C
{{
if [ ! -d {release} ] || [ -L {release} ] || ! cd -- {release}; then
  printf '=norelease\\0'; exit 0
fi
find . -mindepth 1 -printf '%y %m %P//%l\\0' | sort -z
printf '=digests\\0'
find . -mindepth 1 -type f -printf '%P\\0' | sort -z | grep -zvxF -f <({config_lines}) \\
  | xargs -0 -r sha1sum --
printf '\\0=config\\0'
{config_lines}
printf '\\0=end\\0'
}} | base64 -w {WRAP}
"""
    return ("nice", "-n", str(niceness), *bash(script))


@dataclass(frozen=True)
class Listing:
    """A release as the host listed it: ``entries`` in the manifest's shape (path → kind,
    mode, sha1 / link target / ""), and the config paths the deploy wrote into it."""

    present: bool
    entries: Mapping[str, Entry] = field(default_factory=dict)
    config: tuple[str, ...] = ()

    @property
    def manifest_digest(self) -> str | None:
        """The sha1 of the release's ``.ferryman-manifest`` (None: there is none)."""
        entry = self.entries.get(MANIFEST_FILE)
        if entry is None or entry[0] != "f" or entry[2] == UNREADABLE:
            return None
        return entry[2]


_ESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def parse(output: str) -> Listing:
    """The listing command's output → a ``Listing``; ``ValueError`` when it is cut short or
    malformed (the release then cannot be called complete)."""
    # One decode of everything: a name that is not UTF-8 becomes the str Python's os.walk
    # gives it (surrogateescape), so it matches its manifest entry.
    text = base64.b64decode(output).decode("utf-8", "surrogateescape")
    if text.startswith(MARK_NONE + "\0"):
        return Listing(present=False)
    fields = text.split("\0")
    try:
        end = fields.index(MARK_DIGESTS)  # an entry starts with its kind: never this
    except ValueError:
        raise ValueError("the listing is incomplete") from None
    if fields[end + 2 : end + 5 : 2] != [MARK_CONFIG, MARK_END]:
        raise ValueError("the listing is incomplete")
    digests = _digests(fields[end + 1])
    entries: dict[str, Entry] = {}
    modes: dict[str, int] = {}
    for record in fields[:end]:
        kind, mode, rest = record.split(" ", 2)
        path, _sep, target = rest.partition("//")
        bits = modes.get(mode)
        if bits is None:
            bits = modes[mode] = int(mode, 8)
        entries[path] = (kind, bits, digests.get(path, UNREADABLE) if kind == "f" else target)
    config = tuple(p for p in fields[end + 3].split("\n") if p)
    return Listing(present=True, entries=entries, config=config)


def _digests(text: str) -> dict[str, str]:
    """``sha1sum`` lines (``HEX  PATH``; a name holding ``\\``, newline or CR is escaped and
    its line starts with ``\\``) → {path: sha1}."""
    out: dict[str, str] = {}
    for line in text.split("\n"):
        if line.startswith("\\"):
            out[_ESCAPED.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), line[43:])] = line[
                1:41
            ]
        elif line:
            out[line[42:]] = line[:40]
    return out
