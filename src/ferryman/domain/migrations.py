"""Which database migrations going back to a release would cross.

Each deploy (or rollback) of an environment with a ``migrations:`` command records a
*listing*: the migrations the database had once it switched, each reversible or not, with the
release it switched to. The database's migrations now are those of the newest listing. Going
back to release ``T`` crosses every migration listed now that the database did not have while
``T`` was live — from the newest listing made with ``T`` live; for a release listed never, from
the newest listing made before ``T`` was deployed, or else (``T`` is older than every listing)
the oldest listing, whose migrations are taken as already there before it. A crossing is
blocked by every irreversible migration in it, and by a newest listing that failed (then
nothing is known).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Listing:
    deploy_id: int
    release: str
    ok: bool
    applied: tuple[tuple[str, bool], ...] = ()  # (version, reversible), in listed order
    error: str = ""


@dataclass
class Crossing:
    """What going back to ``release`` crosses: ``crossed`` (version, reversible) migrations;
    ``unknown`` says why nothing can be known (the newest listing failed)."""

    release: str
    crossed: list[tuple[str, bool]] = field(default_factory=list)
    unknown: str = ""
    basis: str = ""  # which listing the target's migrations were read from

    @property
    def irreversible(self) -> list[str]:
        return [version for version, reversible in self.crossed if not reversible]

    @property
    def blocked(self) -> bool:
        return bool(self.irreversible or self.unknown)

    def to_dict(self) -> dict[str, object]:
        return {
            "release": self.release,
            "crossed": [{"version": v, "reversible": r} for v, r in self.crossed],
            "irreversible": self.irreversible,
            "unknown": self.unknown,
            "blocked": self.blocked,
            "basis": self.basis,
        }


def _baseline(listings: Sequence[Listing], release: str, deployed_by: int | None) -> Listing | None:
    ok = [x for x in listings if x.ok]
    same = [x for x in ok if x.release == release]
    if same:
        return same[-1]
    if deployed_by is not None:
        before = [x for x in ok if x.deploy_id <= deployed_by]
        if before:
            return before[-1]
    return ok[0] if ok else None


def crossing(listings: Sequence[Listing], release: str, deployed_by: int | None) -> Crossing:
    """What going back to ``release`` (made by deploy ``deployed_by``, when known) crosses;
    ``listings`` are the environment's, oldest first."""
    out = Crossing(release)
    if not listings:
        return out
    now = listings[-1]
    if not now.ok:
        out.unknown = (
            f"the newest listing of migrations (deploy #{now.deploy_id}) failed: "
            f"{now.error or 'no answer'}"
        )
        return out
    base = _baseline(listings, release, deployed_by) or now  # now is ok: never None
    out.basis = f"deploy #{base.deploy_id} ({base.release})"
    had = {version for version, _ in base.applied}
    out.crossed = [(v, r) for v, r in now.applied if v not in had]
    return out


def forward(listings: Sequence[Listing], release: str) -> list[tuple[str, bool]]:
    """Migrations a release brought in: those its first listing holds that the listing
    before it did not (what the releases page shows per release)."""
    previous: set[str] | None = None
    for listing in listings:
        if not listing.ok:
            continue
        versions = {v for v, _ in listing.applied}
        if listing.release == release:
            if previous is None:
                return []  # the first listing: what came before it is not known
            return [(v, r) for v, r in listing.applied if v not in previous]
        previous = versions
    return []


def describe(cross: Crossing, limit: int = 20) -> str:
    """One line for a refusal: the irreversible migrations crossed (or why nothing is known)."""
    if cross.unknown:
        return cross.unknown
    names = cross.irreversible
    shown = ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )
    return f"irreversible migration(s) applied since {cross.release}: {shown}"
