"""Review (session 8): the overlap check reads one host written two ways as one host
(``services/overlap.py``, ``same_host``), but not every way the deploy host's own loopback is
written. ``localhost`` counted as ``127.0.0.1`` and as ``::1`` — yet ``127.0.0.1`` and
``[::1]`` written literally were two hosts, and so were ``0.0.0.0`` and ``[::]``, which a
connection (ssh's too) reaches as the local host on Linux. A master of one space could aim
an environment at ``0.0.0.0`` on the webroot and releases dir another space's environment
uses on ``127.0.0.1``, and its deploys would prune and switch that other space's releases.

No fleet: applying checks the paths against the stored configurations, and the refusal (or
the project row it would write) is the state asserted on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from ferryman.config.project import parse_project
from ferryman.db.models import Project
from ferryman.errors import ConfigError
from ferryman.services import projects, spaces
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world, fresh


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield build_world(tmp_path_factory.mktemp("review8-overlap"))


def _env(host: str, root: str) -> dict[str, Any]:
    return {"hosts": [host], "user": "root", "webroot": f"{root}/www", "releases": f"{root}/rel"}


def _stored(w: World, name: str) -> bool:
    with w.db.read() as s:
        return s.scalar(select(Project.id).where(Project.name == name)) is not None


@pytest.mark.parametrize(
    ("theirs", "mine", "port"),
    [
        ("127.0.0.1", "0.0.0.0", 2301),
        ("127.0.0.1", "[::]", 2302),
        ("127.0.0.1", "[::1]", 2303),
        ("[::1]", "0.0.0.0", 2304),
        ("localhost", "0.0.0.0", 2305),
    ],
)
def test_the_deploy_hosts_loopback_written_another_way_is_one_host_for_the_overlap_check(
    world, theirs, mine, port
):
    w = world
    victim, attacker = fresh("victim"), fresh("attacker")
    root = f"/srv/{fresh('shop')}"
    projects.apply_project(
        w.db,
        SYSTEM,
        parse_project(
            {
                "project": victim,
                "space": "other",
                "repo": w.repo_url,
                "environments": {"production": _env(f"{theirs}:{port}", root)},
            }
        ),
    )
    # a master of SPACE, who cannot see "other", aims at the same machine and the same paths
    master = w.actors["master"]
    assert "other" not in {row["name"] for row in spaces.list_spaces(w.db, master)}
    attack = {
        "project": attacker,
        "space": SPACE,
        "repo": w.repo_url,
        "environments": {"production": _env(f"{mine}:{port}", root)},
    }
    with pytest.raises(ConfigError) as caught:
        projects.apply_project(w.db, master, parse_project(attack))
    text = "\n".join([caught.value.message, *caught.value.errors])
    assert "a project of another space" in text, text
    assert victim not in text, text  # and still nothing of the other space's names
    assert not _stored(w, attacker)


def test_another_loopback_address_is_still_another_host(world):
    """The fleet of these tests is one sshd per 127.0.X.Y, each its own /srv: only the
    loopback address itself (and what reaches it) is the deploy host."""
    w = world
    first, second = fresh("first"), fresh("second")
    root = f"/srv/apart-{first}"
    for name, host in ((first, "127.0.0.1:2310"), (second, "127.0.0.9:2310")):
        projects.apply_project(
            w.db,
            SYSTEM,
            parse_project(
                {
                    "project": name,
                    "space": SPACE,
                    "repo": w.repo_url,
                    "environments": {"production": _env(host, root)},
                }
            ),
        )
    assert _stored(w, first) and _stored(w, second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("local", "127.0.0.1"),
        ("local", "localhost:2322"),
        ("local", "[::1]"),
        ("[::ffff:127.0.0.1]:2323", "local"),
        ("0.0.0.0:2324", "local"),
    ],
)
def test_an_ssh_host_on_the_deploy_hosts_loopback_overlaps_a_local_target(world, first, second):
    """Issue 21: ``hosts: [local]`` is the deploy host itself, and so is an ssh host written
    as its loopback (on any port: an sshd there serves the same files). Their paths overlap
    whichever is applied first, and the second is refused with nothing stored."""
    w = world
    kept, refused = fresh("kept"), fresh("refused")
    root = f"/srv/{fresh('same')}"
    projects.apply_project(
        w.db,
        SYSTEM,
        parse_project(
            {
                "project": kept,
                "space": SPACE,
                "repo": w.repo_url,
                "environments": {"production": _env(first, root)},
            }
        ),
    )
    second_env = {**_env(second, root), "releases": f"{root}/rel/old"}  # inside the other's
    if second == "local":
        second_env.pop("user")
    with pytest.raises(ConfigError) as caught:
        projects.apply_project(
            w.db,
            SYSTEM,
            parse_project(
                {
                    "project": refused,
                    "space": SPACE,
                    "repo": w.repo_url,
                    "environments": {"production": second_env},
                }
            ),
        )
    text = "\n".join([caught.value.message, *caught.value.errors])
    assert "paths overlap another environment's on the same host" in text, text
    assert f"of project {kept} (environment production) on" in text, text
    assert "local" in text.split(" on ")[-1], text
    assert not _stored(w, refused)
    assert _stored(w, kept)


def test_an_ssh_host_on_another_loopback_address_does_not_overlap_a_local_target(world):
    w = world
    root = f"/srv/{fresh('apart')}"
    names = fresh("here"), fresh("there")
    for name, host in zip(names, ("local", "127.0.0.9"), strict=True):
        env = _env(host, root)
        if host == "local":
            env.pop("user")
        projects.apply_project(
            w.db,
            SYSTEM,
            parse_project(
                {
                    "project": name,
                    "space": SPACE,
                    "repo": w.repo_url,
                    "environments": {"production": env},
                }
            ),
        )
    assert all(_stored(w, name) for name in names)
