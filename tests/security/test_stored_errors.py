"""Per-host errors that older workers stored with a secret in them are masked once, when a
server starts with the key (a migration cannot: it runs before the key is loaded)."""

from __future__ import annotations

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, DeployHost
from ferryman.services import projects
from ferryman.services.audit import SYSTEM
from ferryman.services.deploy_records import mask_stored_host_errors
from tests.helpers import project_config, unique

SECRET = "hunter2-Very-Secret"


def _config(name: str) -> dict:
    config = project_config(name, "ssh://git@127.0.0.1/x.git", [])
    config["environments"]["production"]["hosts"] = ["10.0.0.1"]  # never contacted
    return config


def test_a_secret_stored_in_an_old_host_error_is_masked_when_the_server_starts(db, settings):
    name = unique("old")
    project, _ = projects.apply_project(db, SYSTEM, parse_project(_config(name)))
    with db.transaction() as s:
        deploy = Deploy(
            project_id=project.id,
            env="production",
            variables={"DB_PASSWORD": db.box.seal(SECRET), "MODE": "fast"},
            secret_names=["DB_PASSWORD"],
            config={},
            status="failed",
            rollout={"failed": {"10.0.0.1": f"pre_release: login {SECRET} refused"}},
        )
        s.add(deploy)
        s.flush()
        s.add(DeployHost(deploy_id=deploy.id, host="10.0.0.1", error=f"denied for {SECRET}"))
        deploy_id = deploy.id
    db.dispose()
    prepare_home(settings)  # a server start
    with db.read() as s:
        row = s.query(DeployHost).filter_by(deploy_id=deploy_id).one()
        stored = s.get(Deploy, deploy_id)
        assert row.error == "denied for ***"
        assert SECRET not in str(stored.rollout)
    assert mask_stored_host_errors(db) == 0  # once only
