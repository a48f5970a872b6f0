"""Which paths of two environments collide on a host (domain/overlap.py)."""

from __future__ import annotations

from ferryman.domain.overlap import (
    Claim,
    claims,
    collisions,
    default_shared_dir,
    is_deploy_host,
    overlap,
    same_host,
    shared_dir,
)
from ferryman.domain.validate import HostSpec


def test_equal_or_nested_paths_overlap_and_siblings_with_a_common_prefix_do_not():
    assert overlap("/srv/a", "/srv/a")
    assert overlap("/srv/a", "/srv/a/b") and overlap("/srv/a/b/", "/srv/a")
    assert not overlap("/srv/a", "/srv/ab")
    assert not overlap("/srv/releases/shop", "/srv/releases/shop-staging")


def test_the_default_shared_dir_is_per_project_and_environment():
    assert default_shared_dir("/srv/releases/shop", "shop", "production") == (
        "/srv/releases/shared/shop/production"
    )
    assert shared_dir(None, "/srv/releases/shop/", "shop", "test") == (
        "/srv/releases/shared/shop/test"
    )
    assert shared_dir("/data/shop", "/srv/releases/shop", "shop", "test") == "/data/shop"


def test_an_environment_claims_its_webroot_releases_and_each_shared_path_only():
    assert claims("/srv/www/a", "/srv/releases/a", "/srv/shared", ["uploads", "logs/app"]) == [
        Claim("webroot", "/srv/www/a"),
        Claim("releases dir", "/srv/releases/a"),
        Claim("shared path", "/srv/shared/uploads"),
        Claim("shared path", "/srv/shared/logs/app"),
    ]
    assert claims("/srv/www/a", "/srv/releases/a", "/srv/shared", []) == [
        Claim("webroot", "/srv/www/a"),
        Claim("releases dir", "/srv/releases/a"),
    ]


def test_a_legacy_shared_dir_holding_another_projects_default_one_does_not_collide():
    legacy = claims("/srv/www/old", "/srv/releases/old", "/srv/releases/shared", ["storage"])
    new = claims(
        "/srv/www/new",
        "/srv/releases/new",
        default_shared_dir("/srv/releases/new", "new", "production"),
        ["storage"],
    )
    assert collisions(legacy, new) == []
    same = claims("/srv/www/other", "/srv/releases/old", "/srv/x", [])
    assert collisions(legacy, same) == [
        (Claim("releases dir", "/srv/releases/old"), Claim("releases dir", "/srv/releases/old"))
    ]


def test_one_address_written_several_ways_is_one_host_and_names_stay_as_written():
    loopback = {"127.0.0.1", "[::1]"}
    for written in ("127.0.0.1", "localhost", "LOCALHOST.", "web.localhost", "::1", "0.0.0.0"):
        assert same_host(HostSpec(written)) == loopback, written
    assert same_host(HostSpec("::ffff:127.0.0.1", 2222)) == {"127.0.0.1:2222", "[::1]:2222"}
    assert same_host(HostSpec("2130706433")) == loopback  # what inet_aton (and ssh) reads
    assert same_host(HostSpec("0x0a.1")) == {"10.0.0.1"}
    assert same_host(HostSpec("::0001", 2200)) == {"127.0.0.1:2200", "[::1]:2200"}
    assert same_host(HostSpec("10.0.0.01x")) == {"10.0.0.01x"}
    assert same_host(HostSpec("999.1.1.1")) == {"999.1.1.1"}
    assert same_host(HostSpec("web1.example.com")) == {"web1.example.com"}
    assert same_host(HostSpec("127.0.0.9")) == {"127.0.0.9"}


def test_local_and_the_deploy_hosts_loopback_on_any_port_are_the_deploy_host():
    for key in ("local", "127.0.0.1", "127.0.0.1:2222", "[::1]", "[::1]:22", "localhost:2200"):
        assert is_deploy_host(key), key
    assert is_deploy_host("0.0.0.0:2201") and is_deploy_host("[::ffff:127.0.0.1]")
    # another loopback address is another host (an sshd in a namespace of its own), and so
    # is any other address or name, and anything that is not a host at all
    for key in ("127.0.0.9", "127.0.150.1:22", "10.0.0.1", "web1", "-oProxy", "[nope]"):
        assert not is_deploy_host(key), key
