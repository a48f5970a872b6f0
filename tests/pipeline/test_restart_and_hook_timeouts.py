"""An emergency rollback's restart task on the real fleet (every host at once), and a hook
that runs past its timeout named in the deploy's error."""

from __future__ import annotations

import threading
import time

import pytest

from ferryman.services import deploys
from tests.helpers import ADMIN, Repo, apply, deploy, finish, live, project_config, unique

pytestmark = pytest.mark.fleet

# Each host says it started, then waits until the test lets every host go: with hosts
# worked on one at a time (parallel: 1) this would never end.
RESTART = """touch "$RELEASES.started"
while [ ! -e "$RELEASES.go" ]; do sleep 0.05; done
echo "$VERSION $PWD" >> "$RELEASES.restarted"
"""


def _let_go_once_all_started(hosts, name: str, done: threading.Event) -> None:
    started = [h.path(f"/srv/releases/{name}.started") for h in hosts]
    while not done.is_set():
        if all(p.exists() for p in started):
            for host in hosts:
                host.path(f"/srv/releases/{name}.go").touch()
            return
        time.sleep(0.05)


def test_an_emergency_rollback_restarts_the_service_on_every_host_at_once(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("restart"))
    name = repo.name
    env = {"parallel": 1, "task_timeout": 30, "tasks": {"restart": RESTART}}
    apply(db, project_config(name, repo.url, targets, **env))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    first = deploy(db, settings, name, "v1")["release"]
    repo.commit({"index.html": "v2\n"}, tag="v2")
    assert deploy(db, settings, name, "v2")["status"] == "success"
    done = threading.Event()
    releaser = threading.Thread(target=_let_go_once_all_started, args=(targets, name, done))
    releaser.start()
    try:
        back = deploys.request_rollback(db, ADMIN, name, "production", emergency=True)
        result = finish(db, settings, back.id)
        assert result["status"] == "success", result["error"]
        assert {live(h, name) for h in targets} == {first}
        assert "restart" in [stage["name"] for stage in result["stages"]]
    finally:
        done.set()
        releaser.join()
    for host in targets:
        ran = host.path(f"/srv/releases/{name}.restarted").read_text().splitlines()
        assert ran and set(ran) == {f"{first} /srv/releases/{name}/{first}"}


def test_a_post_release_that_runs_past_its_timeout_is_named_with_its_host(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("slowhook"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")["release"]
    # task_timeout bounds the checkout's git too: 5 s leaves it room on a loaded machine
    hung = {"task_timeout": 5, "tasks": {"post_release": "sleep 600\n"}}
    apply(db, project_config(repo.name, repo.url, targets, **hung))
    repo.commit({"index.html": "v2\n"}, tag="v2")

    result = deploy(db, settings, repo.name, "v2")

    assert result["status"] == "failed"
    assert result["error"]["code"] == "timeout"
    assert result["error"]["message"] == (
        f"post_release timed out after 5s on host {targets[0].address}"
    )
    assert {live(h, repo.name) for h in targets} == {first}
