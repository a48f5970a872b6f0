"""Which paths of two environments collide on a host (domain/overlap.py)."""

from __future__ import annotations

from ferryman.domain.overlap import (
    Claim,
    claims,
    collisions,
    default_shared_dir,
    overlap,
    shared_dir,
)


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
