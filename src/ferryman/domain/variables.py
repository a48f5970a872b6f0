"""Task variables: exported to every task, and the Walle ``{NAME}`` forms substituted.

Two spellings, on purpose with two meanings where Walle gave them two:

- ``${NAME}`` is the exported shell variable, the same in every task (``docs/config.md``).
- ``{NAME}`` is the form Walle's hooks are written in. It means what Walle meant, so that a
  Walle project's hooks run unchanged: ``{VERSION}`` is the release *directory* on the targets
  (Walle hooks do ``cd {VERSION}``), and ``{WORKSPACE}`` is the checkout in deploy-host tasks
  (``pre_deploy``, ``post_deploy``, ``lb_out``, ``lb_in``) but the target's directory of the
  release being deployed in target tasks (``pre_release``, ``post_release``, ``restart``, a
  ``command`` health check). Every other known ``{NAME}`` is ``${NAME}``.

A braced name becomes a reference to an exported variable (``{VERSION}`` → ``${RELEASE}``),
never the pasted value, so a value is never re-parsed as shell syntax. Only the names below are
substituted; other braces (``{a,b}``, ``${HOME}``) are left alone.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Literal

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

Where = Literal["deploy_host", "target"]

# The Walle forms whose meaning differs from the shell variable of the same name, per place.
WALLE_MEANING: dict[Where, dict[str, str]] = {
    "deploy_host": {"VERSION": "RELEASE"},
    "target": {"VERSION": "RELEASE", "WORKSPACE": "RELEASE"},
}

# Walle 2.x's names for values Ferryman exports under its own names: exported too, so that
# its hooks' ``${COMMIT_ID}`` or ``${PROJECT_NAME}`` work. A variable of the space's
# environment with one of these names wins over the alias.
WALLE_ALIASES = {
    "COMMIT_ID": "COMMIT",
    "PROJECT_NAME": "PROJECT",
    "TASK_ID": "DEPLOY_ID",
    "CURRENT_RELEASE": "RELEASES",  # Walle 2's name for the releases dir (target_releases)
}


def substitute(script: str, where: Where = "deploy_host") -> str:
    """``cd {VERSION}`` → ``cd ${RELEASE}``, ``{HOST}`` → ``${HOST}``: the known names only,
    each to the variable its Walle form means ``where`` the script runs."""
    meaning = WALLE_MEANING[where]
    return _BRACED.sub(lambda m: "${" + meaning.get(m.group(1), m.group(1)) + "}", script)


def with_aliases(values: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """``values`` (the environment's variables, then Ferryman's ``own`` names, which win) with
    the Walle 2.x aliases of ``own`` added where ``values`` does not name them already."""
    aliases = {alias: own[name] for alias, name in WALLE_ALIASES.items() if name in own}
    return aliases | dict(values) | dict(own)


def task_script(
    script: str,
    variables: Mapping[str, str],
    cwd: str | None = None,
    where: Where = "deploy_host",
) -> str:
    """One bash script: strict mode, exported variables, optional ``cd``, then the task with
    its Walle forms substituted for ``where`` it runs."""
    lines = ["set -euo pipefail"]
    for key in sorted(variables):
        lines.append(f"export {key}={shlex.quote(variables[key])}")
    if cwd:
        lines.append(f"cd -- {shlex.quote(cwd)}")
    lines.append(substitute(script, where))
    return "\n".join(lines) + "\n"


def walle_forms(script: str) -> set[str]:
    """The names written in their ``{NAME}`` form in ``script`` (for the notes detection
    gives: ``config.problems.hook_notes``)."""
    return {m.group(1) for m in _BRACED.finditer(script)}
