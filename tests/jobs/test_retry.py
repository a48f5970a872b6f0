"""Retrying a failed deploy on a real fleet: only the failed hosts if asked, shipping the kept
build (no checkout, no build), under the same ticket when there is one."""

from __future__ import annotations

import pytest

from ferryman.errors import Conflict
from ferryman.services import deploy_views, deploys
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    finish,
    live,
    project_config,
    read_live,
    unique,
)

pytestmark = pytest.mark.fleet


def test_a_retry_on_the_failed_hosts_ships_the_kept_build_without_rebuilding(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("retry"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    tasks = {
        "post_deploy": "echo built\necho generated > built.txt\n",
        "pre_release": 'test -f /srv/ready || { echo "not ready" >&2; exit 5; }\n',
    }
    apply(db, project_config(repo.name, repo.url, targets, tasks=tasks))
    broken = targets[2]
    for host in targets:
        if host is not broken:
            host.path("/srv/ready").write_text("")
    failed = deploy(db, settings, repo.name, "v1")
    assert failed["status"] == "failed"
    assert all(live(h, repo.name) is None for h in targets)  # nothing switched anywhere

    broken.path("/srv/ready").write_text("")  # the operator fixes that host
    repo.commit({"index.html": "moved on\n"})  # the branch moves; the retry does not care
    retry = deploys.request_retry(db, ADMIN, failed["id"], failed_only=True)
    assert retry.hosts == [broken.address]
    done = finish(db, settings, retry.id)
    assert done["status"] == "success", done["error"]
    assert done["commit"] == failed["commit"] and done["retry_of"] == failed["id"]
    assert live(broken, repo.name) == done["release"]
    assert read_live(broken, repo.name, "built.txt") == "generated\n"
    assert all(live(h, repo.name) is None for h in targets if h is not broken)
    assert builds(db) == 1  # built once, for the failed deploy
    names = [s["name"] for s in done["stages"]]
    assert "reuse_build" in names and "checkout" not in names and "post_deploy" not in names

    with pytest.raises(Conflict):
        deploys.request_retry(db, ADMIN, done["id"])  # a successful deploy is not retried
    everywhere = finish(db, settings, deploys.request_retry(db, ADMIN, failed["id"]).id)
    assert everywhere["status"] == "success"
    assert {live(h, repo.name) for h in targets} == {everywhere["release"]}
    assert builds(db) == 1
    assert deploy_views.get(db, failed["id"])["status"] == "failed"  # history unchanged


def builds(db) -> int:
    """How many times a post_deploy printed "built" (the build ran), over every deploy."""
    from sqlalchemy import func, select

    from ferryman.db.models import LogLine

    with db.read() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(LogLine)
                .where(LogLine.stage == "post_deploy", LogLine.text == "built")
            )
            or 0
        )
