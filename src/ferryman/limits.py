"""Process limits a long-running Ferryman process raises for itself at start, and how its
heap is settled once it is built.

A worker holds one SSH connection per host it works on (up to ``parallel`` at once), plus its
database connections, log files and the pipes of its builds; a deploy to hundreds of hosts
needs more open files than the soft limit many systems start a service with (1024). The hard
limit is the administrator's ceiling; the soft one is the process's to raise up to it.
"""

from __future__ import annotations

import gc
import resource
from pathlib import Path

NR_OPEN = Path("/proc/sys/fs/nr_open")  # the kernel's ceiling when the hard limit is unlimited


def raise_open_files() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard limit; return (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard
    if hard == resource.RLIM_INFINITY:
        try:
            ceiling = int(NR_OPEN.read_text())
        except (OSError, ValueError):
            ceiling = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        except (ValueError, OSError):
            return soft, hard
        soft = ceiling
    return soft, hard


def freeze_start_up_objects() -> int:
    """Put every object alive once the server is built (modules, the app, its compiled
    templates) out of the cyclic garbage collector's reach (``gc.freeze``), after collecting
    what start-up left: a full collection then walks only what requests made since, instead of
    pausing one request for the whole heap. Those pauses were the page benchmark's outliers
    (200-260 ms; under 100 ms with the freeze, ``docs/benchmarks.md``). Returns how many
    objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
