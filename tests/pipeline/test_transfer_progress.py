"""Transfer progress in bytes per host: the executor tells every chunk it streamed, the recorder
keeps a few of them a second per host in the stage's record, and a deploy's transfer stage ends
with every host's bytes sent equal to its package — in the record and in the API's deploy view."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.pipeline.memory import MemoryWriter
from ferryman.pipeline.recorder import PROGRESS_SECONDS, Recorder
from ferryman.remote.executor import CHUNK, Executor, Target
from ferryman.services import users
from tests.helpers import Repo, apply, deploy, live, project_config, unique

MIB = 1024 * 1024


def test_the_executor_tells_the_bytes_of_a_streamed_file_after_every_chunk(
    settings, targets, tmp_path
):
    source = tmp_path / "package.bin"
    source.write_bytes(os.urandom(3 * MIB + 12345))
    size = source.stat().st_size
    host = targets[0]
    target = Target(key=host.address, address=host.address, port=22, user="root")
    heard: list[tuple[int, int]] = []

    async def scenario() -> str:
        executor = Executor(client_key=settings.ssh_key, known_hosts=settings.known_hosts)
        try:
            result = await executor.run(
                target,
                ("sha256sum",),
                stage="transfer",
                timeout=60,
                source=source,
                on_progress=lambda sent, total: heard.append((sent, total)),
            )
        finally:
            await executor.close()
        return result.stdout.split()[0]

    digest = asyncio.run(scenario())
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()  # every byte arrived
    assert heard[0] == (0, size)
    assert heard[-1] == (size, size)
    assert len(heard) == 1 + -(-size // CHUNK)  # the start, then once per chunk
    sent = [s for s, _ in heard]
    assert sent == sorted(set(sent))  # only ever forward
    assert {total for _, total in heard} == {size}


def test_the_recorder_keeps_a_hosts_progress_a_few_times_a_second_not_every_chunk():
    writer = MemoryWriter()
    recorder = Recorder(writer, 1)
    recorder.stage_start("transfer", 2)
    progress = recorder.transfer_progress("transfer", "10.0.0.1:22")
    total = 4000 * CHUNK
    kept: list[int] = []
    started = time.monotonic()
    for chunk in range(4001):
        progress(chunk * CHUNK, total)
        now = recorder.stages[-1]["bytes"]["10.0.0.1:22"]
        if not kept or kept[-1] != now["sent"]:
            kept.append(now["sent"])
    elapsed = time.monotonic() - started
    assert kept[0] == 0 and kept[-1] == total  # the start and the end, always
    assert len(kept) <= 2 + elapsed / PROGRESS_SECONDS + 1  # a few a second, not 4,001
    assert recorder.stages[-1]["bytes"] == {"10.0.0.1:22": {"sent": total, "total": total}}
    assert "10.0.0.1:22" not in recorder.stages[-1]["hosts"]  # host outcomes stay apart
    asyncio.run(recorder.flush())
    assert writer.stages[-1]["bytes"] == {"10.0.0.1:22": {"sent": total, "total": total}}


def test_a_deploy_records_each_hosts_bytes_sent_up_to_its_package_total(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("bytes"))
    blob = os.urandom(4 * MIB)  # incompressible: the package is at least this big
    (repo.work / "blob.bin").write_bytes(blob)
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets, compress=True))
    done = deploy(db, settings, repo.name, "v1")
    assert done["status"] == "success"
    transfer = next(s for s in done["stages"] if s["name"] == "transfer")
    progress = transfer["bytes"]
    assert sorted(progress) == sorted(h["host"] for h in done["hosts"])
    totals = {p["total"] for p in progress.values()}
    assert len(totals) == 1  # one full package, streamed to every host
    assert totals.pop() > len(blob)
    assert all(p["sent"] == p["total"] for p in progress.values())
    for host in targets:  # and the bytes counted are the bytes that arrived
        release = live(host, repo.name)
        shipped = Path(host.path(f"/srv/releases/{repo.name}/{release}/blob.bin"))
        assert hashlib.sha256(shipped.read_bytes()).digest() == hashlib.sha256(blob).digest()

    users.create_user(db, "reader", "correct horse battery", superuser=True)
    token = users.login(db, "reader", "correct horse battery")
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        shown = client.get(
            f"/api/v1/deploys/{done['id']}", headers={"Authorization": f"Bearer {token}"}
        ).json()
    stage = next(s for s in shown["stages"] if s["name"] == "transfer")
    assert stage["bytes"] == progress
    assert stage["hosts"] == transfer["hosts"] and stage["done"] == len(targets)
