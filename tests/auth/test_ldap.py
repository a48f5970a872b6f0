"""LDAP sign-in against a real OpenLDAP ``slapd`` (Debian's) that the test starts on loopback:
sign-in, group → role mapping per space, a wrong password, and the directory down (the local
admin still signs in)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ferryman.bootstrap import prepare_home
from ferryman.config.settings import load_settings
from ferryman.errors import AuthenticationFailed, Conflict
from ferryman.services import spaces, users
from ferryman.services.audit import SYSTEM

SLAPD = "/usr/sbin/slapd"
BASE = "dc=example,dc=com"
ROOT_PW = "root-secret-pw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[dict]:
    if not Path(SLAPD).exists():
        if os.environ.get("CI"):
            pytest.fail("slapd is missing: scripts/setup-system --test installs it")
        pytest.skip("slapd is missing: scripts/setup-system --test installs it")
    folder = tmp_path / "ldap"
    (folder / "data").mkdir(parents=True)
    schema = "/etc/ldap/schema"
    (folder / "slapd.conf").write_text(
        "\n".join(
            [f"include {schema}/{name}.schema" for name in ("core", "cosine", "inetorgperson")]
            + [
                f"pidfile {folder}/slapd.pid",
                f"argsfile {folder}/slapd.args",
                "modulepath /usr/lib/ldap",
                "moduleload back_mdb",
                "database mdb",
                f'suffix "{BASE}"',
                f'rootdn "cn=admin,{BASE}"',
                f"rootpw {ROOT_PW}",
                f"directory {folder}/data",
                "",
            ]
        )
    )
    port = _free_port()
    url = f"ldap://127.0.0.1:{port}"
    subprocess.run(
        [SLAPD, "-f", str(folder / "slapd.conf"), "-h", f"{url}/"], check=True, timeout=30
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    import ldap3

    admin = ldap3.Connection(ldap3.Server(url), f"cn=admin,{BASE}", ROOT_PW, auto_bind=True)
    entries = [
        (BASE, ["dcObject", "organization"], {"dc": "example", "o": "Example"}),
        (f"ou=people,{BASE}", ["organizationalUnit"], {"ou": "people"}),
        (f"ou=groups,{BASE}", ["organizationalUnit"], {"ou": "groups"}),
        (
            f"uid=lily,ou=people,{BASE}",
            ["inetOrgPerson"],
            {
                "uid": "lily",
                "cn": "Lily",
                "sn": "Li",
                "mail": "lily@example.com",
                "userPassword": "lily-password-1",
            },
        ),
        (
            f"uid=max,ou=people,{BASE}",
            ["inetOrgPerson"],
            {
                "uid": "max",
                "cn": "Max",
                "sn": "M",
                "mail": "max@example.com",
                "userPassword": "max-password-1",
            },
        ),
        (
            f"cn=developers,ou=groups,{BASE}",
            ["groupOfNames"],
            {
                "cn": "developers",
                "member": [f"uid=lily,ou=people,{BASE}", f"uid=max,ou=people,{BASE}"],
            },
        ),
        (
            f"cn=ops,ou=groups,{BASE}",
            ["groupOfNames"],
            {"cn": "ops", "member": [f"uid=max,ou=people,{BASE}"]},
        ),
    ]
    for dn, classes, attrs in entries:
        assert admin.add(dn, classes, attrs), admin.result
    admin.unbind()
    info = {"url": url, "pid_file": folder / "slapd.pid"}
    try:
        yield info
    finally:
        _stop(info)


def _stop(info: dict) -> None:
    try:
        pid = int(Path(info["pid_file"]).read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_directory_users_sign_in_get_their_group_roles_and_the_local_admin_survives_an_outage(
    slapd, tmp_path
):
    home = tmp_path / "home"
    home.mkdir()
    (home / "ldap.yaml").write_text(
        yaml.safe_dump(
            {
                "url": slapd["url"],
                "bind_dn": f"cn=admin,{BASE}",
                "bind_password": ROOT_PW,
                "user_base": f"ou=people,{BASE}",
                "user_filter": "(uid={username})",
                "attributes": {"email": "mail"},
                "group_base": f"ou=groups,{BASE}",
                "group_filter": "(member={dn})",
                "groups": {"developers": {"default": "developer"}, "ops": {"default": "master"}},
                "timeout": 2,
            }
        )
    )
    db = prepare_home(load_settings({"FERRYMAN_HOME": str(home)}))
    users.create_user(db, "root-admin", "local admin password", superuser=True)

    token = users.login(db, "lily", "lily-password-1")
    assert token
    members = {m["username"]: m["role"] for m in spaces.list_members(db, SYSTEM, "default")}
    assert members["lily"] == "developer"
    users.login(db, "max", "max-password-1")
    members = {m["username"]: m["role"] for m in spaces.list_members(db, SYSTEM, "default")}
    assert members["max"] == "master"  # the highest of his groups
    listed = {u["username"]: u for u in users.list_users(db, SYSTEM)}
    assert listed["lily"]["email"] == "lily@example.com"

    with pytest.raises(AuthenticationFailed, match="wrong user name or password"):
        users.login(db, "lily", "not-her-password")
    with pytest.raises(AuthenticationFailed):
        users.login(db, "lily", "")  # never an anonymous bind
    with pytest.raises(AuthenticationFailed):
        users.login(db, "nobody", "whatever-password")
    lily = users.actor_for_token(db, token)
    with pytest.raises(Conflict, match="directory"):
        users.change_password(db, lily, "lily-password-1", "a new password 2")

    _stop(slapd)  # the directory is down
    with pytest.raises(AuthenticationFailed, match="cannot be reached"):
        users.login(db, "lily", "lily-password-1")
    assert users.login(db, "root-admin", "local admin password")  # local accounts still work
    db.dispose()
