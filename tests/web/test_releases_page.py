"""The Releases page on the real fleet: an environment that names ``servers:`` and
``labels:`` (the way the Servers page leads a team) shows every host it deploys to, and
"Roll back to this" is offered only for a release complete on every one of them."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.config.project import parse_project
from ferryman.services import inventory, projects, spaces, users
from ferryman.services.audit import SYSTEM
from tests.helpers import ADMIN, Repo, deploy, live, project_config, unique

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf-token" content="([^"]*)"')


def signed_in(settings, db, username: str) -> TestClient:
    client = TestClient(create_app(settings, db, embedded_worker=False))
    signed = client.post(
        "/login", data={"username": username, "password": PASSWORD}, follow_redirects=False
    )
    assert signed.status_code == 303, signed.text
    return client


def rollback_offers(html: str) -> list[str]:
    return re.findall(r'href="\?env=production&(?:amp;)?to=([^"#]+)#confirm"', html)


def test_servers_and_labels_show_every_host_and_offer_only_complete_releases(
    settings, db, git_host, targets, tmp_path
):
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("relpage"))
    for n in (1, 2, 3):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
    # the servers first, as a master adds them on the Servers page: one named, two labelled
    names = [f"web-{i}" for i in range(3)]
    for i, (name, host) in enumerate(zip(names, hosts, strict=True)):
        inventory.create_server(
            db, ADMIN, "default", name, host.address, user="root", labels=["web"] if i else []
        )
    config = project_config(repo.name, repo.url, hosts)
    env = config["environments"]["production"]
    del env["hosts"]
    env["servers"] = [names[0]]
    env["labels"] = ["web"]
    projects.apply_project(db, ADMIN, parse_project(config))
    releases = {}
    for tag in ("v1", "v2"):
        done = deploy(db, settings, repo.name, tag)
        assert done["status"] == "success", done["error"]
        releases[tag] = done["release"]
    # v3 reaches one host only: it is kept there, but a rollback to it would be refused
    done = deploy(db, settings, repo.name, "v3", hosts=[hosts[0].address])
    assert done["status"] == "success", done["error"]
    releases["v3"] = done["release"]
    assert [live(h, repo.name) for h in hosts] == [releases["v3"], releases["v2"], releases["v2"]]

    users.create_user(db, "relmaster", PASSWORD)
    spaces.set_member(db, SYSTEM, "default", "relmaster", "master")
    master = signed_in(settings, db, "relmaster")
    url = f"/s/default/projects/{repo.name}/releases?env=production"
    html = master.get(url).text
    assert "Nothing deployed yet." not in html
    for host in hosts:
        assert host.address in html
    assert 'class="drift"' in html  # the one host on v3 stands out
    assert sorted(rollback_offers(html)) == sorted([releases["v1"], releases["v2"]])

    # asking for the confirmation of the partial release directly shows none
    confirm = master.get(f"{url}&to={releases['v3']}").text
    assert 'id="confirm"' not in confirm
    confirm = master.get(f"{url}&to={releases['v1']}").text
    assert 'id="confirm"' in confirm and "does not have this release" not in confirm

    # a reporter sees the same table and no offer
    users.create_user(db, "relreporter", PASSWORD)
    spaces.set_member(db, SYSTEM, "default", "relreporter", "reporter")
    reporter = signed_in(settings, db, "relreporter")
    shown = reporter.get(url).text
    assert all(h.address in shown for h in hosts)
    assert rollback_offers(shown) == []
