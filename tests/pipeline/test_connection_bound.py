"""A fleet larger than ``parallel`` does not cost a connection — a socket, a descriptor on the
deploy host, a session on the host — per host: the executor keeps at most its bound open,
closing the least recently used idle one, and a host it closed is simply connected again.
Counted on the deploy host's own sockets (``/proc/self/net/tcp``), with marker files on every
host to show each command ran where it was sent."""

from __future__ import annotations

import asyncio
import os
import socket

from ferryman.config.project import parse_project
from ferryman.pipeline.context import new_context
from ferryman.pipeline.memory import MemoryStore, MemoryWriter
from ferryman.remote.executor import Executor, Target, fan_out
from tests.helpers import unique


def ssh_connections(addresses: list[str]) -> int:
    """Established TCP connections of this process to port 22 of ``addresses``."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            mine.add(link[8:-1])
    wanted = {socket.inet_aton(a)[::-1].hex().upper() + ":0016" for a in addresses}
    with open("/proc/self/net/tcp") as fh:
        rows = [line.split() for line in fh.readlines()[1:]]
    return sum(1 for r in rows if r[2] in wanted and r[3] == "01" and r[9] in mine)


def _targets(hosts) -> list[Target]:
    return [Target(key=h.address, address=h.address, port=22, user="root") for h in hosts]


def test_an_executor_keeps_no_more_connections_open_than_its_bound(settings, targets):
    chosen = _targets(targets)
    addresses = [t.address for t in chosen]
    marker = "/srv/" + unique("bound")
    counts: list[int] = []

    async def scenario() -> None:
        executor = Executor(
            client_key=settings.ssh_key, known_hosts=settings.known_hosts, max_connections=2
        )

        async def touch(target: Target) -> None:
            await executor.run(target, ("touch", marker + "-1"), stage="t", timeout=30)
            await executor.settle()
            counts.append(ssh_connections(addresses))

        async def again(target: Target) -> None:
            await executor.run(target, ("touch", marker + "-2"), stage="t", timeout=30)

        try:
            assert not await fan_out(chosen, touch, 1)
            assert not await fan_out(chosen, again, 2)  # closed hosts are connected again
            await executor.settle()
            counts.append(ssh_connections(addresses))
        finally:
            await executor.close()
        counts.append(ssh_connections(addresses))

    asyncio.run(scenario())
    assert len(targets) > 2
    assert max(counts[:-1]) == 2  # never one per host of the fleet
    assert counts[-1] == 0  # and none left once closed
    for host in targets:
        assert host.path(marker + "-1").exists() and host.path(marker + "-2").exists()


def test_two_commands_started_at_once_on_a_host_share_one_connection(settings, targets):
    host = targets[0]
    target = _targets([host])[0]
    marker = "/srv/" + unique("shared")
    seen: list[int] = []

    async def scenario() -> None:
        executor = Executor(client_key=settings.ssh_key, known_hosts=settings.known_hosts)
        try:
            await asyncio.gather(
                *(
                    executor.run(target, ("touch", f"{marker}-{i}"), stage="t", timeout=30)
                    for i in range(3)
                )
            )
            seen.append(ssh_connections([host.address]))
        finally:
            await executor.close()

    asyncio.run(scenario())
    assert seen == [1]  # one handshake, not one per command started before it connected
    assert all(host.path(f"{marker}-{i}").exists() for i in range(3))


def test_a_stage_on_more_hosts_than_parallel_holds_at_most_parallel_connections(settings, targets):
    config = parse_project(
        {
            "project": "bound",
            "repo": "ssh://git@127.0.0.1/none.git",  # never reached: only a stage runs here
            "environments": {
                "production": {
                    "hosts": [h.address for h in targets],
                    "user": "root",
                    "webroot": "/srv/www/bound",
                    "releases": "/srv/releases/bound",
                    "parallel": 2,
                }
            },
        }
    )
    ctx = new_context(
        settings, config, "production", deploy_id=1, store=MemoryStore(), writer=MemoryWriter()
    )
    marker = "/srv/" + unique("stage")
    addresses = [h.address for h in targets]
    after: list[int] = []

    async def scenario() -> None:
        async def one(target: Target) -> None:
            await ctx.remote(target, ("touch", marker), stage="t")

        try:
            with ctx.recorder.stage("t", len(ctx.targets)):
                await ctx.each_host("t", one)
            await ctx.executor.settle()
            after.append(ssh_connections(addresses))
        finally:
            await ctx.executor.close()

    asyncio.run(scenario())
    assert len(targets) > 2
    assert after == [2]
    assert all(h.path(marker).exists() for h in targets)


def test_a_stage_after_another_reuses_the_connections_the_bound_kept(settings, targets):
    """With ``parallel: 2`` the first stage leaves two connections open; the next stage runs
    those two hosts first, so it connects only to the others (before: to every host again,
    the two kept ones closed by the bound before their turn came)."""
    config = parse_project(
        {
            "project": "reuse",
            "repo": "ssh://git@127.0.0.1/none.git",  # never reached: only stages run here
            "environments": {
                "production": {
                    "hosts": [h.address for h in targets],
                    "user": "root",
                    "webroot": "/srv/www/reuse",
                    "releases": "/srv/releases/reuse",
                    "parallel": 2,
                }
            },
        }
    )
    ctx = new_context(
        settings, config, "production", deploy_id=1, store=MemoryStore(), writer=MemoryWriter()
    )
    marker = "/srv/" + unique("reuse")
    made: list[int] = []

    async def scenario() -> None:
        try:
            for stage in ("first", "second"):

                async def one(target: Target, stage: str = stage) -> None:
                    await ctx.remote(target, ("touch", f"{marker}-{stage}"), stage=stage)

                before = ctx.executor.handshakes
                with ctx.recorder.stage(stage, len(ctx.targets)):
                    await ctx.each_host(stage, one)
                made.append(ctx.executor.handshakes - before)
        finally:
            await ctx.executor.close()

    asyncio.run(scenario())
    assert len(targets) > 2
    assert made == [len(targets), len(targets) - 2]
    assert all(h.path(f"{marker}-second").exists() for h in targets)
