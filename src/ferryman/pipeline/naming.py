"""The name of the release a deploy makes: the environment's ``release_name`` template (or
the default ``YYYYmmdd-HHMMSS_<ref>_<commit7>``), never one a host or the records hold
already (``domain.release``)."""

from __future__ import annotations

from ferryman.domain.release import release_name, render_name, unique_name
from ferryman.pipeline.context import Context
from ferryman.vcs.base import Resolved


def fields(ctx: Context, resolved: Resolved) -> dict[str, str]:
    """The raw value of every template field (made safe by ``render_name``)."""
    commit7 = resolved.commit[:7]
    return {
        "project": ctx.project.project,
        "env": ctx.env_name,
        "version": resolved.tag or commit7,
        "branch": resolved.branch,
        "time": f"{ctx.started:%Y%m%d-%H%M%S}",
        "user": ctx.requested_by,
        "commit7": commit7,
        "ref": ctx.ref,
        "deploy_id": str(ctx.deploy_id),
    }


async def name_release(ctx: Context, resolved: Resolved) -> str:
    """The new release's name, unique among what the hosts and the records hold."""
    template = ctx.env.release_name
    if template:
        name = render_name(template, fields(ctx, resolved))
    else:
        name = release_name(ctx.started, ctx.ref, resolved.commit)
    taken = set(await ctx.store.release_order())
    for facts in ctx.facts.values():
        taken.update(facts.releases)
    return unique_name(name, taken, ctx.deploy_id)
