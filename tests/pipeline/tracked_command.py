"""A stand-in for a worker that runs one command of a deploy on a host and then dies:
``python -m tests.pipeline.tracked_command KEY KNOWN_HOSTS ADDRESS RELEASES DEPLOY_ID SCRIPT``
runs ``SCRIPT`` there as every deploy command runs (tracked, under the remote timeout) and
waits for it; the test SIGKILLs this process while it waits."""

from __future__ import annotations

import asyncio
import sys
from functools import partial
from pathlib import Path

from ferryman.commands import processes
from ferryman.commands.remote import Layout
from ferryman.remote.executor import Executor, Target


async def main(
    key: str, known_hosts: str, address: str, releases: str, deploy_id: str, script: str
) -> None:
    executor = Executor(client_key=Path(key), known_hosts=Path(known_hosts))
    layout = Layout(webroot="/srv/www/none", releases=releases, shared_dir="/srv/shared")
    target = Target(key=address, address=address, port=22, user="root")
    await executor.run(
        target,
        ("bash", "-c", script),
        stage="test",
        timeout=600,
        check=False,
        track=partial(processes.track, layout, int(deploy_id)),
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
