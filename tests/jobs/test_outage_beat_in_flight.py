"""A heartbeat in flight when the database comes back must still win against the first
worker back (``jobs/worker.py``, ``_database_answered``). Its connection attempt started
while the database was away and hangs until the driver's connect timeout
(``db.session.CONNECT_TIMEOUT``): the run's next beat comes only after that, so a worker that
saw the database answer again must wait for it before it takes the run's deploy over, and the
run must try again soon after a failed beat instead of a whole period later. Otherwise a deploy
whose worker never stopped ends ``worker_lost``.

The network between the workers and a private PostgreSQL is a forwarder of the test's own on
loopback: cut, it closes what it carried and holds every new connection unanswered (packets
dropped, as a failed link does); mended, it carries new connections again — and the ones it
held stay unanswered until their own timeout, like the beat in flight."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time

from sqlalchemy import make_url

from ferryman.config.project import parse_project
from ferryman.db.session import Database
from ferryman.jobs.deploy_job import Ownership, build_context
from ferryman.jobs.worker import Worker
from ferryman.services import deploys, locks, queue
from tests.conftest import NET
from tests.helpers import ADMIN, unique
from tests.jobs.test_lost_lease import _expire, _row
from tests.jobs.test_outage_take_over import pg  # noqa: F401  (a fixture)

LEASE = 15.0  # a beat every 5 s: one starts in the outage and hangs past the database's return
WIRE = f"{NET}.76"  # the forwarder's address (its port: a free one)


class Wire:
    """A TCP forwarder to ``upstream`` that can be cut and mended."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server((WIRE, 0))
        self.port = int(self.listener.getsockname()[1])
        self.cut_off = False
        self.carried: list[socket.socket] = []
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            with self.lock:
                if self.cut_off:
                    self.held.append(client)  # never answered
                    continue
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
                self.carried += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            self.cut_off = True
            carried, self.carried = self.carried, []
        for sock in carried:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def mend(self) -> None:
        with self.lock:
            self.cut_off = False

    def close(self) -> None:
        self.listener.close()
        self.cut()
        for sock in self.held:
            sock.close()

    def url(self, direct: str) -> str:
        return make_url(direct).set(host=WIRE, port=self.port).render_as_string(False)


def _project(db: Database) -> str:
    """A project whose deploy is only claimed and held here: its host is never reached."""
    name = unique("beat")
    config = {
        "project": name,
        "repo": f"ssh://git@{NET}.79/{name}.git",
        "environments": {
            "staging": {
                "hosts": [f"{NET}.79"],
                "user": "root",
                "webroot": f"/srv/www/{name}",
                "releases": f"/srv/releases/{name}",
            }
        },
    }
    from ferryman.services import projects

    projects.apply_project(db, ADMIN, parse_project(config))
    return name


def test_a_beat_in_flight_when_the_database_returns_keeps_the_deploy_from_the_first_worker_back(
    pg,  # noqa: F811
    settings,
):
    server, direct = pg
    settings = dataclasses.replace(settings, lock_lease_seconds=LEASE)
    wire = Wire((server.host, int(server.port or 0)))
    db = Database(wire.url(direct.url))  # the run's worker
    rescuer_db = Database(wire.url(direct.url))  # the first worker back's
    try:
        name = _project(direct)
        requested = deploys.request_deploy(direct, ADMIN, name, "staging", "v1")
        job = requested.id
        claim = queue.claim(db, "owner", None, LEASE)
        assert claim is not None and claim.id == job
        ctx = build_context(db, settings, job)
        key = locks.deploy_key(requested.project_id, "staging")
        owner = f"owner:deploy-{job}"
        locks.acquire(db, key, owner=owner, deploy_id=job, holder="test", lease=LEASE)
        ctx.owned_until = time.monotonic() + LEASE
        rescuer = Worker(rescuer_db, settings)

        async def outage() -> None:
            hold = Ownership(db, ctx, key, owner, claim.holder, LEASE)
            beating = asyncio.create_task(hold.run())  # its first beat: a third of a lease on
            wire.cut()
            await rescuer._reap()  # fails after the connect timeout: the rescuer saw the outage
            assert rescuer._database_out
            # the run's beat started in the outage and hangs; the database comes back now
            wire.mend()
            _expire(direct, job)  # the owner's lease ran out while the database was away
            await rescuer._reap()  # it answers: no take-over yet
            assert not rescuer._database_out
            assert _row(direct, job) == ("running", "owner")
            # the earliest a reaper may take over again: by then the run has renewed
            await asyncio.sleep(max(0.0, rescuer._reap_from - time.monotonic()) + 0.2)
            await rescuer._reap()
            for task in rescuer._recovering.values():
                task.cancel()
            await asyncio.gather(*rescuer._recovering.values(), return_exceptions=True)
            lost = ctx.lost
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            await ctx.executor.close()
            assert not lost, lost

        asyncio.run(outage())
        assert _row(direct, job) == ("running", "owner")  # never taken over
    finally:
        db.dispose()
        rescuer_db.dispose()
        wire.close()
