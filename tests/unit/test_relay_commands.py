"""The tiered fan-out's commands (``commands/relay.py``) by their exact output, run with bash
in a temp dir where they edit files, and the ``transfer:`` block's bounds."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ferryman.commands import relay
from ferryman.commands.remote import Layout
from ferryman.config.project import parse_project
from ferryman.errors import ConfigError

LAYOUT = Layout(webroot="/srv/www/app", releases="/srv/releases/app", shared_dir="/srv/shared")
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyBlob0123456789abcdefABCDEF comment"
WHEN = datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
MARK = relay.marker(LAYOUT, 7)


def _config(**transfer: object) -> dict[str, object]:
    env = {"hosts": ["10.0.0.1"], "webroot": "/srv/www/a", "releases": "/srv/rel/a"}
    return {
        "project": "a",
        "repo": "file:///r",
        "environments": {"p": {**env, "transfer": transfer}},
    }


def test_fanout_is_off_unless_asked_and_keeps_its_key():
    env = parse_project(_config()).environment("p")
    assert env.transfer.fanout == 0
    assert env.transfer.authorized_keys == "~/.ssh/authorized_keys"
    assert parse_project(_config(fanout=8)).environment("p").transfer.fanout == 8
    assert parse_project(_config(fanout=False)).environment("p").transfer.fanout == 0


@pytest.mark.parametrize("bad", [1, -2, 65, True, "8", 2.5])
def test_a_fanout_out_of_bounds_is_refused_with_its_path(bad):
    with pytest.raises(ConfigError) as caught:
        parse_project(_config(fanout=bad))
    text = "\n".join(caught.value.details.get("errors", [])) or str(caught.value.details)
    assert "transfer" in text and "fanout: off (0) or from 2 to 64 hosts" in text


@pytest.mark.parametrize(
    "bad", ["relative/keys", "~/../x", "/a/../b", "/a b", "~/a'b", "/a$(x)", "/a\nb", "~", "/"]
)
def test_an_authorized_keys_path_that_is_not_plain_is_refused(bad):
    with pytest.raises(ConfigError):
        parse_project(_config(authorized_keys=bad))


def test_an_unknown_transfer_key_is_refused():
    with pytest.raises(ConfigError):
        parse_project(_config(fan_out=8))


def test_the_forced_command_writes_at_most_the_package_into_the_relayed_file():
    assert relay.forced_receive(LAYOUT, 7, 12345, 1800) == (
        "umask 077; exec timeout -k 5 1800 head -c 12345 > "
        "/srv/releases/app/.ferryman-relay-7/relayed"
    )


def test_the_key_line_is_restricted_forced_expiring_and_from_its_relay():
    line = relay.authorized_line(
        LAYOUT, 7, PUBLIC, size=10, timeout=60, expires=WHEN, sources=["10.0.0.1"]
    )
    assert line == (
        'restrict,command="umask 077; exec timeout -k 5 60 head -c 10 > '
        '/srv/releases/app/.ferryman-relay-7/relayed",expiry-time="20261201030405Z",'
        'from="10.0.0.1" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyBlob0123456789abcdefABCDEF '
        f"{MARK}"
    )
    assert MARK.startswith("ferryman-relay-") and MARK.endswith("-7")


def test_a_key_line_never_carries_a_quote_or_a_name_for_from():
    odd = Layout(webroot="/w", releases='/srv/a"b', shared_dir="/s")
    with pytest.raises(ValueError):
        relay.authorized_line(odd, 7, PUBLIC, size=1, timeout=1, expires=WHEN, sources=["10.0.0.9"])
    with pytest.raises(ValueError):
        relay.authorized_line(LAYOUT, 7, PUBLIC, size=1, timeout=1, expires=WHEN, sources=["h"])
    with pytest.raises(ValueError):
        relay.authorized_line(
            LAYOUT, 7, "ssh-rsa AAAA", size=1, timeout=1, expires=WHEN, sources=["10.0.0.9"]
        )
    with pytest.raises(ValueError):  # no from=: the key would be taken from anywhere
        relay.authorized_line(LAYOUT, 7, PUBLIC, size=1, timeout=1, expires=WHEN, sources=[])


def test_a_releases_path_with_shell_characters_stays_one_quoted_word():
    odd = Layout(webroot="/w", releases="/srv/a b;touch x", shared_dir="/s")
    assert relay.forced_receive(odd, 3, 1, 1).endswith(
        "> '/srv/a b;touch x/.ferryman-relay-3/relayed'"
    )
    assert relay.make_dir(odd, 3)[2].count("'/srv/a b;touch x/.ferryman-relay-3'") == 2


def _run(
    command: tuple[str, ...], home: Path, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    return subprocess.run(list(command), input=stdin, env=env, capture_output=True, check=False)


def test_trust_appends_one_line_and_revoke_removes_only_this_deploys(tmp_path):
    keys = tmp_path / ".ssh" / "authorized_keys"
    keys.parent.mkdir()
    keys.write_text("ssh-ed25519 AAAAown admin")  # no final newline
    keys.chmod(0o640)
    line = relay.authorized_line(
        LAYOUT, 7, PUBLIC, size=1, timeout=1, expires=WHEN, sources=["10.0.0.9"]
    )
    other = relay.authorized_line(
        LAYOUT, 70, PUBLIC, size=1, timeout=1, expires=WHEN, sources=["10.0.0.9"]
    )
    for text in (line, other):
        assert _run(relay.trust("~/.ssh/authorized_keys", text), tmp_path).returncode == 0
    assert keys.read_text() == f"ssh-ed25519 AAAAown admin\n{line}\n{other}\n"
    done = _run(relay.revoke("~/.ssh/authorized_keys", LAYOUT, 7), tmp_path)
    assert done.returncode == 0, done.stderr
    assert keys.read_text() == f"ssh-ed25519 AAAAown admin\n{other}\n"
    assert oct(keys.stat().st_mode & 0o777) == oct(0o640)  # mode kept
    assert _run(relay.revoke("~/.ssh/authorized_keys", LAYOUT, 7), tmp_path).returncode == 0
    assert sorted(p.name for p in keys.parent.iterdir()) == ["authorized_keys"]  # no temp left


def test_revoke_leaves_a_file_whose_only_line_was_the_relay_key_empty(tmp_path):
    keys = tmp_path / "keys"
    line = relay.authorized_line(
        LAYOUT, 7, PUBLIC, size=1, timeout=1, expires=WHEN, sources=["10.0.0.9"]
    )
    assert _run(relay.trust(str(keys), line), tmp_path).returncode == 0
    assert oct(keys.stat().st_mode & 0o777) == oct(0o600)  # a new file is the user's alone
    assert _run(relay.revoke(str(keys), LAYOUT, 7), tmp_path).returncode == 0
    assert keys.read_text() == ""


def test_revoke_keeps_every_other_line_of_a_file_holding_bytes_that_are_not_text(tmp_path):
    """A NUL or a Latin-1 comment made grep read the file as binary and print none of the
    lines the rewrite keeps: every other key of the user was dropped."""
    keys = tmp_path / "keys"
    own = b"ssh-ed25519 AAAAown jos\xe9@portable\nssh-ed25519 AAAAnul x\x00y\n"
    keys.write_bytes(own + b"ssh-ed25519 AAAAlast no-newline")
    line = relay.authorized_line(
        LAYOUT, 7, PUBLIC, size=1, timeout=1, expires=WHEN, sources=["10.0.0.9"]
    )
    assert _run(relay.trust(str(keys), line), tmp_path).returncode == 0
    done = _run(relay.revoke(str(keys), LAYOUT, 7), tmp_path)
    assert done.returncode == 0, done.stderr
    assert keys.read_bytes() == own + b"ssh-ed25519 AAAAlast no-newline\n"


def test_revoke_on_a_host_without_the_file_or_the_dir_succeeds(tmp_path):
    assert _run(relay.revoke(str(tmp_path / "none"), LAYOUT, 7), tmp_path).returncode == 0


def _tmp_layout(tmp_path: Path) -> Layout:
    return Layout(webroot=str(tmp_path / "www"), releases=str(tmp_path / "rel"), shared_dir="/s")


def test_accept_copies_what_was_relayed_drops_the_key_line_and_prints_the_digest(tmp_path):
    layout = _tmp_layout(tmp_path)
    keys = tmp_path / "keys"
    keys.write_text("ssh-ed25519 AAAAown admin\n")
    line = relay.authorized_line(
        layout, 5, PUBLIC, size=3, timeout=1, expires=WHEN, sources=["10.0.0.9"]
    )
    done = _run(relay.setup(layout, 5, str(keys), line=line), tmp_path)
    assert done.returncode == 0, done.stderr
    assert keys.read_text() == f"ssh-ed25519 AAAAown admin\n{line}\n"
    d = Path(relay.relay_dir(layout, 5))
    assert oct(d.stat().st_mode & 0o777) == oct(0o700)
    missing = _run(relay.accept_relayed(layout, 5, 3, str(keys)), tmp_path)
    assert missing.returncode == relay.EXIT_NOTHING_RELAYED
    (d / "relayed").write_bytes(b"abcdef")
    done = _run(relay.accept_relayed(layout, 5, 3, str(keys)), tmp_path)
    assert done.returncode == 0, done.stderr
    assert (d / "package").read_bytes() == b"abc"  # never more than the package's size
    assert not (d / "relayed").exists()
    assert keys.read_text() == "ssh-ed25519 AAAAown admin\n"  # this host needs it no more
    import hashlib

    assert relay.parse_digest(done.stdout.decode()) == hashlib.sha256(b"abc").hexdigest()
    assert relay.parse_digest("garbage") == ""


def test_setup_of_a_relay_makes_the_dir_and_arms_it_in_one_command(tmp_path):
    layout = _tmp_layout(tmp_path)
    known = relay.known_hosts_line("10.0.0.2", 22, "ssh-ed25519 AAAA")
    done = _run(relay.setup(layout, 6, str(tmp_path / "keys"), known_hosts=known), tmp_path, b"K")
    assert done.returncode == 0, done.stderr
    d = Path(relay.relay_dir(layout, 6))
    assert sorted(p.name for p in d.iterdir()) == ["key", "known_hosts"]
    assert not (tmp_path / "keys").exists()  # a relay that receives nothing trusts nothing
    assert (d / "key").read_bytes() == b"K"


def test_arm_writes_the_key_0600_and_exactly_the_known_hosts_given(tmp_path):
    layout = _tmp_layout(tmp_path)
    _run(relay.make_dir(layout, 5), tmp_path)
    line = relay.known_hosts_line("10.0.0.2", 2222, "ssh-ed25519 AAAAhost h2")
    assert line == "[10.0.0.2]:2222 ssh-ed25519 AAAAhost\n"
    assert (
        relay.known_hosts_line("10.0.0.2", 22, "ssh-ed25519 AAAA") == "10.0.0.2 ssh-ed25519 AAAA\n"
    )
    assert _run(relay.arm(layout, 5, line), tmp_path, b"PRIVATE").returncode == 0
    d = Path(relay.relay_dir(layout, 5))
    assert (d / "key").read_bytes() == b"PRIVATE"
    assert oct((d / "key").stat().st_mode & 0o777) == oct(0o600)
    assert (d / "known_hosts").read_text() == line
    with pytest.raises(ValueError):
        relay.known_hosts_line("a b", 22, "ssh-ed25519 AAAA")


def test_forward_sends_to_every_child_with_the_deploys_key_and_strict_host_keys():
    script = relay.forward(
        LAYOUT,
        7,
        [relay.Child(0, "10.0.0.2", 22, "deploy"), relay.Child(1, "10.0.0.3", 2222, "root")],
        timeout=600,
        connect_timeout=15,
        bind="10.0.0.1",
    )[2]
    d = "/srv/releases/app/.ferryman-relay-7"
    common = (
        f"ssh -F /dev/null -T -i {d}/key -o IdentitiesOnly=yes -o IdentityAgent=none "
        "-o BatchMode=yes -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={d}/known_hosts -o GlobalKnownHostsFile=/dev/null "
        "-o UpdateHostKeys=no -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no "
        "-o ForwardAgent=no -o ClearAllForwardings=yes -o ControlMaster=no -o ControlPath=none "
        "-o ConnectTimeout=15 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 "
        "-o LogLevel=ERROR -o BindAddress=10.0.0.1"
    )
    assert script == (
        "set -u\n"
        f"package={d}/package\n"
        "send() {\n"
        "  local i=$1; shift\n"
        '  timeout -k 5 600 "$@" < "$package"\n'
        '  printf \'relay\\t%s\\t%s\\n\' "$i" "$?"\n'
        "}\n"
        f"send 0 {common} -p 22 -l deploy -- 10.0.0.2 receive &\n"
        f"send 1 {common} -p 2222 -l root -- 10.0.0.3 receive &\n"
        "wait\n"
        f"rm -f -- {d}/key {d}/known_hosts\n"
    )
    assert "StrictHostKeyChecking=no" not in script
    assert relay.parse_forward("relay\t0\t0\nrelay\t1\t255\nnoise\nrelay\tx\t0\n") == {0: 0, 1: 255}


def test_unpack_reads_the_hosts_own_copy_of_the_package_then_removes_the_dir():
    script = relay.unpack_package(LAYOUT, "r1", "zstd", 7)[2]
    d = "/srv/releases/app/.ferryman-relay-7"
    assert script.startswith("set -euo pipefail\numask 077\nbash -c 'set -euo pipefail\n")
    assert script.endswith(
        f"exec tar -I zstd -xf - --no-same-owner -C /srv/releases/app/r1\n' < {d}/package\n"
        f"rm -rf -- {d}\n"
    )
    assert relay.store_package(LAYOUT, 7)[2] == (
        f"set -euo pipefail\numask 077\ncat > {d}/package\n"
    )


def test_the_tiered_fan_out_example_in_docs_config_md_loads():
    text = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    section = text.split("## Tiered fan-out", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = _config()
    env = config["environments"]["p"]  # type: ignore[index]
    env.pop("transfer")
    import yaml

    env.update(yaml.safe_load(block))
    transfer = parse_project(config).environment("p").transfer
    assert (transfer.fanout, transfer.authorized_keys) == (8, "~/.ssh/authorized_keys")


def _tar(tmp_path: Path) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"hello\n"
        info = tarfile.TarInfo("index.html")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_unpack_relayed_checks_the_copy_on_the_host_before_unpacking(tmp_path):
    import hashlib

    layout = _tmp_layout(tmp_path)
    keys = tmp_path / "keys"
    package = _tar(tmp_path)
    digest = hashlib.sha256(package).hexdigest()
    line = relay.authorized_line(
        layout, 8, PUBLIC, size=len(package), timeout=1, expires=WHEN, sources=["10.0.0.9"]
    )
    assert _run(relay.setup(layout, 8, str(keys), line=line), tmp_path).returncode == 0
    d = Path(relay.relay_dir(layout, 8))

    def unpack(name: str) -> subprocess.CompletedProcess[bytes]:
        command = relay.unpack_relayed(
            layout, name, "none", 8, size=len(package), digest=digest, authorized_keys=str(keys)
        )
        return _run(command, tmp_path)

    assert unpack("r0").returncode == relay.EXIT_NOTHING_RELAYED
    (d / "relayed").write_bytes(package[:-1] + b"X")  # a relay's forgery
    assert unpack("r1").returncode == relay.EXIT_NOT_THE_PACKAGE
    assert not (tmp_path / "rel" / "r1").exists()  # nothing unpacked from it
    assert keys.read_text() == ""  # the line went with the copy
    (d / "relayed").write_bytes(package + b"trailing")  # only the package's size is read
    done = unpack("r2")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rel" / "r2" / "index.html").read_bytes() == b"hello\n"
    assert not d.exists()
    with pytest.raises(ValueError):
        relay.unpack_relayed(
            layout, "r", "none", 8, size=1, digest="x; rm -rf /", authorized_keys="k"
        )


def test_only_hosts_named_by_an_ip_address_relay_and_the_rest_are_fed_directly():
    """A relay's children take its key from its address alone (from=); a host named by DNS
    (or an address ipaddress does not read, 127.000.0.1) never relays: hosts whose turn
    would fall to one are fed by the deploy host."""
    from ferryman.pipeline.relay import plan
    from ferryman.remote.executor import Target

    def host(address: str) -> Target:
        return Target(key=address, address=address, port=22, user="root")

    named = [host("web-a.example"), host("127.000.0.1")]
    literal = [host(f"10.0.0.{n}") for n in range(1, 7)]
    tree = plan(named + literal, 2)
    relays = {key for key in tree.children}
    assert relays and all(key.startswith("10.0.0.") for key in relays)
    assert set(tree.parent) | {t.key for t in tree.roots} == {t.key for t in named + literal}
    assert all(tree.parent[k].address.startswith("10.0.0.") for k in tree.parent)

    only_names = [host(f"web-{n}.example") for n in range(5)]
    flat = plan(only_names, 2)
    assert not flat.children and [t.key for t in flat.roots] == [t.key for t in only_names]


def test_the_sweep_removes_every_earlier_deploys_dir_and_line_of_this_releases_dir_only(
    tmp_path,
):
    releases = tmp_path / "releases"
    layout = Layout(webroot=str(tmp_path / "www"), releases=str(releases), shared_dir="/s")
    elsewhere = Layout(webroot="/w2", releases="/srv/releases/other", shared_dir="/s")
    for n in (3, 4):
        (releases / f".ferryman-relay-{n}").mkdir(parents=True)
    (releases / "20261201-v1").mkdir()  # a release: not the sweep's
    keys = tmp_path / "keys"
    keys.write_text("ssh-ed25519 AAAAown admin\n")
    ours = [
        relay.authorized_line(
            layout, n, PUBLIC, size=1, timeout=1, expires=WHEN, sources=["10.0.0.9"]
        )
        for n in (3, 4)
    ]
    theirs = relay.authorized_line(
        elsewhere, 3, PUBLIC, size=1, timeout=1, expires=WHEN, sources=["10.0.0.9"]
    )
    for line in [*ours, theirs]:
        assert _run(relay.trust(str(keys), line), tmp_path).returncode == 0
    done = _run(("bash", "-c", relay.sweep(str(keys), layout)), tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in releases.iterdir()) == ["20261201-v1"]
    assert keys.read_text() == f"ssh-ed25519 AAAAown admin\n{theirs}\n"
