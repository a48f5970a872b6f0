"""A team moving from Walle brings its hooks as they were written: ``cd {VERSION}`` on the
targets, ``{WORKSPACE}`` in both kinds of task. They deploy and roll back on the real fleet
and do what they did under Walle; the ``${NAME}`` variables keep Ferryman's meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.config.problems import hook_notes
from ferryman.config.project import parse_project
from ferryman.testing.fleet import FleetHost
from tests.helpers import (
    Repo,
    apply,
    deploy,
    live,
    printed,
    project_config,
    read_live,
    rollback,
    unique,
)

pytestmark = pytest.mark.fleet

# Walle 1.x tasks, one command a line, copied from a Walle project as they were.
WALLE_TASKS = {
    "pre_deploy": "echo pre-deploy {PROJECT}",
    "post_deploy": (
        "cd {WORKSPACE}\n"
        "echo built-by-walle-hook > {WORKSPACE}/build.txt\n"
        "pwd > {WORKSPACE}/built-in.txt"
    ),
    "pre_release": (
        "cd {VERSION}\n"
        "test -f build.txt\n"
        'echo "{VERSION}|{WORKSPACE}|$PWD|${VERSION}" > /srv/walle-pre-release.txt'
    ),
    "post_release": (
        "cd {VERSION}\n"
        'echo "{VERSION}|{WORKSPACE}|$(cat index.html)|${VERSION}" > /srv/walle-post-release.txt'
    ),
}


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    return Repo(git_host, tmp_path, unique("walle"))


def test_walle_hooks_copied_verbatim_deploy_and_roll_back_on_the_fleet(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets, tasks=WALLE_TASKS))
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    releases = f"/srv/releases/{repo.name}"
    rel1 = f"{releases}/{first['release']}"
    for host in targets:
        # {WORKSPACE} in post_deploy was the checkout: what it wrote there shipped
        assert read_live(host, repo.name, "build.txt") == "built-by-walle-hook\n"
        built_in = read_live(host, repo.name, "built-in.txt").strip()
        assert built_in.endswith(f"deploy-{first['id']}/src")
        # on targets {VERSION} and {WORKSPACE} are the release dir; ${VERSION} its name
        assert host.path("/srv/walle-pre-release.txt").read_text() == (
            f"{rel1}|{rel1}|{rel1}|{first['release']}\n"
        )
        assert host.path("/srv/walle-post-release.txt").read_text() == (
            f"{rel1}|{rel1}|v1|{first['release']}\n"
        )

    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]
    rel2 = f"{releases}/{second['release']}"
    for host in targets:
        assert host.path("/srv/walle-post-release.txt").read_text() == (
            f"{rel2}|{rel2}|v2|{second['release']}\n"
        )

    back = rollback(db, settings, repo.name)
    assert back["status"] == "success", back["error"]
    for host in targets:
        assert live(host, repo.name) == first["release"]
        # the rollback's post_release ran in, and named, the release it went back to
        assert host.path("/srv/walle-post-release.txt").read_text() == (
            f"{rel1}|{rel1}|v1|{first['release']}\n"
        )
    assert printed(db, first["id"], "pre_deploy") == [f"pre-deploy {repo.name}"]


def test_walle_two_hooks_find_its_variable_names(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    tasks = {
        "post_deploy": 'echo "${PROJECT_NAME} ${COMMIT_ID} ${TASK_ID}"',
        "post_release": 'echo "${CURRENT_RELEASE} ${VERSION}" > /srv/walle2.txt',
    }
    apply(db, project_config(repo.name, repo.url, targets, tasks=tasks))
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    assert printed(db, result["id"], "post_deploy") == [
        f"{repo.name} {result['commit']} {result['id']}"
    ]
    for host in targets:
        assert host.path("/srv/walle2.txt").read_text() == (
            f"/srv/releases/{repo.name} {result['release']}\n"
        )


def test_a_failing_walle_hook_on_a_target_leaves_every_host_on_its_release(
    db, settings, repo, targets
):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets, tasks=WALLE_TASKS))
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    broken = dict(WALLE_TASKS, pre_release="cd {VERSION}\ntest -f missing-file.txt")
    apply(db, project_config(repo.name, repo.url, targets, tasks=broken))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "failed"
    for host in targets:
        assert live(host, repo.name) == first["release"]
        assert read_live(host, repo.name, "index.html") == "v1\n"
        assert not host.path(f"/srv/releases/{repo.name}/{second['release']}").exists()


def test_detection_notes_walle_forms_whose_meaning_differs():
    config = parse_project(
        {
            "project": "walle",
            "repo": "file:///srv/git/walle.git",
            "environments": {
                "production": {
                    "hosts": ["127.0.0.1"],
                    "webroot": "/srv/www/walle",
                    "releases": "/srv/releases/walle",
                    "tasks": WALLE_TASKS,
                }
            },
        }
    )
    notes = hook_notes(config.environment("production"))
    assert any(n.startswith("tasks/pre_release: {VERSION} is the release directory") for n in notes)
    assert any(n.startswith("tasks/post_release: {WORKSPACE} on a target") for n in notes)
    # {WORKSPACE} on the deploy host means what it always did: no note
    assert not any(n.startswith("tasks/post_deploy") for n in notes)


@pytest.fixture
def pull_server(settings):
    """A real ``ferryman serve`` on loopback, and its database (as in ``test_pull.py``)."""
    from ferryman.bootstrap import prepare_home
    from tests.conftest import set_approval
    from tests.helpers import running_server

    db = prepare_home(settings)
    set_approval(db, "production", False)
    try:
        with running_server(settings.home) as url:
            yield url, db
    finally:
        db.dispose()


@pytest.fixture
def pull_pollers():
    from tests.pipeline.test_pull import Pollers

    running = Pollers()
    yield running
    running.stop()


def test_walle_hooks_run_unchanged_on_pull_mode_hosts(
    pull_server, pull_pollers, git_host, targets, tmp_path
):
    """A pull-mode host runs ``pre_release``/``post_release`` itself: ``cd {VERSION}`` lands
    in the release there too."""
    from ferryman.services import agents, deploys, projects
    from ferryman.services.audit import SYSTEM
    from tests.helpers import ADMIN
    from tests.pipeline.test_pull import _config, _wait

    url, db = pull_server
    repo = Repo(git_host, tmp_path, unique("wallepull"))
    repo.commit({"index.html": "v1\n", "status.txt": "fine\n"}, tag="v1")
    hooks = {
        "pre_release": "cd {VERSION}\ntest -f index.html",
        "post_release": 'cd {VERSION}\necho "{VERSION}|{WORKSPACE}|$PWD" > /srv/walle-pull.txt',
    }
    config = _config(repo.name, repo.url, targets[:1], tasks=hooks)
    projects.apply_project(db, ADMIN, parse_project(config))
    host = targets[0]
    pull_pollers.start(host, url, agents.register(db, SYSTEM, "default", host.address)["token"])
    done = _wait(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v1").id)
    assert done["status"] == "success", done["error"]
    rel = f"/srv/releases/{repo.name}/{done['release']}"
    assert host.path("/srv/walle-pull.txt").read_text() == f"{rel}|{rel}|{rel}\n"
