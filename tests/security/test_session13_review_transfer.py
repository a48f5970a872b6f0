"""Session 13 review: the transfer under faults — what a deploy does on a host whose state
the database has wrong.

A retry of the hosts a finished deploy missed (``failed_only``) ships them *the same release
name* the others serve. The transfer starts with ``rm -rf releases/<name>`` on each host and
a failure before the switch removes ``releases/<name>``: on a host whose switch was made but
whose answer was lost (the records say it serves the old release), that deleted the site it
serves. The retry now refuses, before any host changes, when its own probe sees a host
already serving that release (``pipeline/checkout._refuse_replacing_a_served_release``).
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import update

from ferryman.db.models import HostState
from ferryman.services import deploys
from tests.helpers import ADMIN, Repo, apply, deploy, finish, live, project_config, unique

pytestmark = pytest.mark.fleet


def test_a_retry_never_removes_the_release_a_host_serves(db, settings, git_host, targets, tmp_path):
    repo = Repo(git_host, tmp_path, unique("s13retry"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    hosts = targets[:2]
    apply(db, project_config(repo.name, repo.url, hosts))
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    old = live(hosts[0], repo.name)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]
    served = second["release"]
    sick = hosts[1]
    assert live(sick, repo.name) == served

    # the switch of ``sick`` happened, its answer did not arrive: the record says it still
    # serves the old release
    with db.transaction() as s:
        s.execute(
            update(HostState)
            .where(HostState.host == sick.address)
            .values(current_release=old, deploy_id=None)
        )
    # and the retry fails before its switch (any reason will do: a pre_release hook here)
    tasks = {"pre_release": "echo not today >&2; exit 7\n"}
    apply(db, project_config(repo.name, repo.url, hosts, tasks=tasks))

    retry = deploys.request_retry(db, ADMIN, second["id"], failed_only=True)
    assert retry.hosts == [sick.address]
    done = finish(db, settings, retry.id)
    assert done["status"] == "failed"

    webroot = sick.path(f"/srv/www/{repo.name}")
    assert os.path.basename(os.readlink(webroot)) == served  # nobody switched it
    release = sick.path(f"/srv/releases/{repo.name}/{served}")
    assert release.is_dir(), f"{sick.name}'s webroot points at {served}, which was removed"
    assert (release / "index.html").read_text() == "v2\n"
