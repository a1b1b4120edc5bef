"""The local API's routes as API Gateway's HTTP API matches them: path templates with
``{name}`` and a last greedy ``{name+}`` variable, an exact path preferred over a greedy one,
then a concrete method over ``ANY``; a wrong method is no match (HTTP APIs answer 404)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from devstack.lambdas import Handler

_SEGMENT_VAR = re.compile(r"^\{([A-Za-z0-9_.:-]+)(\+?)\}$")


@dataclass(frozen=True)
class Route:
    """``Route("GET", "/queue/item/{queueId}", handler)``; method "ANY" matches every method."""

    method: str
    path_template: str
    handler: Handler
    function_name: str | None = None  # default: the handler's module name
    timeout_s: float = 30.0  # the function's Lambda timeout, for get_remaining_time_in_millis()
    memory_mb: int = 256


@dataclass
class CompiledRoute:
    """A route with its path pattern, its key (``\"GET /queue/status\"``) and the lock that
    serialises calls to its execution environment."""

    route: Route
    method: str
    route_key: str
    pattern: re.Pattern[str]
    params: list[str]
    greedy: bool
    literal_segments: int
    function_name: str
    lock: AbstractContextManager[Any] = field(repr=False)

    def specificity(self, method: str) -> tuple[int, int, int]:
        # API Gateway prefers an exact path over a greedy {proxy+} one, then a concrete method over ANY.
        return (0 if self.greedy else 1, self.literal_segments, 1 if self.method == method else 0)


def compile_route(route: Route, lock: AbstractContextManager[Any]) -> CompiledRoute:
    """``route`` ready to match; raises ``ValueError`` for a template API Gateway would refuse."""
    template = route.path_template
    if not template.startswith("/"):
        raise ValueError(f"path template must start with '/': {template!r}")
    segments = template.split("/")[1:]
    regex, params, greedy, literals = "", [], False, 0
    for i, segment in enumerate(segments):
        var = _SEGMENT_VAR.match(segment)
        if var is None:
            if "{" in segment or "}" in segment:
                raise ValueError(f"path variables must span a whole segment: {template!r}")
            regex += "/" + re.escape(segment)
            literals += 1
            continue
        if var.group(2):
            if i != len(segments) - 1:
                raise ValueError(f"a greedy {{name+}} variable must be last: {template!r}")
            greedy = True
            regex += "/(.+)"
        else:
            regex += "/([^/]+)"
        params.append(var.group(1))
    method = route.method.upper()
    name = route.function_name or getattr(route.handler, "__module__", None) or "handler"
    return CompiledRoute(
        route=route,
        method=method,
        route_key=f"{method} {template}",
        pattern=re.compile(regex + r"\Z"),
        params=params,
        greedy=greedy,
        literal_segments=literals,
        function_name=name,
        lock=lock,
    )


def match(
    routes: Sequence[CompiledRoute], method: str, raw_path: str
) -> tuple[CompiledRoute, dict[str, str]] | None:
    """The route ``method raw_path`` goes to and its path parameters (URL-decoded), or None."""
    best: tuple[CompiledRoute, dict[str, str]] | None = None
    for compiled in routes:
        if compiled.method not in (method, "ANY"):
            continue  # HTTP APIs answer a wrong method with 404, not 405
        found = compiled.pattern.match(raw_path)
        if found is None:
            continue
        if best is None or compiled.specificity(method) > best[0].specificity(method):
            params = {k: unquote(v) for k, v in zip(compiled.params, found.groups(), strict=True)}
            best = (compiled, params)
    return best
