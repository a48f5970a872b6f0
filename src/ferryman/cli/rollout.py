"""``ferryman rollout …``: a gray release's state, and continue / abort / roll back now."""

from __future__ import annotations

import json
import sys

import typer
from rich.markup import escape

from ferryman.cli import analysis
from ferryman.cli.client import Client
from ferryman.cli.follow import follow
from ferryman.cli.options import DeployIdArg, JsonOpt, WaitOpt
from ferryman.cli.output import console

rollout_app = typer.Typer(help="Gray releases: continue, abort, roll back now.")


def _rollout_action(deploy_id: int, path: str, wait: bool) -> None:
    client = Client()
    data = client.post(f"/deploys/{deploy_id}/{path}")
    console.print(f"deploy #{deploy_id}: {data['status']}")
    if wait:
        raise typer.Exit(follow(client, deploy_id, console))


@rollout_app.command("show")
def rollout_show(
    deploy_id: DeployIdArg,
    as_json: JsonOpt = False,
) -> None:
    """Batches, hosts done / healthy / failed, and whether it is paused."""
    client = Client()
    data = client.get(f"/deploys/{deploy_id}")
    state = data.get("rollout")
    if as_json:
        sys.stdout.write(json.dumps(state, indent=2) + "\n")
        return
    if not state:
        console.print(f"deploy #{deploy_id} is not a gray release")
        return
    console.print(
        f"deploy #{deploy_id} {data['status']}: batch {state['next_batch']}/"
        f"{len(state['batches'])} done, {len(state['healthy'])} healthy, "
        f"{len(state['failed'])} failed"
        + (f", paused since {state['paused_since']}" if state.get("paused_since") else "")
    )
    for index, batch in enumerate(state["batches"], 1):
        mark = (
            "done"
            if index <= state["next_batch"]
            else "next"
            if index == state["next_batch"] + 1
            else ""
        )
        console.print(f"  batch {index}: {', '.join(batch)} {mark}", highlight=False)
    for host, why in state["failed"].items():
        console.print(f"  [red]{escape(host)}[/]: {escape(why)}", highlight=False)
    if state.get("pause_reason"):
        console.print(f"  paused: {escape(state['pause_reason'])}", highlight=False)
    analysis.show(client, deploy_id)  # the metric canary analysis so far, if any


rollout_app.command("analysis")(analysis.rollout_analysis)


@rollout_app.command("continue")
def rollout_continue(deploy_id: DeployIdArg, wait: WaitOpt = False) -> None:
    """Continue a gray release paused after its canary."""
    _rollout_action(deploy_id, "continue", wait)


@rollout_app.command("abort")
def rollout_abort(deploy_id: DeployIdArg, wait: WaitOpt = False) -> None:
    """Abort a gray release: its on_failure applies (rollback or halt)."""
    _rollout_action(deploy_id, "abort", wait)


@rollout_app.command("rollback")
def rollout_rollback(deploy_id: DeployIdArg, wait: WaitOpt = False) -> None:
    """Stop a gray release and put every host it switched back."""
    _rollout_action(deploy_id, "rollback-now", wait)
