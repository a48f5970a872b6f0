"""Tiered fan-out (``transfer: {fanout: N}``): the full package reaches many hosts while the
deploy host sends it to only ``N`` of them.

The hosts that get the full package form a tree: the first ``N`` are fed by the deploy host;
every host then feeds up to ``N`` more (``plan``). A relay passes the package on with OpenSSH
and a key made for this one deploy (``commands.relay``: on the receivers it may only write at
most the package's size into one file of the deploy's directory; the relays hold its private
half in a 0600 file there). Before a relayed package is used, what was relayed is copied to
a file the key cannot write and its SHA-256 compared with the package's (by the deploy host for
a relay's own copy, before it passes it on; on the host, against the digest the deploy host
gives, in the command that unpacks it, for the others). A relay that fails, is too slow (every
command has its timeout) or delivers something else: the hosts below it get the package
straight from the deploy host, and the log says so.

A host's key line goes as soon as its copy is accepted, a relay's key files as soon as it has
passed the package on, its directory with the unpack; whatever a failure, a fallback or a
cancel left is removed once the package moved (``revoke``) and at the end of the transfer
(``remove``); a deploy whose worker died has them removed by the recovery (``pipeline.recover``),
and each line carries an expiry besides.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncssh

from ferryman.clock import utcnow
from ferryman.commands import relay as cmd
from ferryman.commands.remote import Command, Compression
from ferryman.errors import RemoteError
from ferryman.pipeline.context import Context
from ferryman.remote import local
from ferryman.remote.executor import Target, fan_out

STAGE = "transfer"
EXPIRY_MARGIN = timedelta(hours=1)  # past the transfer timeout, the key line is refused anyway


@dataclass
class Tree:
    """Who feeds whom: the hosts the deploy host feeds, and each relay's hosts."""

    roots: list[Target]
    children: dict[str, list[Target]] = field(default_factory=dict)
    parent: dict[str, Target] = field(default_factory=dict)


