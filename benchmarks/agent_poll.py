"""Pull-mode poll benchmark: 10,000 distinct hosts, each with its own token, asking one
``ferryman serve`` whether a deploy is due (nothing is: the common case), driven by ``wrk``.

    apt-get install wrk   # once
    .venv/bin/python benchmarks/agent_poll.py [--hosts 10000] [--seconds 20] [--connections 64]

Reports requests per second and latency percentiles (p50, p99) as wrk measures them. The goal
is ≥ 3,000 req/s with p99 < 50 ms on 2 cores (wrk shares them with the server).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from ferryman.bootstrap import prepare_home
from ferryman.config.settings import load_settings
from ferryman.db.models import AgentToken
from ferryman.services import agents

LUA = """
local hosts, tokens = {}, {}
for line in io.lines("%s") do
  local host, token = line:match("([^ ]+) ([^ ]+)")
  hosts[#hosts + 1] = host
  tokens[#tokens + 1] = token
end
local n = 0
request = function()
  n = n %% #hosts + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[n]}
  return wrk.format("GET", "/api/v1/agent/" .. hosts[n], headers)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    base = Path(tempfile.mkdtemp(prefix="ferryman-poll-bench-"))
    settings = load_settings({"FERRYMAN_HOME": str(base / "home")})
    db = prepare_home(settings)
    lines = []
    with db.transaction() as s:  # 10,000 registrations, the way agents.register stores them
        for i in range(args.hosts):
            token = f"fma_bench_{i:06d}_{os.urandom(8).hex()}"
            s.add(AgentToken(space_id=1, host=f"h{i}", token_hash=agents._hash(token)))
            lines.append(f"h{i} {token}")
    db.dispose()
    (base / "hosts.txt").write_text("\n".join(lines) + "\n")
    (base / "poll.lua").write_text(LUA % (base / "hosts.txt"))
    port = free_port()
    env = {**os.environ, "FERRYMAN_HOME": str(settings.home), "FERRYMAN_EMBEDDED_WORKER": "0"}
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    server = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        # warm up: every token checked once (then cached), as a fleet does in its first minute
        subprocess.run(
            ["wrk", "-t2", f"-c{args.connections}", "-d5s", "-s", str(base / "poll.lua"), url],
            capture_output=True,
            check=True,
        )
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.seconds}s",
                "--latency",
                "-s",
                str(base / "poll.lua"),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    print(out)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def ms(found: re.Match[str] | None) -> float:
        if found is None:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    print(
        f"{args.hosts} hosts, {args.connections} connections: {rate:.0f} req/s, "
        f"p50 {ms(p50):.1f} ms, p99 {ms(p99):.1f} ms"
        + (f", {non2xx.group(1)} non-2xx" if non2xx else "")
        + " (goal ≥ 3000 req/s, p99 < 50 ms)"
    )


if __name__ == "__main__":
    main()
