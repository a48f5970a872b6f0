"""What a failed deploy's banner shows first: the host, the stage, the exit code and the last
lines of stderr — and, behind a toggle, the command, with secrets masked and the script a
``bash -c`` wraps shown as a script rather than as one quoted word."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any

from ferryman.domain.statuses import DeployStatus, HostStatus

TAIL_LINES = 12
MAX_COMMAND = 20_000
WRAPPERS = ("bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash")


def readable_command(command: str) -> dict[str, str]:
    """``timeout -k 5 60 bash -c 'set -e; cd …'`` → ``{"run": "timeout -k 5 60 bash -c",
    "script": "set -e; cd …"}``; a command that is not a shell script stays whole."""
    command = command[:MAX_COMMAND]
    try:
        words = shlex.split(command)
    except ValueError:
        return {"run": command, "script": ""}
    for i in range(len(words) - 2):
        if words[i] in WRAPPERS and words[i + 1] in ("-c", "-ec", "-lc"):
            return {"run": shlex.join(words[: i + 2]), "script": words[i + 2].strip("\n")}
    return {"run": command, "script": ""}


def _tail(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line.strip()]
    return lines[-TAIL_LINES:]


def failure(deploy: Mapping[str, Any], mask: Callable[[str], str]) -> dict[str, Any] | None:
    """The failure of an ended deploy, ready for the banner (``None`` when it did not fail
    or recorded no error). Every string passes through ``mask``."""
    failed_hosts = [
        {"host": h["host"], "error": mask(str(h.get("error") or ""))}
        for h in deploy.get("hosts") or []
        if h.get("status") == HostStatus.FAILED
    ]
    error = deploy.get("error")
    status = deploy.get("status")
    if status == DeployStatus.SUCCESS and failed_hosts:  # a gray release within max_failed
        error = {}
    elif status not in (DeployStatus.FAILED, DeployStatus.CANCELLED):
        return None
    if not isinstance(error, dict):  # a failure that recorded no error: nothing to show
        return None
    details = error.get("details") or {}
    if not isinstance(details, dict):
        details = {}
    command = mask(str(details.get("command") or ""))
    exit_status = details.get("exit_status")
    return {
        "code": str(error.get("code") or ""),
        "message": mask(str(error.get("message") or "")),
        "host": str(details.get("host") or ""),
        "stage": str(details.get("stage") or ""),
        "exit_status": exit_status if isinstance(exit_status, int) else None,
        "stderr": [mask(line) for line in _tail(str(details.get("stderr_tail") or ""))],
        "command": readable_command(command) if command else None,
        "failed_hosts": sorted(failed_hosts, key=lambda h: h["host"]),
    }
