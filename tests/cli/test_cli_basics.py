"""The CLI's contract without a server: the version, and the server-side commands that refuse
to make a second home."""

from __future__ import annotations

from ferryman import __version__
from tests.cli.contract import environment, run


def test_version_as_an_option_and_as_a_command(tmp_path):
    env = environment(tmp_path)
    for args in (["--version"], ["version"]):
        result = run(env, *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{__version__}\n"


def test_admin_and_ssh_key_refuse_to_create_a_new_home_unless_asked(tmp_path):
    env = environment(tmp_path)
    home = tmp_path / "home"
    for args in (
        ["admin", "create-user", "alice", "--password", "correct horse battery"],
        ["admin", "add-member", "default", "alice", "--role", "master"],
        ["admin", "rotate-key"],
        ["ssh-key"],
    ):
        result = run(env, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"no Ferryman home at {home}" in result.stderr
        assert "--create-home" in result.stderr
        assert not home.exists()

    made = run(
        env, "admin", "create-user", "alice", "--password", "correct horse battery", "--create-home"
    )
    assert made.returncode == 0, made.stderr
    assert f"creating home {home}, database sqlite:///{home}/ferryman.db" in made.stderr
    again = run(env, "admin", "add-member", "default", "alice", "--role", "master")
    assert again.returncode == 0, again.stderr
    assert f"home {home}, database sqlite:///{home}/ferryman.db" in again.stderr
    key = run(env, "ssh-key")
    assert key.returncode == 0 and key.stdout.startswith("ssh-ed25519 "), key.stderr


def test_help_through_a_pipe_is_whole_lines(tmp_path):
    result = run(environment(tmp_path), "--help")
    assert result.returncode == 0
    listing = result.stdout.split("Commands:", 1)[1]
    assert "..." not in listing and "…" not in listing
    whole = "Recent deploys, newest first (filter by project, environment, status, user).\n"
    assert f"  deploys      {whole}" in listing
