"""Session 13 fault review: two deploys at once, in two spaces, of projects with one name.

Project names are unique per space (``UniqueConstraint("space_id", "name")``), and spaces are
apart in everything (keys, mirrors, kept trees, servers). The deploy lock was not: its key was
``deploy:<project name>:<env>``, so while one space's ``web`` deployed to production another
space's ``web`` could not: its deploy failed "locked by deploy #N (started by <user> ...)",
naming the other space's deploy and user. The key is the project's id now.
"""

from __future__ import annotations

import asyncio
import shutil
import threading

import pytest

from ferryman.db.models import Lock
from ferryman.jobs.deploy_job import run_deploy
from ferryman.keys import public_line, space_key_path
from ferryman.services import deploy_views, deploys, queue, spaces
from tests.conftest import set_approval
from tests.helpers import ADMIN, Repo, apply, finish, live, project_config, unique
from tests.jobs.test_worker_loss import _wait

pytestmark = pytest.mark.fleet


def test_a_deploy_in_one_space_never_waits_for_or_names_a_same_named_project_of_another(
    db, settings, git_host, targets, tmp_path
):
    name = unique("web")
    other_space = unique("team")
    created = spaces.create_space(db, ADMIN, other_space)
    set_approval(db, "production", False, space=other_space)
    # the other space authenticates with a key of its own: here a copy of the fleet's key
    key = space_key_path(settings, created["id"], uses_server_key=False)
    key.parent.mkdir(mode=0o700, parents=True)
    shutil.copy(settings.ssh_key, key)
    key.with_suffix(".pub").write_text(public_line(settings.ssh_key) + "\n")

    ours_repo = Repo(git_host, tmp_path, unique("ours"))
    ours_repo.commit({"index.html": "ours\n"}, tag="v1")
    theirs_repo = Repo(git_host, tmp_path, unique("theirs"))
    theirs_repo.commit({"index.html": "theirs\n"}, tag="v1")
    slow = {"post_release": f"touch /srv/{name}.busy\nsleep 15\n"}
    apply(db, project_config(name, ours_repo.url, targets[:2], tasks=slow))
    theirs = project_config(name, theirs_repo.url, targets[2:4])
    theirs["space"] = other_space
    apply(db, theirs)

    # the default space's deploy runs (a long post_release) ...
    busy = deploys.request_deploy(db, ADMIN, f"default:{name}", "production", "v1")
    claim = queue.claim(db, "busy-worker")
    assert claim is not None and claim.id == busy.id
    runner = threading.Thread(
        target=lambda: asyncio.run(run_deploy(db, settings, busy.id, claim.holder))
    )
    runner.start()
    try:
        _wait(lambda: targets[0].path(f"/srv/{name}.busy").exists(), 60, "the busy deploy")
        with db.read() as s:
            held = [(lock.key, lock.deploy_id) for lock in s.query(Lock)]
        # ... and, at the same time, the other space's project of the same name
        request = deploys.request_deploy(db, ADMIN, f"{other_space}:{name}", "production", "v1")
        result = finish(db, settings, request.id)
    finally:
        runner.join(60)

    assert deploy_views.get(db, busy.id)["status"] == "success"
    assert held == [(f"deploy:{busy.project_id}:production", busy.id)]
    assert "locked by" not in (result["error"] or {}).get("message", ""), result["error"]
    assert result["status"] == "success", result["error"]
    assert {live(h, name) for h in targets[2:4]} == {result["release"]}
