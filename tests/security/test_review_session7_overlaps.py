"""Review (session 7): overlapping environments are refused when a project file is applied
(``services/overlap.py``), but other ways of making a project or of aiming an environment at a
host skip that refusal, and then one environment's deploy removes the other's releases."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.errors import ConfigError
from ferryman.services import inventory, projects
from ferryman.testing.fleet import FleetHost
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    live,
    project_config,
    release_dirs,
    unique,
)


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    return Repo(git_host, tmp_path, unique("site"))


@pytest.mark.fleet
def test_copying_a_project_onto_the_same_hosts_and_paths_is_refused(db, settings, repo, targets):
    hosts = targets[:1]
    apply(db, project_config(repo.name, repo.url, hosts, keep_releases=3))
    for n in (1, 2):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
        assert deploy(db, settings, repo.name, f"v{n}")["status"] == "success"
    host = hosts[0]
    before = release_dirs(host, repo.name)
    served = live(host, repo.name)
    assert served in before and len(before) == 2

    copy = unique("copy")
    try:
        projects.copy_project(db, ADMIN, repo.name, copy)
    except ConfigError:
        return  # refused, as `apply` of the same file is: nothing else to prove
    # not refused: the copy writes the very same webroot and releases dir on the same host
    result = deploy(db, settings, copy, "v1")
    assert result["status"] == "success", result["error"]
    after = release_dirs(host, repo.name)
    assert set(before) <= set(after), f"the copy's deploy removed {set(before) - set(after)}"
    assert live(host, repo.name) == served, "the copy's deploy replaced the original's site"


@pytest.mark.fleet
def test_moving_a_server_onto_a_host_where_its_environment_overlaps_is_refused(
    db, settings, repo, targets
):
    host, elsewhere = targets[0], targets[1]
    apply(db, project_config(repo.name, repo.url, [host], keep_releases=3))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    served = live(host, repo.name)
    before = release_dirs(host, repo.name)

    # a second project on the same paths, through a labelled server on another host: fine
    label = f"role={unique('web')}"
    server = inventory.create_server(
        db, ADMIN, "default", unique("srv"), elsewhere.address, labels=[label]
    )
    other = unique("other")
    config = project_config(
        other,
        repo.url,
        [],
        webroot=f"/srv/www/{repo.name}",
        releases=f"/srv/releases/{repo.name}",
        keep_releases=2,
    )
    del config["environments"]["production"]["hosts"]
    config["environments"]["production"]["labels"] = [label]
    apply(db, config)
    try:
        inventory.update_server(db, ADMIN, int(server["id"]), address=host.address)
    except ConfigError:
        return  # refused: the server's environment would overlap another's on that host
    for tag in ("v1", "v1"):
        result = deploy(db, settings, other, tag)
        assert result["status"] == "success", result["error"]
    assert live(host, repo.name) == served, "the other project's deploy replaced the site"
    assert set(before) <= set(release_dirs(host, repo.name))


def test_a_copy_on_paths_that_do_not_name_the_project_is_refused(db):
    name = unique("fixed")
    config = project_config(
        name,
        "ssh://git@127.0.180.250/none.git",
        [],
        webroot="/srv/www/the-site",
        releases="/srv/releases/the-site",
    )
    config["environments"]["production"]["hosts"] = ["127.0.180.248"]
    apply(db, config)
    with pytest.raises(ConfigError) as refused:
        projects.copy_project(db, ADMIN, name, unique("copy"))
    assert any("/srv/www/the-site overlaps" in line for line in refused.value.errors)
