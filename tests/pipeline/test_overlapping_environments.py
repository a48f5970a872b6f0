"""Two environments whose webroot, releases dir or shared paths overlap on one host are
refused when applied, naming the other project, environment, path and host — so one
environment's pruning can no longer delete another's live releases. Shared paths live per
project and environment by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.errors import ConfigError
from ferryman.services import spaces
from ferryman.testing.fleet import FleetHost
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    apply_as,
    deploy,
    live,
    member,
    project_config,
    release_dirs,
    unique,
)

pytestmark = pytest.mark.fleet


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    return Repo(git_host, tmp_path, unique("site"))


def _refused(db, config) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        apply(db, config)
    return caught.value.errors


def test_a_second_project_on_the_first_ones_releases_dir_is_refused_and_its_releases_survive(
    db, settings, repo, targets
):
    """Today's bug: staging and production sharing a releases dir on a host, staging's
    pruning removed production's live release. The configuration is refused now."""
    apply(db, project_config(repo.name, repo.url, targets, keep_releases=2))
    for n in (1, 2, 3):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
        assert deploy(db, settings, repo.name, f"v{n}")["status"] == "success"
    before = {h.address: (live(h, repo.name), release_dirs(h, repo.name)) for h in targets}

    other = unique("other")
    errors = _refused(
        db,
        project_config(
            other,
            repo.url,
            targets[:1],
            keep_releases=2,
            webroot=f"/srv/www/{other}",
            releases=f"/srv/releases/{repo.name}",
        ),
    )
    assert any(
        line.startswith("environments/production: releases dir /srv/releases/")
        and f"of project {repo.name} (environment production)" in line
        and targets[0].address in line
        for line in errors
    ), errors
    after = {h.address: (live(h, repo.name), release_dirs(h, repo.name)) for h in targets}
    assert after == before


def test_one_projects_staging_inside_its_production_releases_is_refused(db, repo, targets):
    config = project_config(repo.name, repo.url, targets)
    config["environments"]["staging"] = dict(
        config["environments"]["production"],
        webroot=f"/srv/www/{repo.name}-staging",
        releases=f"/srv/releases/{repo.name}/staging",
    )
    errors = _refused(db, config)
    assert any("releases dir" in line and "(environment staging)" in line for line in errors), (
        errors
    )


def test_a_webroot_inside_another_environments_release_is_refused(db, repo, targets):
    apply(db, project_config(repo.name, repo.url, targets))
    other = unique("other")
    errors = _refused(
        db,
        project_config(
            other,
            repo.url,
            targets,
            webroot=f"/srv/www/{repo.name}/admin",
            releases=f"/srv/releases/{other}",
        ),
    )
    assert any(f"webroot /srv/www/{repo.name}/admin overlaps" in line for line in errors)


def test_the_same_paths_on_other_hosts_are_fine(db, repo, targets):
    apply(db, project_config(repo.name, repo.url, targets[:1]))
    other = unique("other")
    apply(
        db,
        project_config(
            other,
            repo.url,
            targets[1:],
            webroot=f"/srv/www/{repo.name}",
            releases=f"/srv/releases/{repo.name}",
        ),
    )


def test_a_project_of_a_space_the_applier_cannot_see_is_not_named(db, repo, targets):
    apply(db, project_config(repo.name, repo.url, targets))
    space = unique("team")
    spaces.create_space(db, ADMIN, space)
    master = member(db, unique("master"), space, "master")
    other = unique("other")
    config = project_config(other, repo.url, targets, releases=f"/srv/releases/{repo.name}")
    config["space"] = space
    with pytest.raises(ConfigError) as caught:
        apply_as(db, master, config)
    text = "\n".join(caught.value.errors)
    assert "a project of another space" in text and repo.name not in text.replace(
        f"/srv/releases/{repo.name}", ""
    )


def test_shared_paths_live_per_project_and_environment_by_default(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets, shared=["uploads"]))
    other = unique("other")
    apply(db, project_config(other, repo.url, targets, shared=["uploads"]))
    releases = {}
    for name in (repo.name, other):
        result = deploy(db, settings, name, "v1")
        assert result["status"] == "success", result["error"]
        releases[name] = result["release"]
    for host in targets:
        for name in (repo.name, other):
            link = host.path(f"/srv/releases/{name}/{releases[name]}/uploads")
            assert link.is_symlink()
            assert Path(link.readlink()) == Path(f"/srv/releases/shared/{name}/production/uploads")
        mine = host.path(f"/srv/releases/shared/{repo.name}/production/uploads")
        (mine / "a.txt").write_text("mine\n")
        assert not host.path(f"/srv/releases/shared/{other}/production/uploads/a.txt").exists()


def test_two_projects_sharing_one_shared_dir_and_path_are_refused(db, repo, targets):
    apply(
        db,
        project_config(repo.name, repo.url, targets, shared=["uploads"], shared_dir="/srv/common"),
    )
    other = unique("other")
    errors = _refused(
        db, project_config(other, repo.url, targets, shared=["uploads"], shared_dir="/srv/common")
    )
    assert any("shared path /srv/common/uploads overlaps" in line for line in errors), errors
    # another path under the same shared dir treads on nothing
    apply(db, project_config(other, repo.url, targets, shared=["cache"], shared_dir="/srv/common"))
