"""Pure rules the services lean on: the server a literal host becomes and which servers an
environment reaches (``domain/inventory.py``), what an approval's digest covers
(``domain/approval.py``), and the checks on config files' values (``domain/config_files.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from ferryman.domain import approval, inventory, validate
from ferryman.domain import config_files as cf
from ferryman.domain.inventory import ServerRef
from ferryman.errors import ValidationError

WEB1 = ServerRef("web1", "127.0.8.1", 22, "deploy", ("web", "bj"))
WEB2 = ServerRef("web2", "127.0.8.2", 2222, "", ("web",))
JOB = ServerRef("job", "127.0.8.3", 22, "", ("job", "bj"))
SERVERS = [WEB1, WEB2, JOB]


def test_a_server_s_key_is_its_address_with_a_port_other_than_22():
    assert WEB1.key == "127.0.8.1"
    assert WEB2.key == "127.0.8.2:2222"
    assert ServerRef("v6", "::1", 22, "", ()).key == "[::1]"


@pytest.mark.parametrize(
    ("host", "taken", "name"),
    [
        ("127.0.8.9", [], "127.0.8.9"),
        ("127.0.8.9:2222", [], "127.0.8.9-2222"),
        ("127.0.8.9", ["127.0.8.9", "127.0.8.9-2"], "127.0.8.9-3"),
        ("web.example.test", [], "web.example.test"),
        ("[::1]:2200", [], "1-2200"),
        ("[::]", [], "host"),
    ],
)
def test_a_literal_host_becomes_a_server_with_a_plain_unique_name(host, taken, name):
    made = inventory.server_name_for(validate.host(host), taken)
    assert made == name
    assert made not in taken
    validate.name(made, "server name")


def test_a_server_name_is_cut_to_its_limit_and_never_empty():
    # addresses no host check lets through; the rules hold for them all the same
    long = validate.HostSpec("a" * 80 + ".example.test", 22)
    assert inventory.server_name_for(long, []) == "a" * 56
    assert inventory.server_name_for(validate.HostSpec("_x.example.test", 22), []) == (
        "x.example.test"
    )
    assert inventory.server_name_for(validate.HostSpec("é", 2222), []) == "host-2222"


def test_a_literal_host_is_the_server_with_its_address_and_port():
    assert inventory.match_literal(validate.host("127.0.8.2:2222"), SERVERS) is WEB2
    assert inventory.match_literal(validate.host("127.0.8.2"), SERVERS) is None
    assert inventory.match_literal(validate.host("deploy@127.0.8.1"), SERVERS) is WEB1


def test_an_environment_reaches_literal_hosts_then_named_servers_then_labelled_ones_once():
    env = {
        "hosts": ["127.0.8.2:2222", "127.0.8.250", "not a host", "127.0.8.2:2222"],
        "servers": ["job", "nope", "web2"],
        "labels": ["bj"],
    }
    assert inventory.targeted(env, SERVERS) == [WEB2, JOB, WEB1]
    assert inventory.targeted({"labels": ["web", "bj"]}, SERVERS) == [WEB1]
    assert inventory.targeted({"hosts": None, "servers": None}, SERVERS) == []


DIGEST: dict[str, Any] = {
    "kind": "deploy",
    "commit": "a" * 40,
    "target_release": "",
    "hosts": ["127.0.8.1", "127.0.8.2:2222"],
    "repo": "ssh://git@127.0.0.1/site.git",
    "vcs": "git",
    "env_config": {"webroot": "/srv/www/site", "tasks": {"post_release": "reload"}},
    "config_versions": {"conf/app.env": 3, "conf/db.ini": 1},
    "variables": {"REGION": "bj", "TOKEN": "sealed:abc"},
}


def test_an_approval_digest_ignores_the_order_of_hosts_keys_and_files():
    same = {
        **DIGEST,
        "hosts": list(reversed(DIGEST["hosts"])),
        "env_config": {"tasks": {"post_release": "reload"}, "webroot": "/srv/www/site"},
        "config_versions": {"conf/db.ini": 1, "conf/app.env": 3},
        "variables": {"TOKEN": "sealed:abc", "REGION": "bj"},
    }
    assert approval.digest(**DIGEST) == approval.digest(**same)
    assert len(approval.digest(**DIGEST)) == 64
    assert approval.digest(**{**DIGEST, "variables": None}) == approval.digest(
        **{**DIGEST, "variables": {}}
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "rollback"),
        ("commit", "b" * 40),
        ("target_release", "20260101-000000_v1_aaaaaaa"),
        ("hosts", ["127.0.8.1"]),
        ("repo", "ssh://git@127.0.0.1/other.git"),
        ("vcs", "svn"),
        ("env_config", {"webroot": "/srv/www/site", "tasks": {"post_release": "rm -rf /"}}),
        ("config_versions", {"conf/app.env": 4, "conf/db.ini": 1}),
        ("variables", {"REGION": "bj", "TOKEN": "sealed:resealed"}),
    ],
)
def test_an_approval_digest_changes_with_anything_that_decides_what_runs(field, value):
    assert approval.digest(**{**DIGEST, field: value}) != approval.digest(**DIGEST)


def test_config_file_values_are_checked_before_they_are_stored():
    assert cf.content("a=1\n") == "a=1\n"
    with pytest.raises(ValidationError, match="at most 512 KiB"):
        cf.content("x" * (cf.MAX_CONTENT + 1))
    with pytest.raises(ValidationError, match="NUL bytes"):
        cf.content("a\x00b")
    assert cf.keys({"DB.host": "127.0.0.1", "_x-y": ""}) == {"DB.host": "127.0.0.1", "_x-y": ""}
    with pytest.raises(ValidationError, match="invalid key '1x'"):
        cf.keys({"1x": "v"})
    with pytest.raises(ValidationError, match="PORT: a key value must be one line"):
        cf.keys({"PORT": "80\nEVIL=1"})
    with pytest.raises(ValidationError, match="name a file"):
        cf.path("conf/")
    assert cf.mode(None) == cf.DEFAULT_MODE
    assert cf.mode(0o640) == 0o640
    with pytest.raises(ValidationError, match="at most 0777"):
        cf.mode(0o1777)


def test_config_files_and_their_overrides_survive_their_stored_form():
    file = cf.ConfigFile(
        path="conf/app.env",
        mode=0o640,
        content="PORT=80\n",
        overrides=(
            cf.Override("label:bj", content="PORT=81\n"),
            cf.Override("host:web1", set={"PORT": "82"}),
        ),
    )
    assert cf.ConfigFile.from_dict(file.to_dict()) == file
    assert cf.Override.from_dict({"scope": "label:x"}) == cf.Override("label:x")
    assert cf.references("${A} $${B} ${A} ${C_1}") == ["A", "C_1"]
    assert cf.version_text(None) == []
    assert cf.version_text(file) == [
        "# mode 0640\n",
        "PORT=80\n",
        "# override label:bj\n",
        "PORT=81\n",
        "# override host:web1\n",
        '# set {"PORT": "82"}\n',
    ]
