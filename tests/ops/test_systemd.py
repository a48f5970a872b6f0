"""The systemd units in contrib/systemd: `systemd-analyze verify` accepts them, their
hardening keeps what the build sandbox needs, and the environment file is valid settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ferryman.config.settings import BY_NAME, load_settings

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"
EXE = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
# The sandbox makes user, mount, PID, UTS and network namespaces, mounts a fresh /proc in
# them and sets their hostname: each of these options would forbid one of those.
BREAKS_THE_SANDBOX = (
    "RestrictNamespaces",
    "PrivateUsers",
    "ProtectHostname",
    "ProtectKernelTunables",
    "ProtectKernelLogs",
    "ProtectProc",
    "ProcSubset",
    "DynamicUser",
)
HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "RestrictSUIDSGID=yes",
    "UMask=0022",  # not 0077: the sandbox uids read the git mirrors (the home is 0700)
    "StateDirectoryMode=0700",
)


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.skip("systemd-analyze is missing: run scripts/setup-system --test")
    return found


def _installed(unit: str, tmp_path: Path) -> Path:
    """The unit as installed: ExecStart pointing at this checkout's ferryman."""
    copy = tmp_path / unit
    copy.write_text((UNITS / unit).read_text().replace("/opt/ferryman/bin/ferryman", EXE))
    return copy


@pytest.mark.parametrize("unit", ["ferryman.service", "ferryman-worker.service"])
def test_systemd_analyze_verify_accepts_the_unit(unit, tmp_path):
    result = subprocess.run(
        [_analyze(), "verify", "--man=no", str(_installed(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert unit not in result.stdout + result.stderr  # no warning about the unit


@pytest.mark.parametrize("unit", ["ferryman.service", "ferryman-worker.service"])
def test_the_unit_is_hardened_but_keeps_what_the_build_sandbox_needs(unit, tmp_path):
    text = (UNITS / unit).read_text()
    settings = [line for line in text.splitlines() if re.match(r"^[A-Z]\w+=", line)]
    for wanted in HARDENING:
        assert wanted in settings, f"{unit} lacks {wanted}"
    for option in BREAKS_THE_SANDBOX:
        assert not any(line.startswith(option + "=") for line in settings), option
    command = next(line for line in settings if line.startswith("ExecStart="))
    assert command.split()[1] == ("serve" if unit == "ferryman.service" else "worker")
    report = subprocess.run(
        [_analyze(), "security", "--offline=yes", str(_installed(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", report)
    assert found is not None, report
    level = float(found.group(1))
    assert level <= 6.5, report  # "medium" at worst; the default for a root service is 9.6


def test_the_environment_file_names_only_real_settings_and_loads():
    values: dict[str, str] = {"FERRYMAN_HOME": "/var/lib/ferryman"}
    for line in (UNITS / "ferryman.env").read_text().splitlines():
        match = re.match(r"^#?(FERRYMAN_[A-Z_]+)=(.*)$", line)
        if not match:
            continue
        assert match.group(1) in BY_NAME, f"ferryman.env names unknown {match.group(1)}"
        if not line.startswith("#"):
            values[match.group(1)] = match.group(2)
    settings = load_settings(values)
    assert settings.worker_concurrency == 4


def test_both_units_share_one_state_directory_and_sandbox_stage():
    for unit in ("ferryman.service", "ferryman-worker.service"):
        text = (UNITS / unit).read_text()
        assert "StateDirectory=ferryman\n" in text
        assert "FERRYMAN_HOME=/var/lib/ferryman" in text
        # the sandbox's stage dir (FERRYMAN_SANDBOX_STAGE's default) survives either's stop
        assert "RuntimeDirectory=ferryman-sandbox\n" in text
        assert "RuntimeDirectoryPreserve=yes" in text
        # each deploy's uid enters its mount points there (0700 broke every sandboxed build)
        assert "RuntimeDirectoryMode=0755\n" in text
    assert str(load_settings({"FERRYMAN_HOME": "/x"}).sandbox_stage) == "/run/ferryman-sandbox"
