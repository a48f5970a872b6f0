"""Session 13 review: a retry never ships the tree of a deploy whose *build* failed.

``runner.keep_build`` kept the tree of every failed or cancelled deploy once the checkout
resolved its commit, whatever stage failed, and a retry ships a kept tree with no build
(``checkout.reuse_build``). When the failure was the build itself (``post_deploy`` failing
half way: a crashed compiler, a timeout, a test gate, a cancel), the retry switched the hosts
to a half-built tree. Only a whole build is kept now (``Context.built``); a retry of a
failed build builds again (and fails again here).
"""

from __future__ import annotations

import pytest

from ferryman.services import deploys
from tests.helpers import ADMIN, Repo, apply, deploy, finish, live, project_config, unique

pytestmark = pytest.mark.fleet

# The build writes half of its output, then fails (its tests fail, say): the gate of the deploy.
BUILD = """
printf 'half of the bundle' > bundle.js
echo "tests failed" >&2
exit 3
printf ' and the rest\\n' >> bundle.js
"""


def test_a_retry_never_ships_the_tree_of_a_build_that_failed(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("s13build"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    host = targets[0]
    apply(db, project_config(repo.name, repo.url, [host], tasks={"post_deploy": BUILD}))
    failed = deploy(db, settings, repo.name, "v1")
    assert failed["status"] == "failed"
    assert "post_deploy" in str(failed["error"]), failed["error"]
    assert live(host, repo.name) is None  # the failed build reached no host

    retry = deploys.request_retry(db, ADMIN, failed["id"])
    again = finish(db, settings, retry.id)

    served = live(host, repo.name)
    shipped = (
        host.path(f"/srv/releases/{repo.name}/{served}/bundle.js").read_text() if served else ""
    )
    assert served is None, f"the retry ({again['status']}) made {served} live: {shipped!r}"
    assert again["status"] != "success"
