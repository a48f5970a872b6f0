"""The exit statuses of ``ferryman``: the contract a CI job reads. The README's table lists
exactly these (``tests/cli/test_cli_help.py`` checks it).

Which error gives 1 and which 2 is each error class's ``exit_code`` (``ferryman/errors.py``):
refusals of what was asked (bad input, invalid config, not signed in, no permission, not
found) are 2; what failed or conflicted while doing it is 1."""

from __future__ import annotations

from ferryman.domain.statuses import DeployStatus

OK = 0
FAILED = 1
USAGE = 2
PAUSED = 3
INTERRUPTED = 130

MEANING: dict[int, str] = {
    OK: "success: the command did what it says; with --wait, the deploy succeeded",
    FAILED: "failure: a deploy failed or was cancelled, a check failed, hosts drifted or hold "
    "damaged releases, the server refused for a conflict (a deploy already running, a lock), "
    "the server could not be reached",
    USAGE: "usage or input error: a bad option or argument, an invalid project file, not "
    "signed in, no permission, no such project or deploy",
    PAUSED: "with --wait: the deploy is a gray release paused (after its canary or at a "
    "manual pause) and waits for `ferryman rollout continue ID` or `rollout abort ID`",
    INTERRUPTED: "interrupted (Ctrl-C); under --wait the deploy goes on on the server",
}


def of_deploy(status: str) -> int:
    """The exit status of ``--wait`` for a deploy that ended (or paused) with ``status``."""
    if status == DeployStatus.SUCCESS:
        return OK
    if status == DeployStatus.PAUSED:
        return PAUSED
    return FAILED
