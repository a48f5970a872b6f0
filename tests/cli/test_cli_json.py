"""``--json`` on every command that acts: what a CI job reads, validated against the schemas
the running server declares in its OpenAPI document."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import Repo, project_config, unique

pytestmark = pytest.mark.fleet


def test_every_action_prints_one_json_document_the_api_declares(
    cli, signed_in, git_host, targets, tmp_path
):
    signed_in("alice")
    signed_in("bob", "master")
    repo = Repo(git_host, tmp_path, unique("json"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))
    a = {"user": "alice"}

    applied = cli.json("apply", "-f", str(config), schema="AppliedProject", **a)
    assert applied["created"] is True and applied["name"] == repo.name
    checked = cli.json("check", repo.name, "--env", "production", schema="CheckReport", **a)
    assert checked["ok"] is True and len(checked["checks"]) >= 5 * len(targets)

    # production needs approval: a ticket, approved by a master, deployed and waited for
    ticket = cli.json(
        "ticket",
        "create",
        repo.name,
        "--env",
        "production",
        "--ref",
        "v1",
        "--title",
        "v1",
        schema="Ticket",
        **a,
    )
    assert ticket["status"] == "pending_approval"
    approved = cli.json("ticket", "approve", str(ticket["id"]), schema="Ticket", user="bob")
    assert approved["status"] == "approved"
    shipped = cli.json("ticket", "deploy", str(ticket["id"]), "--wait", schema="Deploy", **a)
    assert shipped["status"] == "success" and shipped["release"]
    assert {h["status"] for h in shipped["hosts"]} == {"success"}

    # a direct deploy where no approval is needed: queued, then waited for
    cli("env", "set", "production", "--no-approval", **a)
    queued = cli.json(
        "deploy", repo.name, "--env", "production", "--ref", "v2", schema="Deploy", **a
    )
    assert queued["status"] in ("queued", "running") and queued["ref"] == "v2"
    followed = cli("logs", str(queued["id"]), "--follow", "--json", **a)
    *lines, final = [json.loads(line) for line in followed.stdout.splitlines()]
    for line in lines:
        cli.validate(line, "LogLine")
    cli.validate(final, "Deploy")
    assert final["status"] == "success" and any(line["stage"] == "switch" for line in lines)
    page = cli.json("logs", str(queued["id"]), schema="LogPage", **a)
    assert [line["id"] for line in page["lines"]] == [line["id"] for line in lines]

    back = cli.json("rollback", repo.name, "--env", "production", "--wait", schema="Deploy", **a)
    assert back["kind"] == "rollback" and back["status"] == "success"
    assert back["release"] == shipped["release"]

    # a failed deploy: exit 1, and the document says why; a retry, cancelled before it runs
    failing = project_config(repo.name, repo.url, targets, tasks={"pre_release": "exit 3\n"})
    config.write_text(yaml.safe_dump(failing))
    cli.json("apply", "-f", str(config), schema="AppliedProject", **a)
    failed = cli.json(
        "deploy",
        repo.name,
        "--env",
        "production",
        "--ref",
        "v2",
        "--wait",
        schema="Deploy",
        code=1,
        **a,
    )
    assert failed["status"] == "failed" and failed["error"]["message"]
    retry = cli.json("retry", str(failed["id"]), "--wait", schema="Deploy", code=1, **a)
    assert retry["retry_of"] == failed["id"] and retry["status"] == "failed"

    later = cli.json(
        "deploy",
        repo.name,
        "--env",
        "production",
        "--ref",
        "v1",
        "--at",
        "2099-01-01T00:00:00",
        schema="Deploy",
        **a,
    )
    assert later["status"] == "queued" and later["not_before"].startswith("2099-01-01")
    cancelled = cli.json("cancel", str(later["id"]), schema="Deploy", **a)
    assert cancelled["status"] == "cancelled"
