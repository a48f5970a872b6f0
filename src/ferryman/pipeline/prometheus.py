"""One instant query of a Prometheus server (``GET /api/v1/query``), for canary analysis.

The address goes through the outbound policy (``ferryman.outbound``): resolved once, every
address checked, the request pinned to the checked one (the name stays the ``Host`` header
and the TLS server name). Redirects are never followed; the whole exchange has one deadline;
an answer is read only up to ``MAX_ANSWER`` bytes and must be JSON holding one number.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from ferryman.domain.analysis import Unanswered, value_of
from ferryman.errors import ValidationError
from ferryman.outbound import Outbound

MAX_ANSWER = 256 * 1024  # one number's answer is a few hundred bytes


def _api(base: str) -> httpx.URL:
    url = httpx.URL(base)
    return url.copy_with(path=url.path.rstrip("/") + "/api/v1/query")


def client(out: Outbound, timeout: float) -> httpx.AsyncClient:
    """One client for a whole analysis: building one (its TLS context) costs far more than
    a query on loopback; connections to the pinned address are kept and reused."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
        verify=out.verify if out.verify is not None else True,
    )


async def _ask(out: Outbound, http: httpx.AsyncClient, base: str, query: str) -> bytes:
    url = _api(base)
    target = await asyncio.to_thread(out.check_url, str(url), "analysis/prometheus")
    pinned = url.copy_with(host=str(target.ip))
    headers = {"Host": url.netloc.decode("ascii").rpartition("@")[2], "Accept": "application/json"}
    extensions = {"sni_hostname": target.host.rstrip(".")} if url.scheme == "https" else {}
    request = http.build_request(
        "GET", pinned, params={"query": query}, headers=headers, extensions=extensions
    )
    response = await http.send(request, stream=True)
    try:
        if response.status_code != 200 and response.status_code not in (400, 422, 503):
            raise Unanswered(f"Prometheus answered HTTP {response.status_code}")
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER:
                raise Unanswered(f"the answer is larger than {MAX_ANSWER // 1024} KiB")
    finally:
        await response.aclose()
    return body


async def query(
    out: Outbound, base: str, promql: str, timeout: float, http: httpx.AsyncClient | None = None
) -> float:
    """The one number ``promql`` gives now; ``Unanswered`` (with why) for anything else:
    an address the policy refuses, no connection, a timeout, an error, garbage, no data.
    ``http``: the analysis' client (``client``); without it, one for this query."""
    if http is None:
        async with client(out, timeout) as own:
            return await query(out, base, promql, timeout, own)
    try:
        body = await asyncio.wait_for(_ask(out, http, base, promql), timeout)
    except TimeoutError:
        raise Unanswered(f"Prometheus did not answer within {timeout:g}s") from None
    except ValidationError as exc:  # the outbound policy (Refused, Unresolved), a bad URL
        raise Unanswered(exc.message) from None
    except httpx.HTTPError as exc:
        raise Unanswered(
            f"Prometheus cannot be reached: {type(exc).__name__}: {exc}"[:300]
        ) from None
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise Unanswered("the answer is not JSON") from None
    return value_of(answer)
