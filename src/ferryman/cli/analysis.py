"""The metric canary analysis of a gray release, as ``ferryman rollout show`` prints it and
``ferryman rollout analysis`` (``--json`` for scripts)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import DeployIdArg, JsonOpt
from ferryman.cli.output import console

_COLOURS = {"pass": "green", "fail": "red", "error": "yellow"}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def lines(data: dict[str, Any]) -> list[str]:
    """The analysis as text lines (rich markup): the metrics, then one line per interval."""
    if not data.get("metrics") and not data.get("measurements"):
        return []
    out = ["analysis:"]
    for metric in data.get("metrics", []):
        out.append(f"  {escape(metric['name'])}: {escape(metric['compare'])}")
    by_interval: dict[int, list[dict[str, Any]]] = {}
    for m in data.get("measurements", []):
        by_interval.setdefault(int(m["interval"]), []).append(m)
    if not by_interval:
        out.append("  no interval measured yet")
    for interval, rows in sorted(by_interval.items()):
        shown = []
        for m in rows:
            colour = _COLOURS.get(m["verdict"], "white")
            text = (
                f"{escape(m['metric'])} canary {_number(m['canary'])} "
                f"baseline {_number(m['baseline'])} [{colour}]{escape(m['verdict'])}[/]"
            )
            if m["verdict"] != "pass" and m.get("detail"):
                text += f" ({escape(m['detail'])})"
            shown.append(text)
        out.append(f"  interval {interval}: " + "; ".join(shown))
    return out


def show(client: Client, deploy_id: int) -> None:
    """Print the analysis of ``deploy_id`` (nothing when its rollout has none)."""
    for line in lines(client.get(f"/deploys/{deploy_id}/analysis")):
        console.print(line, highlight=False)


def rollout_analysis(deploy_id: DeployIdArg, as_json: JsonOpt = False) -> None:
    """The metric canary analysis so far: each interval's values and verdicts."""
    data = Client().get(f"/deploys/{deploy_id}/analysis")
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    printed = lines(data)
    if not printed:
        console.print(f"deploy #{deploy_id} has no canary analysis")
    for line in printed:
        console.print(line, highlight=False)
