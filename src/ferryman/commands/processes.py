"""Remote commands a deploy can stop later, from any connection and any process: pure
builders, nothing runs here.

Every command a deploy runs on a target goes through ``track``: a small bash wrapper records
the command's session (sshd makes one per command) under the environment's releases dir, in
``<releases>/.ferryman-run/<deploy id>.<session id>``, holding the session leader's start time
(field 22 of ``/proc/<pid>/stat``), runs the command, removes the marker and exits with the
command's status; stdin goes straight to the command. A session, not a process group: a hook
that runs ``timeout 30 curl …`` or ``set -m`` makes groups of its own, but only ``setsid``
(a daemon meant to outlive the deploy) leaves the session. Where the marker cannot be written
(the releases dir is not writable yet), the command runs untracked: the probe then says why the
releases dir is unusable.

``stop`` takes every marker of a deploy whose session leader is still the process that was
recorded (same pid *and* start time: a pid reused by an unrelated process is never signalled),
TERMs every process of those sessions, KILLs what is left after a grace, waits until none runs
any more (a zombie waiting for its parent to reap it runs nothing), and removes the markers.
It prints ``stopped<TAB>SID`` per session it ended and ``alive<TAB>SID`` (exit 1) for any with
a process that outlived the KILL (one of another user's: ``sudo``).

Why this is not a new way in: the marker dir is a dot-dir at the top of the releases dir — a
release is unpacked into ``<releases>/<name>`` (names start with a date, never a dot) and the
probe lists releases with ``*/``, which skips dot-dirs; only the deploy user writes there, and
``stop`` runs as that user, so it can signal only what the deploy user could anyway. Session
ids are taken only as plain decimal numbers above 1, and a marker that is a symlink, or a
marker dir that is one, is ignored.
"""

from __future__ import annotations

import posixpath
import shlex

from ferryman.commands.remote import Command, Layout, bash

RUN_DIR = ".ferryman-run"
TERM_GRACE = 3  # seconds between TERM and KILL
GONE_WAIT = 10  # seconds to wait for the sessions to be gone after KILL
STOPPED = "stopped"
ALIVE = "alive"

# $1: the marker dir, $2: the marker prefix (deploy id and a dot), then the command's argv.
# Tracked only in a session of its own (sshd makes one per command): the wrapper leads it, or
# its parent does (a login shell that did not exec it) — never a session with other work in it.
TRACK = r"""r=$1 n=$2 t=; shift 2
IFS= read -r s < /proc/$$/stat; s=(${s##*) }); i=${s[3]}
if [ "$i" = "$$" ]; then t=${s[19]}
elif [ "$i" = "${s[1]}" ] && IFS= read -r s 2>/dev/null < "/proc/$i/stat"; then
  s=(${s##*) }); t=${s[19]}
fi
if [ -n "$t" ] && [ ! -L "$r" ] && { [ -d "$r" ] || mkdir -p -m 0700 -- "$r" 2>/dev/null; } &&
  { printf '%s\n' "$t" > "$r/$n$i"; } 2>/dev/null; then
  exec 3<&0; "$@" <&3 3<&- & exec 3<&-
  wait "$!" 2>/dev/null; c=$?
  rm -f -- "$r/$n$i" 2>/dev/null
  exit "$c"
fi
exec "$@"
"""


def run_dir(layout: Layout) -> str:
    """Where the process markers of an environment's deploys live on a host."""
    return posixpath.join(layout.releases, RUN_DIR)


def marker_prefix(deploy_id: int) -> str:
    return f"{int(deploy_id)}."


def track(layout: Layout, deploy_id: int, argv: Command) -> Command:
    """``argv`` started so that ``stop(layout, deploy_id)`` can stop it later."""
    return ("bash", "-c", TRACK, "ferryman-run", run_dir(layout), marker_prefix(deploy_id), *argv)


def stop(
    layout: Layout, deploy_id: int, grace: int = TERM_GRACE, gone_wait: int = GONE_WAIT
) -> Command:
    """Stop every command deploy ``deploy_id`` still runs on the host (see the module doc)."""
    script = f"""r={shlex.quote(run_dir(layout))} n={shlex.quote(marker_prefix(deploy_id))}
[ -d "$r" ] && [ ! -L "$r" ] || exit 0
started() {{
  local s a
  IFS= read -r s 2>/dev/null < "/proc/$1/stat" || return 1
  a=(${{s##*) }}); t=${{a[19]}}
}}
members() {{
  local f s a p; alive=()
  for f in /proc/[0-9]*/stat; do
    IFS= read -r s 2>/dev/null < "$f" || continue
    a=(${{s##*) }})
    [ "${{a[0]}}" != Z ] || continue
    case " ${{sessions[*]}} " in *" ${{a[3]}} "*)
      p=${{f#/proc/}}; p=${{p%/stat}}
      [ -z "$1" ] || kill "-$1" "$p" 2>/dev/null
      case " ${{alive[*]}} " in *" ${{a[3]}} "*) ;; *) alive+=("${{a[3]}}");; esac
    esac
  done
  [ "${{#alive[@]}}" -gt 0 ]
}}
sessions=()
for m in "$r/$n"*; do
  [ -f "$m" ] && [ ! -L "$m" ] || continue
  g=${{m##*/}}; g=${{g#"$n"}}
  case $g in ''|0*|1|*[!0-9]*) rm -f -- "$m"; continue;; esac
  [ "${{#g}}" -le 10 ] || {{ rm -f -- "$m"; continue; }}
  want=; IFS= read -r want < "$m"
  case $want in ''|*[!0-9]*) rm -f -- "$m"; continue;; esac
  if started "$g" && [ "$t" = "$want" ]; then sessions+=("$g"); else rm -f -- "$m"; fi
done
[ "${{#sessions[@]}}" -gt 0 ] || exit 0
members TERM
i=0
while members && [ "$i" -lt {int(grace) * 10} ]; do sleep 0.1; i=$((i + 1)); done
i=0
while members KILL && [ "$i" -lt {int(gone_wait) * 10} ]; do sleep 0.1; i=$((i + 1)); done
for g in "${{sessions[@]}}"; do
  case " ${{alive[*]}} " in *" $g "*) continue;; esac
  rm -f -- "$r/$n$g"
  printf '{STOPPED}\\t%s\\n' "$g"
done
[ "${{#alive[@]}}" -eq 0 ] || {{ printf '{ALIVE}\\t%s\\n' "${{alive[@]}}"; exit 1; }}
"""
    return bash(script)


def stopped(output: str) -> tuple[list[int], list[int]]:
    """(sessions stopped, sessions still running) from what ``stop`` printed."""
    done: list[int] = []
    alive: list[int] = []
    for line in output.splitlines():
        word, _, value = line.partition("\t")
        if value.isascii() and value.isdigit():
            if word == STOPPED:
                done.append(int(value))
            elif word == ALIVE:
                alive.append(int(value))
    return done, alive