def plan(hosts: list[Target], fanout: int) -> Tree:
    """The first ``fanout`` hosts are fed by the deploy host; host ``i`` (in order) feeds the
    ``fanout`` hosts after the first ``fanout * (i + 1)``: a tree ``log_fanout(hosts)`` deep
    in which no host sends to more than ``fanout`` others. Only a host whose address is an IP
    literal relays — its children's key lines take the key from that address alone
    (``from=``), which a name could not say without DNS — so those hosts come first, and a
    host whose turn would fall to a named relay is fed by the deploy host instead."""
    ordered = sorted(hosts, key=lambda t: _ip(t.address) is None)  # stable: IP literals first
    tree = Tree(roots=ordered[:fanout])
    for i, host in enumerate(ordered[fanout:]):
        parent = ordered[i // fanout]
        if _ip(parent.address) is None:
            tree.roots.append(host)
            continue
        tree.children.setdefault(parent.key, []).append(host)
        tree.parent[host.key] = parent
    return tree


def applies(ctx: Context, hosts: list[Target]) -> bool:
    """Tiered fan-out is used for the hosts getting the full package when it is on and they
    are more than ``fanout`` (with fewer, the deploy host sends the same bytes either way)."""
    fanout = ctx.env.transfer.fanout
    return fanout > 0 and len(relayable(hosts)) > fanout


def relayable(hosts: list[Target]) -> list[Target]:
    """The hosts a relay can reach: all but the deploy host itself (``local``)."""
    return [t for t in hosts if t.key != local.LOCAL]


def _ip(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Relay:
    """One deploy's relay key and what it has put on hosts."""

    def __init__(self, ctx: Context, hosts: list[Target], package: Path) -> None:
        self.ctx = ctx
        self.hosts = hosts
        self.package = package
        self.tree = plan(hosts, ctx.env.transfer.fanout)
        self.failures: dict[str, BaseException] = {}
        self.armed: set[str] = set()
        self.touched: set[str] = set()  # hosts that may hold the key line or the directory
        self.lines_left: set[str] = set()  # hosts whose key line may still be there
        self.keys_left: set[str] = set()  # relays whose key files may still be there
        self.unpacked: set[str] = set()  # hosts whose directory went with the unpack
        self.stored: set[str] = set()  # relays holding their checked copy
        self.pending: set[str] = set()  # hosts fed by a relay, checked when unpacking
        self.size = 0
        self.digest = ""
        self._gate = asyncio.Semaphore(ctx.limit or ctx.env.parallel)
        self._known: asyncssh.SSHKnownHosts | None = None

    @property
    def keys_file(self) -> str:
        return self.ctx.env.transfer.authorized_keys

    async def distribute(self) -> dict[str, BaseException]:
        """The key set up, every relay's checked copy of the package in its directory and
        passed on, through the tree where it works (the hosts fed by a relay have their copy
        checked when it is unpacked: ``unpack``); the relays the deploy host could not feed
        either, by host (they get the package as any host does)."""
        ctx = self.ctx
        self.size = size = self.package.stat().st_size
        self.digest = digest = await asyncio.to_thread(_digest, self.package)
        key = asyncssh.generate_private_key("ssh-ed25519")
        public = key.export_public_key("openssh").decode()
        private = key.export_private_key("openssh")
        ctx.recorder.log(
            f"tiered fan-out: the deploy host feeds {len(self.tree.roots)} of {len(self.hosts)} "
            f"host(s), which pass the package on ({len(self.tree.children)} relay(s))",
            stage=STAGE,
        )
        in_tree = set(self.tree.parent) | set(self.tree.children)
        setup = await fan_out(
            [t for t in self.hosts if t.key in in_tree],  # a root feeding none: as before
            lambda t: self._setup(t, public, private, size),
            ctx.limit or ctx.env.parallel,
        )
        for host, exc in setup.items():
            ctx.recorder.log(f"relay setup failed ({exc})", host=host, stage=STAGE)
        await asyncio.gather(*(self._settle(t, False, size, digest) for t in self.tree.roots))
        return self.failures

    async def _setup(self, target: Target, public: str, private: bytes, size: int) -> None:
        ctx = self.ctx
        self.touched.add(target.key)
        line = known = None
        shown = ["make the relay directory"]
        parent = self.tree.parent.get(target.key)
        if parent is not None:
            source = _ip(parent.address) or ""  # plan() makes only IP literals relays
            line = cmd.authorized_line(
                ctx.layout,
                ctx.deploy_id,
                public,
                size=size,
                timeout=ctx.env.transfer_timeout,
                expires=utcnow() + timedelta(seconds=ctx.env.transfer_timeout) + EXPIRY_MARGIN,
                sources=[source],
            )
            shown.append(f"let {parent.key} pass the package on to it (relay key)")
            self.lines_left.add(target.key)
        children = self.tree.children.get(target.key, [])
        if children:
            known = "".join(
                cmd.known_hosts_line(c.address, c.port, key)
                for c in children
                for key in self._host_keys(c)
            )
            shown.append(f"give it the relay key and {len(children)} host key(s)")
            self.keys_left.add(target.key)
        await ctx.remote(
            target,
            cmd.setup(ctx.layout, ctx.deploy_id, self.keys_file, line=line, known_hosts=known),
            stage=STAGE,
            stdin=private if known is not None else None,
            shown="; ".join(shown),
        )
        if known is not None:
            self.armed.add(target.key)

    def _host_keys(self, target: Target) -> list[str]:
        """The host keys the deploy host trusts for ``target`` (pinned, else its known_hosts
        file), as OpenSSH public key lines: a relay trusts exactly these."""
        executor = self.ctx.executor
        pinned = executor.host_keys.get(target.key, "").strip()
        try:
            if pinned:
                keys = [asyncssh.import_public_key(line) for line in pinned.splitlines() if line]
            else:
                if self._known is None:  # read once per deploy, not once per host
                    self._known = asyncssh.read_known_hosts(str(executor.known_hosts))
                keys = list(self._known.match(target.address, target.address, target.port)[0])
        except (OSError, ValueError, asyncssh.KeyImportError):
            return []
        lines = [k.export_public_key("openssh").decode().split()[:2] for k in keys]
        return sorted({" ".join(fields) for fields in lines})

    async def _settle(self, target: Target, relayed: bool, size: int, digest: str) -> None:
        """A relay gets its checked copy (relayed, else pushed now) and feeds its own; a host
        that feeds none waits for its unpack (``mode``): its relayed copy is checked there."""
        ctx = self.ctx
        children = self.tree.children.get(target.key, [])
        if not children:
            if relayed:
                self.pending.add(target.key)
            return
        try:
            ctx.checkpoint()
            if not (relayed and await self._accept(target, size, digest)):
                async with self._gate:
                    ctx.checkpoint()
                    await ctx.remote(
                        target,
                        cmd.store_package(ctx.layout, ctx.deploy_id),
                        stage=STAGE,
                        source=self.package,
                        timeout=ctx.env.transfer_timeout,
                        shown="receive the package from the deploy host",
                    )
            self.stored.add(target.key)
        except Exception as exc:
            self.failures[target.key] = exc
        delivered = await self._forward(target, children) if target.key in self.stored else set()
        for child in children:
            if child.key not in delivered:
                why = "it did not get the package" if target.key in self.failures else "it failed"
                ctx.recorder.log(
                    f"relay {target.key} did not pass the package on ({why}): "
                    "the deploy host sends it directly",
                    host=child.key,
                    stage=STAGE,
                )
        await asyncio.gather(*(self._settle(c, c.key in delivered, size, digest) for c in children))

    def mode(self, key: str) -> str:
        """How a host gets its release: ``stored`` (unpack its checked copy), ``relayed``
        (check what a relay wrote, then unpack it: ``unpack_relayed``) or ``direct`` (the
        usual stream from the deploy host)."""
        return "stored" if key in self.stored else "relayed" if key in self.pending else "direct"

    async def unpack(self, target: Target, release: str, compression: Compression) -> bool:
        """Make the release on a host from its copy; False for a host fed directly, and when
        a relayed copy is missing or not the package (logged: the deploy host then sends the
        package itself, as to any other host)."""
        ctx = self.ctx
        if self.mode(target.key) == "direct":
            return False
        if self.mode(target.key) == "stored":
            await ctx.remote(
                target,
                cmd.unpack_package(ctx.layout, release, compression, ctx.deploy_id),
                stage=STAGE,
                timeout=ctx.env.transfer_timeout,
                shown="unpack the package",
            )
            self.unpacked.add(target.key)
            return True
        result = await ctx.remote(
            target,
            cmd.unpack_relayed(
                ctx.layout,
                release,
                compression,
                ctx.deploy_id,
                size=self.size,
                digest=self.digest,
                authorized_keys=self.keys_file,
            ),
            stage=STAGE,
            timeout=ctx.env.transfer_timeout,
            check=False,
            shown="check the relayed package (SHA-256) and unpack it",
        )
        if result.exit_status == 0:
            self.unpacked.add(target.key)
            self.lines_left.discard(target.key)
            return True
        if result.exit_status not in (cmd.EXIT_NOTHING_RELAYED, cmd.EXIT_NOT_THE_PACKAGE):
            raise RemoteError(
                "command failed",
                host=target.key,
                stage=STAGE,
                command="unpack the relayed package",
                exit_status=result.exit_status,
                stderr_tail=result.stderr or result.stdout,
            )
        why = (
            "nothing arrived"
            if result.exit_status == cmd.EXIT_NOTHING_RELAYED
            else "it is not the package (SHA-256 differs)"
        )
        ctx.recorder.log(
            f"relayed package refused ({why}): the deploy host sends it directly",
            host=target.key,
            stage=STAGE,
        )
        return False

    async def _accept(self, target: Target, size: int, digest: str) -> bool:
        """Whether what the relay wrote is the package (copied first: then checked)."""
        ctx = self.ctx
        try:
            result = await ctx.remote(
                target,
                cmd.accept_relayed(ctx.layout, ctx.deploy_id, size, self.keys_file),
                stage=STAGE,
                check=False,
                quiet=True,
                shown="check the relayed package (SHA-256)",
            )
        except Exception as exc:  # unreachable, too slow: the direct push says more
            ctx.recorder.log(f"relayed package not checked ({exc})", host=target.key, stage=STAGE)
            return False
        if result.exit_status == 0:
            self.lines_left.discard(target.key)  # the command removed it
        if result.exit_status == 0 and cmd.parse_digest(result.stdout) == digest:
            return True
        why = (
            "nothing arrived"
            if result.exit_status == cmd.EXIT_NOTHING_RELAYED
            else "it is not the package (SHA-256 differs)"
            if result.exit_status == 0
            else f"exit {result.exit_status}"
        )
        ctx.recorder.log(
            f"relayed package refused ({why}): the deploy host sends it directly",
            host=target.key,
            stage=STAGE,
        )
        return False

    async def _forward(self, relay: Target, children: list[Target]) -> set[str]:
        """The children ``relay`` says it passed the package to (their copies are checked
        next)."""
        ctx = self.ctx
        if relay.key not in self.armed:
            return set()
        listed = [cmd.Child(i, c.address, c.port, c.user) for i, c in enumerate(children)]
        try:
            result = await ctx.remote(
                relay,
                cmd.forward(
                    ctx.layout,
                    ctx.deploy_id,
                    listed,
                    timeout=ctx.env.transfer_timeout,
                    connect_timeout=ctx.env.connect_timeout,
                    bind=_ip(relay.address),
                ),
                stage=STAGE,
                timeout=ctx.env.transfer_timeout + ctx.env.connect_timeout + cmd.KILL_GRACE,
                check=False,
                shown=f"pass the package on to {len(children)} host(s)",
            )
        except Exception as exc:
            ctx.recorder.log(f"relay failed: {exc}", host=relay.key, stage=STAGE)
            return set()
        if result.exit_status == 0:
            self.keys_left.discard(relay.key)  # the command removed them
        statuses = cmd.parse_forward(result.stdout)
        for i, child in enumerate(children):
            status = statuses.get(i)
            if status != 0:
                ctx.recorder.log(
                    f"relay to {child.key} failed (ssh exit {status})",
                    host=relay.key,
                    stage=STAGE,
                )
        return {c.key for i, c in enumerate(children) if statuses.get(i) == 0}

    async def revoke(self) -> None:
        """Once the package moved: remove the key line and key files wherever they may still
        be (each host's own commands removed them as it went; what a failure or a fallback
        left stays no longer). The package copies stay for the unpack."""
        left = (self.lines_left | self.keys_left) - self.pending  # those go with the unpack
        done = await self._everywhere(
            left,
            cmd.revoke(self.keys_file, self.ctx.layout, self.ctx.deploy_id, keep_package=True),
            "remove the relay key",
        )
        self.lines_left -= done
        self.keys_left -= done

    async def remove(self) -> None:
        """At the end of the transfer: the relay directory and any key line, wherever the
        unpack did not take them away (a failed host, a cancel)."""
        left = (self.touched - self.unpacked) | self.lines_left | self.keys_left
        await self._everywhere(
            left,
            cmd.revoke(self.keys_file, self.ctx.layout, self.ctx.deploy_id),
            "remove the relay directory and key",
        )

    async def _everywhere(self, keys: set[str], command: Command, shown: str) -> set[str]:
        """Run ``command`` on the hosts ``keys``; those where it succeeded."""
        ctx = self.ctx
        hosts = [t for t in self.hosts if t.key in keys]
        if ctx.lost or not hosts:  # lost: the new owner's recovery removes them
            return set()

        async def one(target: Target) -> None:
            await ctx.remote(target, command, stage=STAGE, shown=shown)

        failures = await fan_out(hosts, one, ctx.limit or ctx.env.parallel)
        for host, exc in failures.items():
            ctx.recorder.log(f"could not {shown} ({exc})", host=host, stage=STAGE)
        return {t.key for t in hosts} - set(failures)


def revoke_command(ctx: Context) -> Command:
    """What the recovery of a deploy runs on every host it reaches when fan-out is on."""
    return cmd.revoke(ctx.env.transfer.authorized_keys, ctx.layout, ctx.deploy_id)
