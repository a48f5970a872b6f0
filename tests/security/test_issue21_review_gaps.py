"""Gaps the last security review of issue 21 noted, each attacked as it was found:

- the path-overlap refusal named another space's paths and environment to a user who cannot
  see that space — it now says only "a project of another space";
- a successful config-only deploy counted as its commit having passed for ``requires_passed``
  — only a deploy of the commit does (a config-only deploy ships the live release again);
- a local target's shared dir is bound writable whether or not it lists ``shared:`` paths,
  but was not counted in the overlap check — two local environments could write one dir.

No fleet: applying checks paths against the stored configurations, and the gate reads the
deploy records."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, Project
from ferryman.errors import ConfigError, Conflict
from ferryman.services import deploys, projects
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world, fresh


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield build_world(tmp_path_factory.mktemp("review-gaps"))


def _refusal(w: World, who: str, data: dict[str, Any]) -> str:
    actor = SYSTEM if who == "super" else w.actors[who]
    with pytest.raises(ConfigError) as caught:
        projects.apply_project(w.db, actor, parse_project(data))
    return "\n".join([caught.value.message, *caught.value.errors])


def _env(host: str, root: str, **more: Any) -> dict[str, Any]:
    return {"hosts": [host], "user": "root", "webroot": f"{root}/www", "releases": f"{root}/rel"}


# --- a. another space's paths are not shown ------------------------------------------------------


def test_an_overlap_with_another_spaces_project_names_none_of_its_paths(world):
    w = world
    hidden = fresh("hidden")
    theirs = {
        "project": hidden,
        "space": "other",
        "repo": w.repo_url,
        "environments": {"production": _env("127.0.0.3:1", f"/srv/zone/{hidden}-secret")},
    }
    projects.apply_project(w.db, SYSTEM, parse_project(theirs))
    mine = fresh("mine")
    # my releases dir holds their whole tree: my path, on my host, is all I may learn
    data = {
        "project": mine,
        "space": SPACE,
        "repo": w.repo_url,
        "environments": {
            "staging": {**_env("127.0.0.3:1", f"/srv/{mine}"), "releases": "/srv/zone"}
        },
    }
    text = _refusal(w, "owner", data)
    assert "a project of another space" in text and "/srv/zone " in text, text
    assert hidden not in text and "secret" not in text and "(environment" not in text, text
    assert "production" not in text, text  # their environment's name
    # one who sees both spaces is told everything, as before
    told = _refusal(w, "super", data)
    assert f"project {hidden}" in told and f"/srv/zone/{hidden}-secret/rel" in told, told


# --- b. a config-only deploy passes nothing ------------------------------------------------------


def _commit(w: World, ref: str) -> str:
    path = w.repo_url.removeprefix("file://")
    return subprocess.run(
        ["git", "rev-parse", f"{ref}^{{commit}}"],
        cwd=path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _gated(w: World) -> str:
    name = fresh("gated")
    data = w.config(name)
    data["environments"]["production"]["requires_passed"] = "staging"
    projects.apply_project(w.db, SYSTEM, parse_project(data))
    return name


def _succeeded(w: World, name: str, env: str, kind: str, commit: str) -> None:
    """A finished deploy of ``kind`` recorded as the worker records it."""
    with w.db.transaction() as s:
        project = s.query(Project).filter_by(name=name).one()
        s.add(
            Deploy(
                project_id=project.id,
                env=env,
                kind=kind,
                ref="v1",
                commit=commit,
                status="success",
                config=project.config,
            )
        )


def _deploy_production(w: World, name: str, commit: str) -> int:
    with w.db.transaction() as s:
        project = s.query(Project).filter_by(name=name).one()
        made = deploys.create_deploy(
            s, SYSTEM, project, "production", kind="deploy", ref="v1", commit=commit
        )
        return int(made.id)


def test_a_successful_config_only_deploy_does_not_pass_its_commit_for_requires_passed(world):
    w = world
    name, commit = _gated(w), _commit(w, "v1")
    _succeeded(w, name, "staging", "config", commit)  # the live release shipped again
    with pytest.raises(Conflict) as refused:
        _deploy_production(w, name, commit)
    assert "to pass staging first" in refused.value.message
    _succeeded(w, name, "staging", "deploy", commit)  # a deploy of the commit: it passed
    assert _deploy_production(w, name, commit) > 0


# --- c. a local target's shared dir is claimed ---------------------------------------------------


def _local(name: str, root: Path, **env: Any) -> dict[str, Any]:
    production = {
        "hosts": ["local"],
        "webroot": str(root / name / "www" / "current"),
        "releases": str(root / name / "releases"),
        **env,
    }
    return {"project": name, "space": SPACE, "repo": "", "environments": {"production": production}}


def test_a_local_targets_shared_dir_without_shared_paths_is_counted_in_the_overlap_check(
    world, tmp_path
):
    w = world
    common = tmp_path / "common"
    first, second = fresh("loc"), fresh("loc")
    one = {**_local(first, tmp_path, shared_dir=str(common)), "repo": w.repo_url}
    projects.apply_project(w.db, SYSTEM, parse_project(one))  # no shared: paths at all
    two = {**_local(second, tmp_path, shared_dir=str(common), shared=["cache"]), "repo": w.repo_url}
    text = _refusal(w, "super", two)
    assert f"shared dir {common}" in text and f"project {first}" in text, text
    # a releases dir inside it is refused as well; beside it, nothing is
    three = {**_local(second, tmp_path, releases=str(common / "releases")), "repo": w.repo_url}
    assert f"shared dir {common}" in _refusal(w, "super", three)
    projects.apply_project(
        w.db, SYSTEM, parse_project({**_local(second, tmp_path), "repo": w.repo_url})
    )


def test_a_local_target_cannot_put_its_webroot_beside_another_local_projects_paths(world, tmp_path):
    """A local target's sandbox binds its webroot's directory writable (the switch renames the
    link there): a second project whose webroot link sits in the same directory would let
    the first one's hooks replace it. Refused; a webroot in a directory of its own is not."""
    w = world
    www = tmp_path / "www"
    first, second = fresh("web"), fresh("web")
    one = {**_local(first, tmp_path, webroot=str(www / first)), "repo": w.repo_url}
    projects.apply_project(w.db, SYSTEM, parse_project(one))
    two = {**_local(second, tmp_path, webroot=str(www / second)), "repo": w.repo_url}
    text = _refusal(w, "super", two)
    assert f"webroot's directory {www}" in text and f"project {first}" in text, text
    apart = {**_local(second, tmp_path, webroot=str(www / second / "current")), "repo": w.repo_url}
    text = _refusal(w, "super", apart)  # its link would still be inside the first's directory
    assert f"project {first}" in text, text
    own = {**_local(second, tmp_path), "repo": w.repo_url}  # <root>/<name>/www/current
    projects.apply_project(w.db, SYSTEM, parse_project(own))


