"""``scripts/fleet``: start or stop a test fleet from the shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ferryman.testing.fleet import DEFAULT_NETWORK, Fleet, FleetHost, start_fleet


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "start":
        base, count = Path(argv[1]).absolute(), int(argv[2])
        fleet = start_fleet(base, count, network=DEFAULT_NETWORK, tmpfs="--tmpfs" in argv)
        state = {
            "client_key": str(fleet.client_key),
            "known_hosts": str(fleet.known_hosts),
            "hosts": [
                {
                    "name": h.name,
                    "address": h.address,
                    "root": str(h.root),
                    "pid_file": str(h.pid_file),
                }
                for h in fleet.hosts
            ],
        }
        (base / "fleet.json").write_text(json.dumps(state, indent=2))
        print(json.dumps(state, indent=2))
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        base = Path(argv[1]).absolute()
        state = json.loads((base / "fleet.json").read_text())
        fleet = Fleet(
            base=base,
            client_key=Path(state["client_key"]),
            known_hosts=Path(state["known_hosts"]),
            hosts=[
                FleetHost(h["name"], h["address"], Path(h["root"]), Path(h["pid_file"]))
                for h in state["hosts"]
            ],
        )
        fleet.stop()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
