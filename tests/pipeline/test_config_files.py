"""Config files on a real fleet: rendered per host with secrets and ``${HOST}``, overridden by
label and by host, shipped inside the release (rollback restores them), deployable alone, and
never stored or logged in plain text."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.db.session import Database
from ferryman.errors import ConfigError, Conflict
from ferryman.secretbox import SecretBox, load_key, new_key
from ferryman.services import config_files, deploy_views, deploys, inventory, secrets, spaces, users
from ferryman.services.audit import SYSTEM
from ferryman.services.secrets import rotate_all
from ferryman.testing.fleet import FleetHost
from tests.conftest import set_approval
from tests.helpers import (
    ADMIN,
    Repo,
    allow_local_repos,
    apply,
    deploy,
    finish,
    live,
    pg_dump,
    postgres_with_key,
    project_config,
    rollback,
    unique,
)

VALUE = "Pay-Key_9f3e!2026"
ENV_TEMPLATE = "DB_PASSWORD=${DB_PASSWORD}\nHOST=${HOST}\nRELEASE=${RELEASE}\nPORT=80\n"


def _live(host: FleetHost, project: str) -> Path:
    """The live release dir of ``project`` on ``host``, seen from this machine."""
    return host.path(f"/srv/releases/{project}/{live(host, project)}")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.fleet
def test_config_files_land_per_host_and_travel_with_their_release(
    db, settings, git_host, targets, tmp_path
):
    web, other, job = targets[:3]
    repo = Repo(git_host, tmp_path, unique("cfg"))
    # the repository holds an example .env: the real one replaces it in every release
    repo.commit({"index.html": "v1\n", ".env": "DB_PASSWORD=changeme\n"}, tag="v1")
    name = repo.name
    for host in (web, other, job):
        labels = ["job-node"] if host is job else ["web"]
        inventory.create_server(db, SYSTEM, "default", unique("srv"), host.address, labels=labels)
    tasks = {"pre_release": "echo checking; if [ -f .env ]; then cat .env; fi\n"}
    config = project_config(
        name,
        repo.url,
        [web, other, job],
        tasks=tasks,
        secrets=["DB_PASSWORD"],
        config_files=[".env", "crontab.xml"],
    )
    apply(db, config)
    secrets.set_secret(db, SYSTEM, name, "production", "DB_PASSWORD", VALUE)
    with pytest.raises(ConfigError, match=r"config files that are not set: \.env, crontab\.xml"):
        deploys.request_deploy(db, ADMIN, name, "production", "v1")

    config_files.set_file(db, ADMIN, name, "production", ".env", ENV_TEMPLATE)
    config_files.set_override(
        db, ADMIN, name, "production", ".env", f"host:{other.address}", keys={"PORT": "8081"}
    )
    config_files.set_file(db, ADMIN, name, "production", "crontab.xml", "<crontab/>\n", "0644")
    config_files.set_override(
        db,
        ADMIN,
        name,
        "production",
        "crontab.xml",
        "label:job-node",
        content="<crontab><job>report</job></crontab>\n",
    )

    first = deploy(db, settings, name, "v1")
    assert first["status"] == "success", first["error"]
    release = first["release"]
    for host in (web, other, job):
        root = host.path(f"/srv/releases/{name}/{release}")
        port = "8081" if host is other else "80"
        assert (root / ".env").read_text() == (
            f"DB_PASSWORD={VALUE}\nHOST={host.address}\n"
            f"RELEASE=/srv/releases/{name}/{release}\nPORT={port}\n"
        )
        assert _mode(root / ".env") == 0o600
        crontab = "<crontab><job>report</job></crontab>\n" if host is job else "<crontab/>\n"
        assert (root / "crontab.xml").read_text() == crontab
        assert _mode(root / "crontab.xml") == 0o644
        assert (root / "index.html").read_text() == "v1\n"

    # the pre_release task printed the file: the log shows the secret masked, nothing stores it
    logs = " ".join(x["text"] for x in deploy_views.logs_after(db, first["id"], 0, 5000))
    assert "DB_PASSWORD=***" in logs and VALUE not in logs
    steps = deploy_views.steps_of(db, first["id"])
    assert any(s["command"].startswith("write config .env, crontab.xml") for s in steps)
    assert VALUE not in " ".join(s["command"] + s["output"] for s in steps)

    # a new commit with a changed config file
    config_files.set_file(db, ADMIN, name, "production", ".env", ENV_TEMPLATE + "FEATURE=on\n")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, name, "v2")
    assert second["status"] == "success", second["error"]
    assert (_live(web, name) / ".env").read_text().endswith("FEATURE=on\n")

    # rolling back restores the config that belonged to the first release
    back = rollback(db, settings, name)
    assert back["status"] == "success", back["error"]
    for host in (web, other, job):
        live_env = (_live(host, name) / ".env").read_text()
        assert "FEATURE" not in live_env and f"RELEASE=/srv/releases/{name}/{release}\n" in live_env

    # rotate the key: everything is re-encrypted, and only the new key is needed from here on
    fresh = new_key()
    db.box = SecretBox(fresh, load_key(settings.home))
    assert rotate_all(db) >= 4
    db.box = SecretBox(fresh)

    # a config-only deploy: the live release again (same commit), with the current config
    config_files.set_file(db, ADMIN, name, "production", "crontab.xml", "<crontab>v2</crontab>\n")
    config_files.delete_override(db, ADMIN, name, "production", "crontab.xml", "label:job-node")
    only = finish(db, settings, deploys.request_config_deploy(db, ADMIN, name, "production").id)
    assert only["status"] == "success", only["error"]
    assert only["kind"] == "config" and only["commit"] == first["commit"]
    assert only["release"] != release
    for host in (web, other, job):
        live_root = _live(host, name)
        assert (live_root / "crontab.xml").read_text() == "<crontab>v2</crontab>\n"
        assert (live_root / "index.html").read_text() == "v1\n"
        assert "FEATURE=on" in (live_root / ".env").read_text()
        # the release it copied was not touched (files were replaced, not written through links)
        old_root = host.path(f"/srv/releases/{name}/{release}")
        assert "FEATURE" not in (old_root / ".env").read_text()
        assert (old_root / "crontab.xml").read_text() != "<crontab>v2</crontab>\n"

    # a file removed from the config is gone from the next release; the repo's copy comes back
    # when the config stops providing that path
    config_files.delete_file(db, ADMIN, name, "production", "crontab.xml")
    apply(
        db,
        {
            **config,
            "environments": {
                "production": {**config["environments"]["production"], "config_files": []}
            },
        },
    )
    config_files.delete_file(db, ADMIN, name, "production", ".env")
    again = finish(db, settings, deploys.request_config_deploy(db, ADMIN, name, "production").id)
    assert again["status"] == "success", again["error"]
    live_root = _live(web, name)
    assert not (live_root / "crontab.xml").exists()
    assert not (live_root / ".env").exists()  # config-only: the release had only the config's
    repo.commit({"index.html": "v3\n"}, tag="v3")
    third = deploy(db, settings, name, "v3")
    assert third["status"] == "success", third["error"]
    assert (_live(web, name) / ".env").read_text() == "DB_PASSWORD=changeme\n"

    db.dispose()
    raw = Path(settings.database_url.removeprefix("sqlite:///"))
    for path in (raw, raw.with_name(raw.name + "-wal")):
        if path.exists():
            data = path.read_bytes()
            assert VALUE.encode() not in data and b"<job>report</job>" not in data, path


@pytest.mark.fleet
def test_a_config_only_deploy_needs_every_host_on_one_release(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("cfgdrift"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets[:2]))
    with pytest.raises(Conflict, match="no release yet"):
        deploys.request_config_deploy(db, ADMIN, repo.name, "production")
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    assert deploy(db, settings, repo.name, "v2", hosts=[targets[0].address])["status"] == "success"
    with pytest.raises(Conflict, match="different releases"):
        deploys.request_config_deploy(db, ADMIN, repo.name, "production")
    one = deploys.request_config_deploy(db, ADMIN, repo.name, "production", [targets[1].address])
    assert finish(db, settings, one.id)["status"] == "success"


def _tokens(db: Database) -> dict[str, dict[str, str]]:
    tokens = {}
    for role in ("reporter", "developer", "master"):
        name = unique(role)
        actor = users.create_user(db, name, "correct horse battery")
        spaces.set_member(db, SYSTEM, "default", name, role)
        token = users.create_token(db, actor, "t", ["read", "write"])["token"]
        tokens[role] = {"Authorization": f"Bearer {token}"}
    return tokens


def test_config_api_masks_secrets_keeps_history_and_follows_the_roles(db, settings):
    config = project_config("cfgapi", "file:///nonexistent", [], config_files=["app/.env"])
    config["environments"]["production"]["hosts"] = ["127.0.0.1:2201", "127.0.0.2:2201"]
    allow_local_repos(db)
    apply(db, config)
    inventory.create_server(
        db, SYSTEM, "default", "jobs1", "127.0.0.2", port=2201, labels=["job-node"]
    )
    secrets.set_secret(db, SYSTEM, "cfgapi", "production", "DB_PASSWORD", VALUE)
    tokens = _tokens(db)
    base = "/api/v1/projects/cfgapi/envs/production/config"
    with TestClient(create_app(settings, db, embedded_worker=False)) as c:
        listed = c.get(base, headers=tokens["developer"]).json()
        assert listed == [{"path": "app/.env", "declared": True, "missing": True}]
        assert c.get(base, headers=tokens["reporter"]).status_code == 403
        body = {"content": ENV_TEMPLATE, "mode": "0640"}
        assert (
            c.put(f"{base}/files/app/.env", json=body, headers=tokens["developer"]).status_code
            == 403
        )
        made = c.put(f"{base}/files/app/.env", json=body, headers=tokens["master"])
        assert made.status_code == 200 and made.json()["version"] == 1
        assert made.json()["mode"] == "0640"
        # an override that writes a secret's value literally is masked when shown
        override = {"set": {"PORT": "9000", "LEGACY_PASSWORD": VALUE}}
        assert (
            c.put(
                f"{base}/overrides/label:job-node/app/.env", json=override, headers=tokens["master"]
            ).json()["version"]
            == 2
        )
        shown = c.get(f"{base}/files/app/.env", headers=tokens["developer"]).json()
        assert shown["content"] == ENV_TEMPLATE and shown["secrets"] == ["DB_PASSWORD"]
        assert shown["overrides"] == [
            {
                "scope": "label:job-node",
                "content": None,
                "set": {"PORT": "9000", "LEGACY_PASSWORD": "***"},
            }
        ]
        preview = c.get(
            f"{base}/preview", params={"host": "jobs1"}, headers=tokens["developer"]
        ).json()
        assert preview == [
            {
                "host": "127.0.0.2:2201",
                "path": "app/.env",
                "mode": "0640",
                "overrides": ["label:job-node"],
                "content": "DB_PASSWORD=***\nHOST=127.0.0.2:2201\nRELEASE=${RELEASE}\nPORT=9000\n"
                "LEGACY_PASSWORD=***\n",
                "at_deploy": ["RELEASE"],
                "unknown": [],
            }
        ]
        everyone = c.get(f"{base}/preview", headers=tokens["developer"]).json()
        assert [p["host"] for p in everyone] == ["127.0.0.1:2201", "127.0.0.2:2201"]
        assert "PORT=80\n" in everyone[0]["content"]
        assert (
            c.put(
                f"{base}/files/app/.env",
                json={"content": ENV_TEMPLATE + "X=1\n"},
                headers=tokens["master"],
            ).json()["version"]
            == 3
        )
        history = c.get(f"{base}/history/app/.env", headers=tokens["developer"]).json()
        assert [(h["version"], h["change"]) for h in history] == [
            (3, "content"),
            (2, "override label:job-node: keys PORT, LEGACY_PASSWORD"),
            (1, "created"),
        ]
        diff = c.get(f"{base}/diff/app/.env", headers=tokens["developer"]).json()
        assert "+X=1\n" in diff["diff"] and (diff["from"], diff["to"]) == (2, 3)
        old = c.get(
            f"{base}/diff/app/.env", params={"from": 1, "to": 2}, headers=tokens["developer"]
        ).json()["diff"]
        assert "+# set" in old and VALUE not in old and "***" in old
        bad = c.put(f"{base}/files/..%2Fescape", json=body, headers=tokens["master"])
        assert bad.status_code in (400, 404, 422)
        assert (
            c.put(
                f"{base}/files/x.ini",
                json={"content": "a", "mode": "0200"},
                headers=tokens["master"],
            ).status_code
            == 422
        )
        gone = c.delete(f"{base}/files/app/.env", headers=tokens["master"])
        assert gone.status_code == 204
        assert (
            c.get(f"{base}/history/app/.env", headers=tokens["developer"]).json()[0]["change"]
            == "deleted"
        )
        audit = c.get(
            "/api/v1/audit",
            params={"space": "default", "action": "config."},
            headers=tokens["master"],
        ).json()
    assert {e["action"] for e in audit} == {
        "config.create",
        "config.update",
        "config.override",
        "config.delete",
    }
    assert VALUE not in repr(audit)


def test_config_files_are_ciphertext_in_a_postgresql_dump(tmp_path: Path):
    with postgres_with_key(tmp_path) as db:
        config = project_config("pgcfg", "file:///nonexistent", [])
        config["environments"]["production"]["hosts"] = ["127.0.0.1:1"]
        allow_local_repos(db)
        apply(db, config)
        config_files.set_file(db, ADMIN, "pgcfg", "production", "app.ini", f"key={VALUE}\n")
        set_approval(db, "production", False)
        deploys.request_deploy(db, ADMIN, "pgcfg", "production", "v1")  # snapshots the file
        dump = pg_dump(db)
    assert b"enc:" in dump and VALUE.encode() not in dump
