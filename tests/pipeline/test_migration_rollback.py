"""Migration-aware rollback on the real fleet. Each host keeps a tiny "database" of applied
migrations (``/srv/appdb/<project>``): ``post_release`` applies the migrations the release
declares (``migrations.txt``), and the ``migrations:`` command lists the database's. Going back
past an irreversible one is refused, naming it, unless a master forces it with a reason."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ferryman.db.models import AuditEntry, NotifyDelivery, ReleaseMigrations
from ferryman.errors import Conflict, PermissionDenied, ValidationError
from ferryman.outbound import parse_allow
from ferryman.services import deploys, migrations, notifications, projects
from ferryman.services.audit import SYSTEM
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    finish,
    live,
    member,
    project_config,
    read_live,
    unique,
)
from tests.outbound_policy import allow_outbound

pytestmark = pytest.mark.fleet

MIGRATE = """mkdir -p /srv/appdb
touch /srv/appdb/{PROJECT}
while read -r line; do
  grep -qxF -- "$line" /srv/appdb/{PROJECT} || printf '%s\\n' "$line" >> /srv/appdb/{PROJECT}
done < migrations.txt
"""
FIRST = "20240101_create_users reversible\n"
SECOND = FIRST + "20240102_drop_legacy irreversible\n"


def _config(repo: Repo, hosts, command: str = "cat /srv/appdb/{PROJECT}") -> dict:
    config = project_config(repo.name, repo.url, hosts)
    env = config["environments"]["production"]
    env["tasks"] = {"post_release": MIGRATE}
    env["migrations"] = {"command": command, "timeout": "20s"}
    return config


def _two_releases(db, settings, git_host, hosts, tmp_path, command: str | None = None):
    repo = Repo(git_host, tmp_path, unique("mig"))
    repo.commit({"index.html": "v1\n", "migrations.txt": FIRST}, tag="v1")
    apply(db, _config(repo, hosts, *([command] if command else [])))
    one = deploy(db, settings, repo.name, "v1")
    assert one["status"] == "success", one["error"]
    repo.commit({"index.html": "v2\n", "migrations.txt": SECOND}, tag="v2")
    two = deploy(db, settings, repo.name, "v2")
    assert two["status"] == "success", two["error"]
    return repo, one, two


def _listings(db, project: str) -> list[ReleaseMigrations]:
    with db.read() as s:
        project_id = projects.find_project(s, ADMIN, project, "project.read").id
        rows = s.scalars(
            select(ReleaseMigrations)
            .where(ReleaseMigrations.project_id == project_id)
            .order_by(ReleaseMigrations.id)
        ).all()
        s.expunge_all()
        return list(rows)


def test_a_rollback_across_an_irreversible_migration_is_refused_then_forced_by_a_master(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo, one, two = _two_releases(db, settings, git_host, hosts, tmp_path)
    listed = _listings(db, repo.name)
    assert [(r.release, r.ok, r.applied) for r in listed] == [
        (one["release"], True, [["20240101_create_users", True]]),
        (two["release"], True, [["20240101_create_users", True], ["20240102_drop_legacy", False]]),
    ]
    master = member(db, unique("mona"), role="master")
    allow_outbound(db, parse_allow("127.0.0.0/8"))  # a channel on loopback, never sent to here
    notifications.save_channel(
        db, SYSTEM, "default", unique("ops"), "webhook", {"url": "http://127.0.0.1:9/hook"}
    )

    with pytest.raises(Conflict) as refused:
        deploys.request_rollback(db, master, repo.name, "production")
    assert "20240102_drop_legacy" in refused.value.message
    assert one["release"] in refused.value.message
    assert refused.value.details["migrations"] == ["20240102_drop_legacy"]
    assert {live(h, repo.name) for h in hosts} == {two["release"]}  # nothing queued or switched
    with pytest.raises(ValidationError, match="needs a reason"):
        deploys.request_rollback(db, master, repo.name, "production", force_migrations=True)

    forced = deploys.request_rollback(
        db,
        master,
        repo.name,
        "production",
        force_migrations=True,
        reason="legacy table restored from backup",
    )
    done = finish(db, settings, forced.id)

    assert done["status"] == "success", done["error"]
    assert {live(h, repo.name) for h in hosts} == {one["release"]}
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}
    assert done["options"]["migrations_crossed"]["irreversible"] == ["20240102_drop_legacy"]
    with db.read() as s:
        audit = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "rollback.force_migrations")
        ).all()
        sent = s.scalars(select(NotifyDelivery).where(NotifyDelivery.event == "rollback.forced"))
        messages = [d.message for d in sent]
    assert [(a.actor, a.detail["reason"], a.detail["migrations"]) for a in audit] == [
        (master.username, "legacy table restored from backup", ["20240102_drop_legacy"])
    ]
    assert any("20240102_drop_legacy" in m["text"] and "restored" in m["text"] for m in messages)
    # the rollback listed the database again: going back to v1 once more crosses nothing
    assert _listings(db, repo.name)[-1].release == one["release"]
    again = deploys.request_rollback(db, master, repo.name, "production", to=one["release"])
    assert again.id


def test_a_developer_cannot_force_and_reversible_migrations_do_not_block(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:1]
    repo, one, two = _two_releases(db, settings, git_host, hosts, tmp_path)
    developer = member(db, unique("dev"), role="developer")
    with pytest.raises(PermissionDenied):  # not even the rollback itself
        deploys.request_rollback(
            db, developer, repo.name, "production", force_migrations=True, reason="because"
        )
    with db.read() as s:
        project = projects.find_project(s, ADMIN, repo.name, "project.read")
        config = projects.effective_config(s, project)
        with pytest.raises(PermissionDenied, match="only a master"):
            migrations.guard_rollback(
                s,
                developer,
                project,
                config,
                "production",
                None,
                "",
                {"force_migrations": True, "force_migrations_reason": "because"},
            )
        # a master's unforced request is refused; the listing says what each release brought
        shown = migrations.for_releases(
            db, project.id, "production", [one["release"], two["release"]], [hosts[0].address]
        )
    assert shown["rollback_crosses"]["blocked"] is True
    assert shown["rollback_crosses"]["irreversible"] == ["20240102_drop_legacy"]
    assert shown["migrations"][two["release"]]["applied"] == [
        {"version": "20240102_drop_legacy", "reversible": False}
    ]
    assert {live(h, repo.name) for h in hosts} == {two["release"]}

    # v3 adds only a reversible migration: going back from v3 to v2 is allowed
    repo.commit({"migrations.txt": SECOND + "20240103_add_index reversible\n"}, tag="v3")
    three = deploy(db, settings, repo.name, "v3")
    assert three["status"] == "success", three["error"]
    back = deploys.request_rollback(db, ADMIN, repo.name, "production", to=two["release"])
    assert finish(db, settings, back.id)["status"] == "success"
    assert live(hosts[0], repo.name) == two["release"]


HOSTILE = (
    "printf '20240101_create_users reversible\\n'; "
    "printf '20240109_evil\\033[2K irreversible\\n'; "  # an escape sequence inside a version
    "printf 'x reversible\\r20240110_fake reversible\\n'; "  # a carriage return hiding a line
    "printf '%s\\n' '20240102_drop_legacy irreversible trailing words'; "
    "printf '20240102_drop_legacy irreversible\\n'; "
    "yes '20240111_flood reversible' | head -c 3000000; "  # megabytes of output
    "printf '20249999_last irreversible\\n'"
)


def test_hostile_listing_output_is_bounded_and_sanitised(db, settings, git_host, targets, tmp_path):
    hosts = targets[:1]
    repo = Repo(git_host, tmp_path, unique("mig"))
    repo.commit({"index.html": "v1\n", "migrations.txt": FIRST}, tag="v1")
    apply(db, _config(repo, hosts, HOSTILE))

    done = deploy(db, settings, repo.name, "v1")

    assert done["status"] == "success", done["error"]  # a listing never fails the deploy
    (row,) = _listings(db, repo.name)
    versions = [v for v, _ in row.applied]
    assert row.ok and row.truncated
    assert versions == ["20240101_create_users", "20240102_drop_legacy", "20240111_flood"]
    assert row.rejected == 3  # the escape, the carriage return, the trailing words
    assert "20249999_last" not in versions  # past the bound: never read
    assert all(c.isprintable() for v in versions for c in v)


def test_a_failed_listing_makes_the_next_rollback_across_it_need_forcing(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:1]
    repo, _one, two = _two_releases(
        db, settings, git_host, hosts, tmp_path, command="echo 'db down' >&2; exit 3"
    )
    rows = _listings(db, repo.name)
    assert [(r.ok, r.error) for r in rows] == [(False, "exit 3: db down")] * 2
    with pytest.raises(
        Conflict, match=r"listing of migrations \(deploy #\d+\) failed: exit 3: db down"
    ):
        deploys.request_rollback(db, ADMIN, repo.name, "production")
    assert live(hosts[0], repo.name) == two["release"]


def test_the_api_and_a_ticket_preview_show_the_crossing_and_refuse_it_until_forced(
    db, settings, git_host, targets, tmp_path
):
    import asyncio

    from fastapi.testclient import TestClient

    from ferryman.app import create_app
    from ferryman.services import tickets

    hosts = targets[:1]
    repo, one, two = _two_releases(db, settings, git_host, hosts, tmp_path)
    developer = member(db, unique("devi"), role="developer")
    master = member(db, unique("mara"), role="master")
    # a deploy ticket of v1's code again is a rollback in disguise: its preview says so
    ticket = asyncio.run(
        tickets.create_ticket(
            db, settings, developer, repo.name, "production", "v1", title="old code", draft=True
        )
    )
    preview = asyncio.run(tickets.preview(db, settings, developer, ticket["id"]))
    assert preview["migrations"]["release"] == one["release"]
    assert preview["migrations"]["irreversible"] == ["20240102_drop_legacy"]
    assert preview["migrations"]["blocked"] is True
    app = create_app(settings, db, embedded_worker=False)

    with TestClient(app) as client:

        def login(name: str) -> dict[str, str]:
            token = client.post(
                "/api/v1/auth/login", json={"username": name, "password": "correct horse battery"}
            ).json()["token"]
            return {"Authorization": f"Bearer {token}"}

        dev, mas = login(developer.username), login(master.username)
        shown = client.get(
            f"/api/v1/projects/{repo.name}/envs/production/releases", headers=dev
        ).json()
        assert shown["rollback_crosses"]["release"] == one["release"]
        assert shown["rollback_crosses"]["irreversible"] == ["20240102_drop_legacy"]
        assert shown["migrations"][two["release"]]["applied"] == [
            {"version": "20240102_drop_legacy", "reversible": False}
        ]
        assert client.get(f"/api/v1/tickets/{ticket['id']}/preview", headers=dev).json()[
            "migrations"
        ]["blocked"]
        url = f"/api/v1/projects/{repo.name}/rollbacks"
        refused = client.post(url, json={"env": "production"}, headers=mas)
        assert refused.status_code == 409
        assert refused.json()["error"]["details"]["migrations"] == ["20240102_drop_legacy"]
        by_dev = client.post(
            url, json={"env": "production", "force_migrations": True, "reason": "x"}, headers=dev
        )
        assert by_dev.status_code == 403
        no_reason = client.post(
            url, json={"env": "production", "force_migrations": True}, headers=mas
        )
        assert no_reason.status_code == 422
        forced = client.post(
            url,
            json={"env": "production", "force_migrations": True, "reason": "restored"},
            headers=mas,
        )
        assert forced.status_code == 201, forced.json()
        assert forced.json()["options"]["force_migrations_reason"] == "restored"
    assert finish(db, settings, forced.json()["id"])["status"] == "success"
    assert live(hosts[0], repo.name) == one["release"]


def test_a_worker_never_rolls_back_further_than_the_release_the_request_checked(
    db, settings, git_host, targets, tmp_path
):
    import os

    hosts = targets[:1]
    repo, one, two = _two_releases(db, settings, git_host, hosts, tmp_path)
    repo.commit({"migrations.txt": SECOND + "20240103_add_index reversible\n"}, tag="v3")
    three = deploy(db, settings, repo.name, "v3")
    assert three["status"] == "success", three["error"]
    # someone points the host back at v2 by hand: the records still say v3
    link = hosts[0].path(f"/srv/www/{repo.name}")
    os.unlink(link)
    os.symlink(f"/srv/releases/{repo.name}/{two['release']}", link)

    # checked against v2 (the release before v3): only a reversible migration is crossed
    requested = deploys.request_rollback(db, ADMIN, repo.name, "production")
    done = finish(db, settings, requested.id)

    # the worker, seeing v2 live, would go to v1 across 20240102_drop_legacy: it refuses
    assert done["status"] == "failed"
    assert f"checked for database migrations against {two['release']}" in done["error"]["message"]
    assert live(hosts[0], repo.name) == two["release"]
    assert one["release"] not in {live(h, repo.name) for h in hosts}


def test_a_deploy_that_failed_after_migrating_still_records_what_it_left(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("mig"))
    repo.commit({"index.html": "v1\n", "migrations.txt": FIRST}, tag="v1")
    config = _config(repo, hosts)
    apply(db, config)
    one = deploy(db, settings, repo.name, "v1")
    assert one["status"] == "success", one["error"]
    # v2's post_release migrates, then fails: every host goes back to v1
    config["environments"]["production"]["tasks"]["post_release"] = MIGRATE + "exit 1\n"
    apply(db, config)
    repo.commit({"index.html": "v2\n", "migrations.txt": SECOND}, tag="v2")

    two = deploy(db, settings, repo.name, "v2")

    assert two["status"] == "failed"
    assert {live(h, repo.name) for h in hosts} == {one["release"]}
    last = _listings(db, repo.name)[-1]
    assert last.release == two["release"]
    assert ["20240102_drop_legacy", False] in last.applied
    with db.read() as s:
        project_id = projects.find_project(s, ADMIN, repo.name, "project.read").id
    shown = migrations.for_releases(
        db, project_id, "production", [one["release"]], [h.address for h in hosts]
    )
    assert shown["migrations"][one["release"]]["crossing"]["irreversible"] == [
        "20240102_drop_legacy"
    ]
