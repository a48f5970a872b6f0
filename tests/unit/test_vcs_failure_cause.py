"""A failed git or svn command is refused with the line of its output that says why, not
git's closing boilerplate ("…and the repository exists."), run on real git."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ferryman.errors import VcsError
from ferryman.vcs import base


def test_a_missing_repository_is_named_by_gits_own_reason(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(VcsError) as caught:
        asyncio.run(base.run_vcs(["git", "ls-remote", str(missing)], env={}, timeout=30))
    message = caught.value.message
    assert message.startswith("git ls-remote failed (exit 128): ")
    assert "does not appear to be a git repository" in message
    assert "the repository exists" not in message
    assert "repository exists" in (caught.value.details.get("stderr_tail") or "")


def test_the_cause_is_the_last_line_that_is_not_boilerplate() -> None:
    ssh = [
        "ssh: connect to host 127.0.0.1 port 2 : Connection refused",
        "fatal: Could not read from remote repository.",
        "",
        "Please make sure you have the correct access rights",
        "and the repository exists.",
    ]
    assert base._cause(ssh) == ": ssh: connect to host 127.0.0.1 port 2 : Connection refused"
    assert base._cause(["svn: E170013: Unable to connect"]) == ": svn: E170013: Unable to connect"
    assert base._cause(["and the repository exists."]) == ": and the repository exists."
    assert base._cause([]) == ""
