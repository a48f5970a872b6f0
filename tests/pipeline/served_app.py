"""A tiny web app for one fleet host, run by the verify_served tests as its own process:
``python served_app.py ADDRESS PORT SRV PROJECT MODE``. It answers every GET with the
``.ferryman-release`` file of the release the host's webroot points to (read through the
host's ``/srv`` as seen from this machine, ``SRV``), and with its commit in the ``X-Commit``
header.

MODE ``live`` reads the file on every request; ``cached`` reads it once at start and keeps
serving that (a PHP opcache, a process that was not restarted); ``redirect`` sends every request
to the same path on 127.0.0.1 (which serves nothing here); ``huge`` sends 8 MB of filler before
the version file."""

from __future__ import annotations

import http.server
import json
import os
import sys


def current(srv: str, project: str) -> tuple[str, bytes]:
    link = os.path.join(srv, "www", project)
    try:
        name = os.path.basename(os.readlink(link))
        with open(os.path.join(srv, "releases", project, name, ".ferryman-release"), "rb") as f:
            return name, f.read()
    except OSError:
        return "", b""


def main() -> None:
    address, port, srv, project, mode = sys.argv[1:6]
    cached = current(srv, project)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if mode == "redirect":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{port}{self.path}")
                self.end_headers()
                return
            _name, body = cached if mode == "cached" else current(srv, project)
            if mode == "huge":
                body = b"x" * (8 * 1024 * 1024) + body
            commit = ""
            for line in body.decode(errors="replace").splitlines():
                if line.startswith("commit: "):
                    commit = json.loads(line[len("commit: ") :])
            self.send_response(200)
            self.send_header("X-Commit", commit)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:  # the client stopped reading: that is what it should do
                pass

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer((address, int(port)), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
