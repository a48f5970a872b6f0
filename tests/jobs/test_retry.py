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


def test_a_retry_of_failed_hosts_after_an_undone_deploy_brings_every_host_to_one_release(
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
    # only the broken host failed, but no host serves the release: shipping to it alone
    # would split the fleet, so every host is retried
    assert retry.hosts is not None, "the retry names no hosts"
    assert sorted(retry.hosts) == sorted(h.address for h in targets)
    done = finish(db, settings, retry.id)
    assert done["status"] == "success", done["error"]
    assert done["commit"] == failed["commit"] and done["retry_of"] == failed["id"]
    assert {live(h, repo.name) for h in targets} == {done["release"]}
    assert read_live(broken, repo.name, "built.txt") == "generated\n"
    assert builds(db) == 1  # built once, for the failed deploy
    names = [s["name"] for s in done["stages"]]
    assert "reuse_build" in names and "checkout" not in names and "post_deploy" not in names
    assert {h["status"] for h in done["hosts"]} == {"success"}

    with pytest.raises(Conflict):
        deploys.request_retry(db, ADMIN, done["id"])  # a successful deploy is not retried
    assert deploy_views.get(db, failed["id"])["status"] == "failed"  # history unchanged
    rows = {h["host"]: h["status"] for h in deploy_views.get(db, failed["id"])["hosts"]}
    assert "running" not in rows.values()  # every host row of an ended deploy is final


def test_a_retry_of_the_hosts_a_gray_release_missed_ships_them_the_same_release(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("retry"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    missed = targets[-1]
    ready = f"/srv/ready-{repo.name}"
    tasks = {"pre_release": f'test -f {ready} || {{ echo "not ready" >&2; exit 5; }}\n'}
    strategy = {"batches": [1, len(targets) - 1], "max_failed": 1}
    apply(db, project_config(repo.name, repo.url, targets, tasks=tasks, strategy=strategy))
    for host in targets:
        if host is not missed:
            host.path(ready).write_text("")
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]  # within max_failed
    assert live(missed, repo.name) is None

    missed.path(ready).write_text("")
    retry = deploys.request_retry(db, ADMIN, first["id"], failed_only=True)
    assert retry.hosts == [missed.address]
    done = finish(db, settings, retry.id)
    assert done["status"] == "success", done["error"]
    assert {live(h, repo.name) for h in targets} == {first["release"]}  # one release
    with pytest.raises(Conflict):  # every host serves it now: nothing left to retry
        deploys.request_retry(db, ADMIN, first["id"], failed_only=True)


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
