"""What an approval covers: one digest of everything that decides what a ticket runs.

The digest is taken when a master approves, and again when the ticket is deployed; if they
differ — hooks, hosts, paths, strategy, repository, a config file's version, a variable or
secret, the commit — the
approved ticket is refused and goes back to review. Pure: the services gather the inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def digest(
    *,
    kind: str,
    commit: str,
    target_release: str,
    hosts: Sequence[str],
    repo: str,
    vcs: str,
    env_config: Mapping[str, Any],
    config_versions: Mapping[str, int],
    variables: Mapping[str, str] | None = None,
) -> str:
    """A sha256 over a canonical JSON of the inputs (key order and host order do not matter)."""
    payload = {
        "kind": kind,
        "commit": commit,
        "target_release": target_release,
        "hosts": sorted(hosts),
        "repo": repo,
        "vcs": vcs,
        "env": env_config,
        "config_versions": dict(sorted(config_versions.items())),
        # the environment's variables and the project's secrets, as stored (secret values
        # sealed): a changed value, or a re-sealed one, changes the digest
        "variables": dict(sorted((variables or {}).items())),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
