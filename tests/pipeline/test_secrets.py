"""Secret variables on a real fleet and real databases: tasks get the value; logs, records,
the API, the audit log and the database files never hold it in plain text."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.bootstrap import prepare_home
from ferryman.config.settings import load_settings
from ferryman.errors import ConfigError
from ferryman.outbound import parse_allow
from ferryman.services import deploy_views, secrets, spaces, users
from ferryman.services.audit import SYSTEM
from tests.helpers import (
    Repo,
    allow_local_repos,
    apply,
    deploy,
    pg_dump,
    postgres_with_key,
    project_config,
    unique,
)

pytestmark = pytest.mark.fleet
VALUE = "pa55-Word_of-the-day!"


def test_a_secret_reaches_tasks_and_nowhere_else(db, settings, git_host, targets, tmp_path):
    repo = Repo(git_host, tmp_path, unique("sec"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    tasks = {
        "post_deploy": 'echo "connecting with $DB_PASSWORD"\n',
        "pre_release": 'printf %s "$DB_PASSWORD" > .env-password\n',
    }
    apply(db, project_config(repo.name, repo.url, targets[:2], tasks=tasks))
    secrets.set_secret(db, SYSTEM, repo.name, "production", "DB_PASSWORD", VALUE)
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    for host in targets[:2]:
        live = host.path(f"/srv/releases/{repo.name}/{result['release']}/.env-password")
        assert live.read_text() == VALUE
    logs = " ".join(x["text"] for x in deploy_views.logs_after(db, result["id"], 0, 5000))
    assert "connecting with ***" in logs and VALUE not in logs
    steps = " ".join(x["command"] + x["output"] for x in deploy_views.steps_of(db, result["id"]))
    assert VALUE not in steps
    db.dispose()
    raw = Path(settings.database_url.removeprefix("sqlite:///"))
    for path in (raw, raw.with_name(raw.name + "-wal")):
        if path.exists():
            assert VALUE.encode() not in path.read_bytes(), path


def test_developers_see_names_masters_read_values_and_every_read_is_audited(db, settings):
    config = project_config("vault", "file:///nonexistent", [])
    config["environments"]["production"]["hosts"] = ["127.0.0.1:1"]
    allow_local_repos(db)
    apply(db, config)
    tokens = {}
    for name, role in (("dev", "developer"), ("lead", "master")):
        actor = users.create_user(db, name, "correct horse battery")
        spaces.set_member(db, SYSTEM, "default", name, role)
        tokens[name] = {
            "Authorization": "Bearer "
            + users.create_token(db, actor, "t", ["read", "write"])["token"]
        }
    base = "/api/v1/projects/vault/envs/production/secrets"
    with TestClient(create_app(settings, db, embedded_worker=False)) as c:
        assert (
            c.put(f"{base}/API_KEY", json={"value": VALUE}, headers=tokens["dev"]).status_code
            == 403
        )
        made = c.put(f"{base}/API_KEY", json={"value": VALUE}, headers=tokens["lead"])
        assert made.status_code == 200 and made.json()["value"] == "***"
        listed = c.get(base, headers=tokens["dev"]).json()
        assert [s["name"] for s in listed] == ["API_KEY"] and VALUE not in repr(listed)
        assert c.get(f"{base}/API_KEY/value", headers=tokens["dev"]).status_code == 403
        assert c.get(f"{base}/API_KEY/value", headers=tokens["lead"]).json()["value"] == VALUE
        audit = c.get("/api/v1/audit?space=default&action=secret.", headers=tokens["lead"]).json()
    assert {e["action"] for e in audit} == {"secret.create", "secret.reveal"}
    assert VALUE not in repr(audit)


def test_secrets_are_ciphertext_in_a_postgresql_dump(tmp_path: Path):
    with postgres_with_key(tmp_path) as db:
        config = project_config("pgvault", "file:///nonexistent", [])
        config["environments"]["production"]["hosts"] = ["127.0.0.1:1"]
        allow_local_repos(db)
        apply(db, config)
        secrets.set_secret(db, SYSTEM, "pgvault", "production", "TOKEN", VALUE)
        dump = pg_dump(db)
    assert b"enc:" in dump and VALUE.encode() not in dump


def test_key_rotation_keeps_secrets_and_a_wrong_key_stops_the_server(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("FERRYMAN_SECRET_KEY", raising=False)
    home = tmp_path / "home"
    settings = load_settings({"FERRYMAN_HOME": str(home)})
    db = prepare_home(settings)
    assert oct((home / "secret.key").stat().st_mode & 0o777) == "0o600"
    config = project_config("rot", "file:///nonexistent", [])
    config["environments"]["production"]["hosts"] = ["127.0.0.1:1"]
    allow_local_repos(db)
    apply(db, config)
    secrets.set_secret(db, SYSTEM, "rot", "production", "TOKEN", VALUE)
    # every other sealed value: a git webhook secret, a channel, the agent signing secret
    from ferryman.outbound import Outbound
    from ferryman.services import agents, hooks, notifications

    hook_secret = hooks.set_secret(db, SYSTEM, "rot")
    notifications.save_channel(
        db,
        SYSTEM,
        "default",
        "chat",
        "slack",
        {"url": "http://127.0.0.1:9/hook"},
        outbound=Outbound(allow=parse_allow("127.0.0.0/8")),
    )
    signing = agents.register(db, SYSTEM, "default", "127.0.0.1:1")["signing_key"]
    db.dispose()
    old_key = (home / "secret.key").read_bytes()
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    env = {**os.environ, "FERRYMAN_HOME": str(home)}
    env.pop("FERRYMAN_SECRET_KEY", None)
    subprocess.run([exe, "admin", "rotate-key"], env=env, check=True, capture_output=True)
    assert (home / "secret.key").read_bytes() != old_key
    db = prepare_home(settings)
    assert secrets.reveal(db, SYSTEM, "rot", "production", "TOKEN") == VALUE
    with db.read() as s:
        from ferryman.db.models import KeyValue, NotifyChannel, Project

        project = s.query(Project).filter_by(name="rot").one()
        assert db.box.open(project.hook_secret) == hook_secret
        assert "127.0.0.1:9" in db.box.open(s.query(NotifyChannel).one().settings)
        for fact in s.query(KeyValue).all():
            if fact.value.startswith("enc:"):
                db.box.open(fact.value)  # every server fact opens with the new key
    assert agents.register(db, SYSTEM, "default", "127.0.0.1:1")["signing_key"] != signing
    db.dispose()
    (home / "secret.key").write_bytes(old_key)  # the wrong (old) key
    with pytest.raises(ConfigError, match="key"):
        prepare_home(settings)


def test_a_deploy_that_needs_an_unset_secret_is_refused_naming_it(db):
    from ferryman.services import deploys
    from tests.helpers import ADMIN

    config = project_config("needs", "file:///nonexistent", [], secrets=["DB_PASSWORD"])
    config["environments"]["production"]["hosts"] = ["127.0.0.1:1"]
    allow_local_repos(db)
    apply(db, config)
    with pytest.raises(ConfigError, match="DB_PASSWORD") as refused:
        deploys.request_deploy(db, ADMIN, "needs", "production", "v1")
    assert refused.value.errors == ["environments/production/secrets: DB_PASSWORD is not set"]
    secrets.set_secret(db, SYSTEM, "needs", "production", "DB_PASSWORD", VALUE)
    assert deploys.request_deploy(db, ADMIN, "needs", "production", "v1").status == "queued"
