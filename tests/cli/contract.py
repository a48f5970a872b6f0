"""Running the real ``ferryman`` executable as a CI job would: a pipe for stdout and stderr,
no terminal, a clean environment of its own (its own credentials file, no server)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXE = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
    env.pop("COLUMNS", None)
    env |= {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "FERRYMAN_HOME": str(tmp_path / "home"),
        "FERRYMAN_SANDBOX_UID_BASE": os.environ.get("FERRYMAN_SANDBOX_UID_BASE", ""),
    }
    return {k: v for k, v in (env | extra).items() if v != ""}


def run(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
