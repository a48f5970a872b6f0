"""A ticket whose release was rolled back says so, on the real fleet: the ticket page shows
"rolled back" (not "succeeded"), names the rollback and the release it went to, lists it in
the timeline, and offers no second Roll back — whether the rollback came from the ticket,
from the Releases page or from the CLI."""

from __future__ import annotations

import asyncio
import re

from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.services import deploys, spaces, tickets, users
from ferryman.services.audit import SYSTEM
from tests.helpers import ADMIN, Repo, apply, finish, project_config, unique

PASSWORD = "correct horse battery"


def signed_in(settings, db, username: str) -> TestClient:
    client = TestClient(create_app(settings, db, embedded_worker=False))
    signed = client.post(
        "/login", data={"username": username, "password": PASSWORD}, follow_redirects=False
    )
    assert signed.status_code == 303, signed.text
    return client


def ticket_for(db, settings, project: str, ref: str) -> dict:
    made = asyncio.run(
        tickets.create_ticket(db, settings, ADMIN, project, "staging", ref, title=f"ship {ref}")
    )
    queued = tickets.deploy_ticket(db, ADMIN, made["id"])
    done = finish(db, settings, queued["deploy_id"])
    assert done["status"] == "success", done["error"]
    return tickets.get_ticket(db, ADMIN, made["id"])


def test_a_rolled_back_ticket_says_so_names_the_rollback_and_offers_no_second_one(
    settings, db, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("tixrb"))
    for n in (1, 2, 3):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
    config = project_config(repo.name, repo.url, targets[:2])
    config["environments"] = {"staging": config["environments"]["production"]}
    apply(db, config)
    first = ticket_for(db, settings, repo.name, "v1")
    second = ticket_for(db, settings, repo.name, "v2")
    users.create_user(db, "tixmaster", PASSWORD)
    spaces.set_member(db, SYSTEM, "default", "tixmaster", "master")
    master = signed_in(settings, db, "tixmaster")
    url = f"/s/default/tickets/{second['id']}"
    before = master.get(url).text
    assert f"/tickets/{second['id']}/rollback" in before and 'id="rolled-back"' not in before

    # a rollback from the Releases page (no ticket) takes v2 away
    back = deploys.request_rollback(db, ADMIN, repo.name, "staging")
    done = finish(db, settings, back.id)
    assert done["status"] == "success", done["error"]
    shown = master.get(url).text
    assert 'id="rolled-back"' in shown
    assert re.search(rf'href="/s/default/deploys/{back.id}">#{back.id}</a> → <code>', shown)
    assert f"<code>{done['release']}</code>" in shown
    assert "rollback succeeded" in shown  # in the timeline
    assert f"/tickets/{second['id']}/rollback" not in shown  # no second rollback
    # the first ticket's release is what runs now: it was not rolled back
    first_page = master.get(f"/s/default/tickets/{first['id']}").text
    assert 'id="rolled-back"' not in first_page

    # a new deploy after the rollback ends the story for the older ticket: v3 ships, then a
    # rollback of v3 is v3's ticket's, not v2's
    third = ticket_for(db, settings, repo.name, "v3")
    again = tickets.rollback_ticket(db, ADMIN, third["id"])
    finished = finish(db, settings, tickets.get_ticket(db, ADMIN, again["id"])["deploy_id"])
    assert finished["status"] == "success", finished["error"]
    assert 'id="rolled-back"' in master.get(f"/s/default/tickets/{third['id']}").text
    assert master.get(url).text.count("rollback succeeded") == 1

    chinese = signed_in(settings, db, "tixmaster")
    chinese.cookies.set("ferryman_lang", "zh_CN")
    assert "已回滚" in chinese.get(url, headers={"Accept-Language": "zh-CN"}).text
