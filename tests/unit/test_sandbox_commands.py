"""The sandbox's command line and the URL policies, as values."""

from __future__ import annotations

import pytest

from ferryman.commands import sandbox as cmd
from ferryman.config.settings import load_settings, parse_size
from ferryman.errors import ConfigError, VcsError
from ferryman.vcs.base import check_repo_url, check_submodule_url, git_protocols, url_protocol
from ferryman.vcs.svn import check_external, external_urls

SPEC = cmd.Spec(
    argv=("bash", cmd.SCRIPT),
    cwd="/h/workspaces/deploy-7",
    home="/h/workspaces/deploy-7/home",
    binds=(cmd.Bind("/run/fs/0", "/h/workspaces/deploy-7", writable=True),),
    data=(cmd.DataFile(5, cmd.SCRIPT),),
    network=False,
    root_links={"/bin": "usr/bin"},
)


def test_the_whole_command_stages_drops_to_the_deploy_uid_limits_then_sandboxes():
    limits = cmd.Limits(cpu_seconds=60, memory=1 << 30, processes=64)
    argv = cmd.command(
        "/usr/bin/bwrap", SPEC, limits, uid=1900000007, stage=[("/h/ws", "/run/fs/0")]
    )
    bwrap = argv.index("/usr/bin/bwrap")
    assert argv[:bwrap] == [
        *["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", cmd.STAGE_SCRIPT],
        *["sh", "/h/ws", "/run/fs/0", "--"],
        *["setpriv", "--reuid=1900000007", "--regid=1900000007", "--clear-groups", "--"],
        *["prlimit", "--cpu=60", f"--data={1 << 30}", "--nproc=64", "--core=0", "--"],
    ]
    assert argv[-3:] == ["--", "bash", cmd.SCRIPT]


def test_bwrap_unshares_everything_and_binds_only_what_the_spec_names():
    argv = cmd.bwrap_argv("bwrap", SPEC)
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-net", "--die-with-parent"):
        assert flag in argv
    assert "--new-session" in argv and "--clearenv" in argv
    pairs = [(argv[i], argv[i + 1], argv[i + 2]) for i in range(len(argv) - 2)]
    assert ("--bind", "/run/fs/0", "/h/workspaces/deploy-7") in pairs
    assert ("--symlink", "usr/bin", "/bin") in pairs
    assert ("--ro-bind-data", "5", cmd.SCRIPT) in pairs
    assert [a for a in argv if "shadow" in a] == []
    writable = [argv[i + 2] for i, a in enumerate(argv) if a == "--bind"]
    assert writable == ["/h/workspaces/deploy-7"]
    env = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "--setenv"}
    assert set(env) == {"PATH", "HOME", "LANG"}


def test_the_network_stays_unless_the_environment_switches_it_off():
    online = cmd.Spec(argv=("true",), cwd="/", home="/tmp", network=True)
    assert "--unshare-net" not in cmd.bwrap_argv("bwrap", online)


def test_without_root_the_command_is_limits_and_bwrap_only():
    limits = cmd.Limits(cpu_seconds=1, memory=1, processes=1)
    assert cmd.command("bwrap", SPEC, limits, uid=None)[0] == "prlimit"


def test_sandbox_settings_are_read_and_checked():
    settings = load_settings(
        {"FERRYMAN_HOME": "/x", "FERRYMAN_SANDBOX": "off", "FERRYMAN_SANDBOX_MEMORY": "512M"}
    )
    assert settings.sandbox == "off" and settings.sandbox_memory == 512 << 20
    assert load_settings({"FERRYMAN_HOME": "/x"}).sandbox == "auto"
    assert parse_size("8G") == 8 << 30 and parse_size("1048576") == 1 << 20
    with pytest.raises(ConfigError, match="auto or off"):
        load_settings({"FERRYMAN_HOME": "/x", "FERRYMAN_SANDBOX": "maybe"})


@pytest.mark.parametrize(
    ("url", "protocol"),
    [
        ("ssh://git@h/x.git", "ssh"),
        ("git@h:x.git", "ssh"),
        ("https://h/x.git", "https"),
        ("git://h/x", "git"),
        ("file:///srv/x.git", "file"),
        ("/srv/x.git", "file"),
        ("ext::sh -c touch% /tmp/x", "ext"),
    ],
)
def test_a_url_s_protocol_is_what_git_would_use(url, protocol):
    assert url_protocol(url) == protocol


def test_git_may_use_the_repository_s_own_protocol_and_file_only_when_allowed():
    assert git_protocols("ssh://h/x.git", False) == "ssh"
    assert git_protocols("ssh://h/x.git", True) == "ssh:file"
    assert git_protocols("http://h/x.git", False) == "http:https"


def test_local_repositories_and_odd_transports_are_refused_unless_allowed():
    with pytest.raises(VcsError, match="--allow-local-repos"):
        check_repo_url("file:///srv/other.git", False, "team")
    check_repo_url("file:///srv/other.git", True)
    with pytest.raises(VcsError, match="not allowed"):
        check_repo_url("ext::sh -c id", True)


def test_a_submodule_outside_the_repository_s_protocol_is_refused_naming_it():
    check_submodule_url("lib", "../lib.git", "ssh://h/x.git", False)
    check_submodule_url("lib", "ssh://h/lib.git", "ssh://h/x.git", False)
    with pytest.raises(VcsError, match=r"'vendor' points at 'file:///srv/repos/1/a\.git'"):
        check_submodule_url("vendor", "file:///srv/repos/1/a.git", "ssh://h/x.git", False)
    with pytest.raises(VcsError, match="only ssh"):
        check_submodule_url("vendor", "https://evil/x.git", "ssh://h/x.git", True)


def test_svn_externals_stay_on_the_repository_s_server():
    text = "^/lib lib\n-r3 svn://h/r/x@3 x\nold svn://h/r/y\n# comment\n/r/z z\n"
    assert external_urls(text) == ["^/lib", "svn://h/r/x@3", "svn://h/r/y", "/r/z"]
    for url in external_urls(text):
        check_external(url, "svn://h/r", False)
    with pytest.raises(VcsError, match="local paths are refused"):
        check_external("file:///srv/svn/other", "svn://h/r", False)
    with pytest.raises(VcsError, match="own server"):
        check_external("svn://other/r", "svn://h/r", False)
    with pytest.raises(VcsError, match="own server"):
        check_external("//other/r", "svn://h/r", False)
