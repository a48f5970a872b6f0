"""From a successful test deploy's console, a developer makes the production ticket (the same
commit, waiting for approval) with one form; a reporter has no such form and is refused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ferryman.services import deploys, spaces, tickets, users
from ferryman.services.audit import SYSTEM
from tests.conftest import set_approval
from tests.helpers import ADMIN, Repo, apply, finish, release_dirs, unique, web_session
from tests.pipeline.test_promotion import _config

pytestmark = pytest.mark.fleet
PASSWORD = "correct horse battery"


def _browser(db, settings, name: str) -> tuple[TestClient, str]:
    return web_session(settings, db, name)


def test_a_developer_promotes_a_successful_test_deploy_from_its_console(
    db, settings, git_host, targets, tmp_path
):
    set_approval(db, "production", True)
    repo = Repo(git_host, tmp_path, unique("promo"))
    v1 = repo.commit({"index.html": "v1\n"}, message="one", tag="v1")
    apply(db, _config(repo, targets))
    for name, role in (("dev", "developer"), ("viewer", "reporter")):
        users.create_user(db, name, PASSWORD)
        spaces.set_member(db, SYSTEM, "default", name, role)
    tested = deploys.request_deploy(db, ADMIN, repo.name, "test", "v1")
    assert finish(db, settings, tested.id)["status"] == "success"
    console = f"/s/default/deploys/{tested.id}"

    viewer, viewer_token = _browser(db, settings, "viewer")
    assert 'id="promote"' not in viewer.get(console).text
    refused = viewer.post(f"{console}/promote", data={"csrf": viewer_token, "env": "production"})
    assert refused.status_code == 403

    dev, token = _browser(db, settings, "dev")
    page = dev.get(console).text
    form = page.split('id="promote"', 1)[1].split("</section>", 1)[0]
    assert '<option value="production">' in form  # the environment gated on test comes first
    made = dev.post(
        f"{console}/promote", data={"csrf": token, "env": "production"}, follow_redirects=False
    )
    assert made.status_code == 303, made.text[:300]
    ticket_id = int(made.headers["location"].rsplit("/", 1)[1])
    ticket = tickets.get_ticket(db, ADMIN, ticket_id)
    assert (ticket["env"], ticket["commit"], ticket["status"]) == (
        "production", v1, "pending_approval"
    )  # fmt: skip
    assert all(release_dirs(h, repo.name) == [] for h in targets[1:])  # nothing shipped yet
    again = dev.post(f"{console}/promote", data={"csrf": token, "env": "test"})
    assert again.status_code == 200 and "already in test" in again.text  # said on the console
