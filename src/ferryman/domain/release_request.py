"""The release request of the pull-mode platform (``POST /api/v1/project``), as pure rules:
how its fields map onto a project environment's settings, and its time window.

- ``dependencies`` → ``requires.packages`` (checked on every host before anything changes);
- ``build`` and ``test`` → ``tasks.post_deploy`` (the deploy host, in the checked-out tree, in
  the sandbox): the build, then the unit tests after a marker line, so each can be read back
  and changed alone;
- ``stop`` → ``tasks.pre_release`` (before the switch), ``start`` → ``tasks.post_release``.

Commands are task strings that run exactly like hooks (one bash script each, in the
sandbox); nothing here puts them into any shell of the server.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Any

from ferryman.errors import ValidationError

TEST_MARKER = "# unit tests (release request)"
COMMANDS = ("build", "test", "start", "stop")
COMMAND_LIMIT = 8000
# a command is text: lines and tabs, never another control character
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0, DEL and C1


def command(value: str, what: str) -> str:
    """A command as it will be written into the project's tasks."""
    if len(value) > COMMAND_LIMIT:
        raise ValidationError(f"{what}: longer than {COMMAND_LIMIT} characters")
    if _CONTROL.search(value.replace("\r\n", "\n")):
        raise ValidationError(f"{what}: control characters are not allowed (only new lines, tabs)")
    if any(line.strip() == TEST_MARKER for line in value.splitlines()):
        raise ValidationError(f"{what}: must not contain the line {TEST_MARKER!r}")
    return value.replace("\r\n", "\n").strip("\n")


def split_post_deploy(script: str) -> tuple[str, str]:
    """(build, test) of a ``post_deploy`` written by :func:`join_post_deploy` (a script
    written by hand is all build)."""
    lines = script.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == TEST_MARKER:
            return "\n".join(lines[:i]).strip("\n"), "\n".join(lines[i + 1 :]).strip("\n")
    return script.strip("\n"), ""


def join_post_deploy(build: str, test: str) -> str:
    if not test:
        return build
    return f"{build}\n{TEST_MARKER}\n{test}" if build else f"{TEST_MARKER}\n{test}"


def settings_of(env: dict[str, Any]) -> dict[str, Any]:
    """What a release request sets, as an environment (its YAML as a dict) has it now."""
    tasks = env.get("tasks") or {}
    build, test = split_post_deploy(str(tasks.get("post_deploy") or ""))
    return {
        "dependencies": list((env.get("requires") or {}).get("packages") or []),
        "build": build,
        "test": test,
        "start": str(tasks.get("post_release") or ""),
        "stop": str(tasks.get("pre_release") or ""),
    }


def with_settings(
    config: dict[str, Any], env: str, asked: dict[str, Any], new_hosts: list[str]
) -> dict[str, Any]:
    """A copy of the project's config (a dict) with the environment's settings as asked
    (a key left out or ``None`` stays as it is), and ``new_hosts`` added to its hosts."""
    out = copy.deepcopy(config)
    environment = out["environments"][env]
    now = settings_of(environment)
    wanted = {k: (now[k] if asked.get(k) is None else asked[k]) for k in now}
    tasks = dict(environment.get("tasks") or {})
    tasks["post_deploy"] = join_post_deploy(wanted["build"], wanted["test"])
    tasks["pre_release"] = wanted["stop"]
    tasks["post_release"] = wanted["start"]
    environment["tasks"] = {k: v for k, v in tasks.items() if v}
    requires = dict(environment.get("requires") or {})
    requires["packages"] = list(wanted["dependencies"])
    environment["requires"] = {k: v for k, v in requires.items() if v}
    if not environment["requires"]:
        environment.pop("requires")
    if not environment["tasks"]:
        environment.pop("tasks")
    if new_hosts:
        environment["hosts"] = [*(environment.get("hosts") or []), *new_hosts]
    return out


def window(start: datetime | None, end: datetime | None) -> None:
    """A time window: an end after its start."""
    if start is not None and end is not None and end <= start:
        raise ValidationError("window: its end must be after its start")


def window_closed(request: dict[str, Any] | None, now: datetime) -> str | None:
    """The end of a release request's window when it has passed (the request may no longer
    start), else None."""
    end = ((request or {}).get("window") or {}).get("end")
    if end and datetime.fromisoformat(end) <= now:
        return str(end)
    return None
