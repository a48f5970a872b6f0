"""A project deployed through its space: servers by name and label, environment variables."""

from __future__ import annotations

import pytest

from ferryman.services import inventory
from ferryman.services.audit import SYSTEM
from tests.helpers import Repo, apply, deploy, printed, project_config, read_live, unique

pytestmark = pytest.mark.fleet


def test_servers_named_or_labelled_in_the_space_are_the_hosts_deployed_to(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("inv"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    first, second, *rest = targets
    inventory.create_server(db, SYSTEM, "default", unique("web"), first.address, user="root")
    for host in rest:
        inventory.create_server(
            db, SYSTEM, "default", unique("web"), host.address, labels=["canary", "region=bj"]
        )
    config = project_config(repo.name, repo.url, [second])
    named = inventory.list_servers(db, SYSTEM, "default")[0]["name"]
    config["environments"]["production"].update(servers=[named], labels=["canary"])
    apply(db, config)
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    assert {h["host"] for h in result["hosts"]} == {h.address for h in targets}
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}


def test_environment_variables_reach_every_task_and_cannot_shadow_ferrymans_own(
    db, settings, git_host, targets, tmp_path
):
    env = next(
        e for e in inventory.list_environments(db, SYSTEM, "default") if e["name"] == "production"
    )
    inventory.update_environment(
        db, SYSTEM, env["id"], variables={"API_URL": "https://api.example.com/v1?a=1&b=$x"}
    )
    repo = Repo(git_host, tmp_path, unique("vars"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    tasks = {
        "post_deploy": 'echo "$API_URL"\n',
        "pre_release": 'echo "$API_URL $ENV" > /srv/vars.out\n',
    }
    apply(db, project_config(repo.name, repo.url, targets[:2], tasks=tasks))
    done = deploy(db, settings, repo.name, "v1")
    assert done["status"] == "success"
    assert printed(db, done["id"], "post_deploy") == ["https://api.example.com/v1?a=1&b=$x"]
    for host in targets[:2]:
        assert host.path("/srv/vars.out").read_text() == (
            "https://api.example.com/v1?a=1&b=$x production\n"
        )
    from ferryman.errors import ValidationError

    with pytest.raises(ValidationError, match="reserved"):
        inventory.update_environment(db, SYSTEM, env["id"], variables={"COMMIT": "x"})


def test_secret_variables_reach_tasks_but_never_logs_records_errors_or_the_api(
    db, settings, git_host, targets, tmp_path
):
    from ferryman.services import deploy_views

    secret = "s3cr3t-Pa55w0rd!"
    env = next(
        e for e in inventory.list_environments(db, SYSTEM, "default") if e["name"] == "production"
    )
    inventory.update_environment(
        db,
        SYSTEM,
        env["id"],
        variables={"DB_PASSWORD": secret, "MODE": "fast"},
        secrets=["DB_PASSWORD"],
    )
    shown = inventory.get_environment(db, SYSTEM, env["id"])
    assert shown["variables"] == {"DB_PASSWORD": "***", "MODE": "fast"}
    # a form sending the masked value back keeps the real one
    inventory.update_environment(
        db, SYSTEM, env["id"], variables={"DB_PASSWORD": "***", "MODE": "slow"}
    )
    repo = Repo(git_host, tmp_path, unique("secret"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    tasks = {
        "post_deploy": 'echo "building with $DB_PASSWORD"\n',
        "pre_release": 'echo "$DB_PASSWORD" > /srv/secret.out\necho "pw={DB_PASSWORD}" >&2\n',
        "post_release": 'echo "failing with $DB_PASSWORD" >&2\nexit 3\n',
    }
    apply(db, project_config(repo.name, repo.url, targets[:2], tasks=tasks))
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "failed"
    for host in targets[:2]:
        assert host.path("/srv/secret.out").read_text() == secret + "\n"  # tasks get it
    stored = " ".join(
        [line["text"] for line in deploy_views.logs_after(db, result["id"], 0, 5000)]
        + [s["command"] + s["output"] for s in deploy_views.steps_of(db, result["id"])]
        + [repr(result["error"])]
    )
    assert secret not in stored
    assert "building with ***" in stored and "failing with ***" in stored