def test_the_same_shared_dir_on_remote_hosts_without_shared_paths_still_treads_on_nothing(
    world, tmp_path
):
    w = world
    first, second = fresh("rem"), fresh("rem")
    for name, shared in ((first, []), (second, ["cache"])):
        data = _local(name, tmp_path, shared_dir="/srv/common-remote", shared=shared)
        data["environments"]["production"]["hosts"] = ["127.0.0.4:1"]
        data["environments"]["production"]["user"] = "root"
        projects.apply_project(w.db, SYSTEM, parse_project({**data, "repo": w.repo_url}))


# --- d. one host written two ways -------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "elsewhere"),
    [
        ("127.0.0.1:2201", "localhost:2201", "127.0.0.9:2201"),
        ("[::1]:2202", "localhost:2202", "[::2]:2202"),
        ("127.0.0.1:2203", "[::ffff:127.0.0.1]:2203", "[::ffff:127.0.0.9]:2203"),
        ("127.0.0.1:2204", "0x7f.0.0.1:2204", "0x7f.0.0.9:2204"),
        ("WEB1.example.com:2205", "web1.example.com:2205", "web2.example.com:2205"),
    ],
)
def test_one_host_written_another_way_is_still_one_host_for_the_overlap_check(
    world, first, second, elsewhere
):
    w = world
    name, other = fresh("same"), fresh("same")
    root = f"/srv/{name}"
    one = {"project": name, "space": SPACE, "repo": w.repo_url}
    projects.apply_project(
        w.db, SYSTEM, parse_project({**one, "environments": {"production": _env(first, root)}})
    )
    two = {"project": other, "space": SPACE, "repo": w.repo_url}
    text = _refusal(w, "super", {**two, "environments": {"production": _env(second, root)}})
    assert f"releases dir {root}/rel overlaps" in text and f"project {name}" in text, text
    # another host is another host: the same paths are fine there
    there = {"production": _env(elsewhere, root)}
    projects.apply_project(w.db, SYSTEM, parse_project({**two, "environments": there}))
