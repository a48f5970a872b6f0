"""The outbound policy of a test's server, where the services read it: on its ``Database``."""

from __future__ import annotations

from ferryman.db.session import Database
from ferryman.outbound import Network


def allow_outbound(db: Database, allow: tuple[Network, ...]) -> None:
    """Allow ``db``'s server the internal destinations in ``allow`` (its
    FERRYMAN_OUTBOUND_ALLOW; ``()``: none). ``ferryman.outbound.for_database`` reads the
    policy back with ``getattr(db, "outbound_allow", None)``, an attribute ``Database`` does
    not declare: it is set by name here, in this one place."""
    setattr(db, "outbound_allow", allow)
