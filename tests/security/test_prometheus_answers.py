"""The Prometheus client of canary analysis against hostile 'Prometheus' servers of the
test's own on loopback: huge, deeply nested, slow-dripping, redirecting, lying answers are
all *unanswered* (the rollout then pauses) within the query's deadline, never a number, a
crash or a hang; the query travels as one URL parameter, byte for byte; and the outbound
policy is applied to every query."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from ferryman.domain.analysis import Unanswered
from ferryman.outbound import Outbound, parse_allow
from ferryman.pipeline.prometheus import MAX_ANSWER, query
from tests.conftest import NET

ADDRESS = f"{NET}.93"
PORT = 19093
ALLOWED = Outbound(allow=parse_allow(f"{NET}.0/24"))
Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


def _json(handler: http.server.BaseHTTPRequestHandler, body: bytes, status: int = 200) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Callable[[Behaviour], str]]:
    """A one-off HTTP server answering with ``behaviour``; yields a starter returning its
    URL. Every request it saw is in ``seen``."""
    started: list[http.server.ThreadingHTTPServer] = []

    def start(behaviour: Behaviour) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                SEEN.append(self.path)
                behaviour(self)

            def log_message(self, *args: object) -> None:
                return

        httpd = http.server.ThreadingHTTPServer((ADDRESS, PORT), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return f"http://{ADDRESS}:{PORT}"

    SEEN.clear()
    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


SEEN: list[str] = []


def _ask(url: str, promql: str = 'up{i=~"x"}', timeout: float = 2.0, out=ALLOWED) -> float:
    return asyncio.run(query(out, url, promql, timeout))


def test_a_real_shaped_answer_is_one_number_and_the_query_arrives_byte_for_byte(server):
    body = {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "7"]}]}}
    url = server(lambda h: _json(h, json.dumps(body).encode()))
    promql = 'sum(x{a="1&b=2",c=~"(?:a|b)\\\\.c"})\n# and a newline'
    assert _ask(url + "/prefix/", promql) == 7.0
    path = urlsplit(SEEN[0])
    assert path.path == "/prefix/api/v1/query"
    assert parse_qs(path.query) == {"query": [promql]}


def test_a_huge_answer_is_refused_after_max_answer_bytes(server):
    def huge(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()
        try:
            h.wfile.write(b'{"status":"success","data":{"result":["')
            for _ in range(64):  # 64 MiB
                h.wfile.write(b"x" * (1 << 20))
        except OSError:
            pass

    url = server(huge)
    with pytest.raises(Unanswered, match=f"larger than {MAX_ANSWER // 1024} KiB"):
        _ask(url, timeout=10.0)  # a busy machine is not what this test is about


def test_deeply_nested_json_within_the_size_bound_is_not_json_and_never_a_crash(server):
    url = server(lambda h: _json(h, b"[" * 50_000 + b"]" * 50_000))
    with pytest.raises(Unanswered, match="not JSON"):
        _ask(url)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>not prometheus</html>", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "no data"),
        (
            b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"NaN"]}]}}',
            "NaN",
        ),
        (
            b'{"status":"success","data":{"resultType":"vector","result":'
            b'[{"value":[1,"1"]},{"value":[1,"2"]}]}}',
            "2 series",
        ),
        (
            b'{"status":"success","data":{"resultType":"string","result":[1,"rm -rf /"]}}',
            "a string",
        ),
        (b'{"status":"error","errorType":"bad_data","error":"parse error"}', "parse error"),
    ],
)
def test_garbage_and_lies_are_unanswered_with_why(server, body, why):
    url = server(lambda h: _json(h, body))
    with pytest.raises(Unanswered, match=why):
        _ask(url)


def test_a_slow_dripping_answer_is_cut_at_the_query_deadline(server):
    def drip(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()
        try:
            for _ in range(100):
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    url = server(drip)
    started = time.monotonic()
    with pytest.raises(Unanswered, match="did not answer within 1s"):
        _ask(url, timeout=1.0)
    assert time.monotonic() - started < 5


def test_a_redirect_is_never_followed(server):
    def redirect(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        h.end_headers()

    url = server(redirect)
    with pytest.raises(Unanswered, match="HTTP 302"):
        _ask(url)
    assert len(SEEN) == 1


def test_an_http_error_status_is_unanswered(server):
    url = server(lambda h: _json(h, b"oops", status=500))
    with pytest.raises(Unanswered, match="HTTP 500"):
        _ask(url)


def test_every_query_goes_through_the_outbound_policy(server):
    url = server(lambda h: _json(h, b"{}"))
    with pytest.raises(Unanswered, match="internal destinations are refused"):
        _ask(url, out=Outbound())
    assert SEEN == []  # refused before connecting
    with pytest.raises(Unanswered, match="cannot resolve"):
        _ask("http://no-such-host.invalid:9090", out=Outbound())


def test_nothing_listening_is_unanswered_as_cannot_be_reached():
    with pytest.raises(Unanswered, match="cannot be reached"):
        _ask(f"http://{NET}.94:{PORT}")
