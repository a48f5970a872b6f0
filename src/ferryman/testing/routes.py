"""FastAPI's per-app work on included routes, done once per test process instead of once per
app.

FastAPI (0.16x) builds an included route's models — its dependencies, parameter and body
fields, response fields: a pydantic ``TypeAdapter`` each — the first time a request of an app
reaches the router that holds it, and keeps them on that app. The tests build an app per test
(``create_app``, hundreds of them), and each paid ~0.6 s of CPU to build the same models from
the same routes again. ``built_once`` keeps what one app built for a route and hands a copy to
the next app that includes the same route the same way: the same models, each app with its own
request handler and its own dependency overrides. Servers the tests start as processes, and
production, build their routes as usual."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import routing


def _include_key(include_context: Any) -> str:
    """What of an inclusion decides the models built for its routes: all of it but the app
    (``dependency_overrides_provider``, looked up at request time)."""
    fields = {
        f.name: getattr(include_context, f.name)
        for f in dataclasses.fields(include_context)
        if f.name not in ("dependency_overrides_provider", "included_router")
    }
    return f"{id(include_context.included_router)}:{fields!r}"


@contextmanager
def built_once() -> Iterator[dict[tuple[int, str], Any]]:
    """Patch FastAPI's build of an included route's context to reuse the one an earlier app
    built for the same route and inclusion; yields the cache (route id, inclusion) → context."""
    contexts = routing._EffectiveRouteContext
    original = contexts.__dict__["from_api_route"]
    built: dict[tuple[int, str], Any] = {}
    keep: list[Any] = []  # the routes keyed by id: alive while the cache is

    def from_api_route(cls: Any, *, original_route: Any, include_context: Any) -> Any:
        key = (id(original_route), _include_key(include_context))
        cached = built.get(key)
        if cached is None or cached.original_route is not original_route:
            cached = original.__func__(
                cls, original_route=original_route, include_context=include_context
            )
            built[key] = cached
            keep.append(original_route)
            return cached
        context = dataclasses.replace(
            cached, dependency_overrides_provider=include_context.dependency_overrides_provider
        )
        token = routing._effective_route_context_var.set(context)
        try:  # as FastAPI does: a handler of this app's own, on the shared models
            context.app = routing.wrap_app_with_body_limit(  # type: ignore[attr-defined]
                routing.request_response(original_route.get_route_handler()),
                context.max_body_size,
            )
        finally:
            routing._effective_route_context_var.reset(token)
        return context

    setattr(contexts, "from_api_route", classmethod(from_api_route))  # noqa: B010
    try:
        yield built
    finally:
        setattr(contexts, "from_api_route", original)  # noqa: B010
