"""Session 13 review: a sandboxed step replaces the tree with a symlink after the build; the
failed deploy keeps the symlink as its "built tree", and a retry copies what it points to —
any directory of the deploy host, ``$FERRYMAN_HOME/ssh`` here — into the release it ships.

The sandbox owns ``src`` (the tree) inside the sticky workspace, so it may rename it and put
a symlink in its place. After the hooks ``sandbox.check_workspace`` notices — but the
migrations listing on the deploy host (``migrations.run_on: deploy_host``, run in the
sandbox with the tree as its cwd: the repository's own code, ``php artisan …``) runs after a
failure once hosts had switched (``migrations.record_after_failure``) and nothing checks the
tree after it. ``runner.keep_build`` → ``builds.keep`` then checks ``tree.is_dir()``, which
follows the link, and renames the link into ``$FERRYMAN_HOME/builds/deploy-N/tree`` (the
build itself had finished: ``ctx.built``). ``builds.find`` (``is_dir()`` again) hands it to a
retry, and ``builds.reuse``'s ``shutil.copytree`` lists the link's target (only links
*inside* are kept as links): as root, outside every sandbox, it hard-links the target's files
into the retry's tree, which is packaged and shipped — no check runs on a reused build.

A retry is a developer's action where the environment needs no approval; the listing runs
the repository's code: the hostile input of the threat model.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from ferryman.config.settings import Settings
from ferryman.services import deploy_views, deploys
from ferryman.testing.fleet import FleetHost
from tests.conftest import NET
from tests.helpers import ADMIN, Repo, apply, deploy, finish, project_config, unique

pytestmark = pytest.mark.fleet


@pytest.fixture
def sandboxed(settings: Settings) -> Settings:
    base = 1_980_000_000 + int(NET.rsplit(".", 1)[1]) * 10_000
    return dataclasses.replace(settings, sandbox="auto", sandbox_uid_base=base)


def _everything_on(host: FleetHost, project: str) -> dict[str, bytes]:
    root = host.path(f"/srv/releases/{project}")
    found: dict[str, bytes] = {}
    if not root.exists():
        return found
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


# In the repository: what ``php artisan migrate:status`` could do as well. The workspace is
# mounted at its own path, so its parent names $FERRYMAN_HOME.
LISTING = """ws=$(cd .. && pwd)
home=${ws%/workspaces/*}
cd .. && mv src built && ln -s "$home/ssh" src
echo "2024_01_01_000000 reversible"
"""


def test_a_retry_never_ships_what_a_kept_build_s_symlink_points_to(
    db, sandboxed, git_host, targets, tmp_path
):
    secret_dir = sandboxed.home / "ssh"  # the server's own private key lives here
    private_key = (secret_dir / "id_ed25519").read_bytes()
    repo = Repo(git_host, tmp_path, unique("s13kept"))
    repo.commit({"index.html": "v1\n", "list-migrations.sh": LISTING}, tag="v1")
    host = targets[0]
    migrations = {"command": "sh ./list-migrations.sh", "run_on": "deploy_host"}
    failing = {"post_release": "echo the app did not start >&2; exit 1\n"}
    apply(
        db,
        project_config(repo.name, repo.url, [host], tasks=failing, migrations=migrations),
    )
    failed = deploy(db, sandboxed, repo.name, "v1")
    assert failed["status"] == "failed"
    log = "\n".join(x["text"] for x in deploy_views.logs_after(db, failed["id"], 0, 5000))
    assert "replaced" in log and "refusing to ship it" in log, log  # seen after the listing
    kept = sandboxed.kept_builds / f"deploy-{failed['id']}" / "tree"

    apply(db, project_config(repo.name, repo.url, [host]))  # the operator fixes the start
    retry = deploys.request_retry(db, ADMIN, failed["id"])
    again = finish(db, sandboxed, retry.id)

    shipped = _everything_on(host, repo.name)
    leaked = [path for path, data in shipped.items() if data == private_key]
    assert not leaked, f"retry {again['status']}: the server's private key is on the host: {leaked}"
    assert not kept.is_symlink(), f"the kept build is a link to {os.readlink(kept)}"
