"""Choosing and rendering a host's config file: pure rules."""

from __future__ import annotations

import pytest

from ferryman.domain import config_files as cf
from ferryman.errors import ValidationError

BASE = cf.ConfigFile(
    path="crontab.xml",
    mode=0o644,
    content="<crontab/>\nPORT=80\n",
    overrides=(
        cf.Override("host:web3", set={"PORT": "8081"}),
        cf.Override("label:job-node", content="<jobs/>\nPORT=80\n"),
        cf.Override("label:az=2", set={"ZONE": "two"}),
    ),
)


def test_a_host_without_matching_overrides_gets_the_base_file():
    text, scopes = cf.effective(BASE, cf.HostIdentity("10.0.0.1", ("web1",), ("web",)))
    assert (text, scopes) == (BASE.content, [])


def test_label_overrides_apply_in_name_order_then_the_hosts_own():
    host = cf.HostIdentity("10.0.0.3", ("web3",), ("job-node", "az=2"))
    text, scopes = cf.effective(BASE, host)
    assert scopes == ["label:az=2", "label:job-node", "host:web3"]
    assert text == "<jobs/>\nPORT=8081\nZONE=two\n"


def test_a_host_override_matches_by_address_as_well_as_by_server_name():
    override = cf.Override("host:10.0.0.9:2222", set={"A": "1"})
    assert cf.matches(override, cf.HostIdentity("10.0.0.9:2222"))
    assert not cf.matches(override, cf.HostIdentity("10.0.0.9"))


def test_set_keys_replaces_dotenv_ini_and_yaml_style_lines_and_appends_the_rest():
    text = "export A=1\nB = 2\nc: 3\nAB=4\nno newline at end=5"
    out = cf.set_keys(text, {"A": "x", "B": "y", "c": "z", "D": "new"})
    assert out == "export A=x\nB = y\nc: z\nAB=4\nno newline at end=5\nD=new\n"


def test_render_fills_known_names_keeps_unknown_ones_and_honours_the_escape():
    text, unknown = cf.render(
        "pw=${DB_PASSWORD} host=${HOST} php=$config ${HOME} $${HOST}",
        {"DB_PASSWORD": "s", "HOST": "h"},
    )
    assert text == "pw=s host=h php=$config ${HOME} ${HOST}"
    assert unknown == ["HOME"]


def test_a_value_is_inserted_as_is_never_rendered_again():
    text, _ = cf.render("a=${A}", {"A": "${B}", "B": "no"})
    assert text == "a=${B}"


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../up", "a/../../b", ".git/config", ".ferryman-config", "-rf", "dir/"]
)
def test_config_paths_stay_inside_the_release_and_off_reserved_names(bad):
    with pytest.raises(ValidationError):
        cf.path(bad)


def test_modes_are_octal_permission_bits_the_owner_can_read():
    assert cf.mode(None) == 0o600
    assert cf.mode("0644") == cf.mode("644") == cf.mode("0o644") == 0o644
    for bad in ("0200", "9", "01777", "rw-r--r--"):
        with pytest.raises(ValidationError):
            cf.mode(bad)


def test_override_scopes_name_a_label_or_a_host():
    assert cf.scope("label:region=bj") == "label:region=bj"
    assert cf.scope("host:web-1") == "host:web-1"
    for bad in ("web1", "group:x", "label:", "host:a b"):
        with pytest.raises(ValidationError):
            cf.scope(bad)


def test_the_history_diff_shows_content_mode_and_overrides():
    new = cf.ConfigFile("a.env", 0o640, "A=2\n", (cf.Override("label:x", set={"K": "v"}),))
    text = cf.diff(cf.ConfigFile("a.env", 0o600, "A=1\n"), new, "v1", "v2")
    assert "-# mode 0600\n-A=1\n+# mode 0640\n+A=2\n" in text
    assert '+# override label:x\n+# set {"K": "v"}\n' in text
