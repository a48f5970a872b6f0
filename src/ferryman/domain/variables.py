"""Task variables: exported to every task and substituted where written Walle-style.

``{WORKSPACE}`` in a task becomes ``${WORKSPACE}``: the shell expands the exported variable, so a
value is never re-parsed as shell syntax. Only the names below are substituted; other braces
(``{a,b}``, ``${HOME}``) are left alone.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

NAMES = (
    "WEBROOT",
    "RELEASES",
    "RELEASE",
    "VERSION",
    "WORKSPACE",
    "PROJECT",
    "ENV",
    "BRANCH",
    "TAG",
    "COMMIT",
    "COMMIT_SHORT",
    "DEPLOY_ID",
    "DEPLOY_USER",
    "DEPLOY_TIME",
    "HOST",
)
_BRACED = re.compile(r"(?<!\$)\{(" + "|".join(NAMES) + r")\}")


def substitute(script: str) -> str:
    """``cd {RELEASE}`` → ``cd ${RELEASE}`` for the known names only."""
    return _BRACED.sub(r"${\1}", script)


def task_script(script: str, variables: Mapping[str, str], cwd: str | None = None) -> str:
    """One bash script: strict mode, exported variables, optional ``cd``, then the task."""
    lines = ["set -euo pipefail"]
    for key in sorted(variables):
        lines.append(f"export {key}={shlex.quote(variables[key])}")
    if cwd:
        lines.append(f"cd -- {shlex.quote(cwd)}")
    lines.append(substitute(script))
    return "\n".join(lines) + "\n"
