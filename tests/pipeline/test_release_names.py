"""Release names from the environment's ``release_name`` template, on the real fleet: made
safe from a branch like ``feature/x``, unique per deploy, found by rollbacks (by age in the
records and by name), and pruned as Ferryman's own — oldest first even when the names sort
the other way (``v10`` before ``v9``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.testing.fleet import FleetHost
from tests.helpers import (
    Repo,
    apply,
    deploy,
    live,
    project_config,
    read_live,
    release_dirs,
    rollback,
    unique,
)

pytestmark = pytest.mark.fleet


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    return Repo(git_host, tmp_path, unique("named"))


def test_the_design_template_names_the_release_dir_safely(db, settings, repo, targets):
    commit = repo.commit({"index.html": "x\n"}, branch="feature/x")
    template = "{project}_{env}_{version}_{branch}_{time}_{user}"
    apply(db, project_config(repo.name, repo.url, targets, release_name=template))
    result = deploy(db, settings, repo.name, "feature/x")
    assert result["status"] == "success", result["error"]
    name = result["release"]
    assert name.startswith(f"{repo.name}_production_{commit[:7]}_feature-x_")
    assert name.endswith("_alice") and "/" not in name
    for host in targets:
        assert live(host, repo.name) == name
        assert release_dirs(host, repo.name) == [name]


def test_two_deploys_that_would_share_a_name_get_two(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets, release_name="{project}_{version}"))
    first = deploy(db, settings, repo.name, "v1")
    second = deploy(db, settings, repo.name, "v1")
    assert first["status"] == second["status"] == "success"
    assert first["release"] == f"{repo.name}_v1"
    assert second["release"] == f"{repo.name}_v1-{second['id']}"
    for host in targets:
        assert sorted(release_dirs(host, repo.name)) == sorted(
            [first["release"], second["release"]]
        )
        assert live(host, repo.name) == second["release"]


def test_rollback_and_pruning_go_by_age_not_by_how_names_sort(db, settings, repo, targets):
    apply(
        db,
        project_config(
            repo.name, repo.url, targets, release_name="{project}_{version}", keep_releases=2
        ),
    )
    made = {}
    for n in (9, 10):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
        made[n] = deploy(db, settings, repo.name, f"v{n}")
        assert made[n]["status"] == "success", made[n]["error"]

    back = rollback(db, settings, repo.name)  # from v10 to v9, though "v10" < "v9"
    assert back["status"] == "success", back["error"]
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v9\n"}

    for n in (11, 12):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
        made[n] = deploy(db, settings, repo.name, f"v{n}")
        assert made[n]["status"] == "success", made[n]["error"]
    for host in targets:  # the two newest are kept: v11 (previous) and v12 (live)
        assert sorted(release_dirs(host, repo.name)) == [f"{repo.name}_v11", f"{repo.name}_v12"]

    named = rollback(db, settings, repo.name, to=f"{repo.name}_v11")
    assert named["status"] == "success", named["error"]
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v11\n"}
